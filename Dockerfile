# syntax=docker/dockerfile:1
# The operator image: `docker build -t artifact-operator:0.1.0 .`
# Builder: make a wheel of the operator and of every dependency.
FROM python:3.11-slim AS builder
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist . \
 && pip wheel --no-cache-dir --wheel-dir /dist /dist/artifact_operator-*.whl

# Final: the wheels installed into a virtualenv; no compiler, no pip cache, no sources.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/dist artifact-operator \
 && /opt/venv/bin/python -m pip uninstall -y pip setuptools
# The same non-root uid as the shipped manifests (runAsUser 65532).
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["artifact-operator"]
CMD ["run", "--all-namespaces"]
