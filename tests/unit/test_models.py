"""The Artifact model: the seed's defaults, and every schema-level constraint reported with its
field path and a plain message."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.api.build_config import GeneratedDockerfile
from artifact_operator.api.models import CredentialEnvVar, StringEnvVar
from artifact_operator.api.validation import InvalidArtifact, parse, validate

from ..support.builders import container, primary
from .artifact_cases import C0, G0, artifact, groups


def test_seed_defaults_are_applied() -> None:
    art = parse(artifact({
        "containerGroups": [{"containers": [primary(
            livenessProbe={"path": "/healthz"},
            environmentVars=[{"name": "A", "value": "1"}],
            imageBuildConfig={"codeRef": {"datarobot": {"catalogId": "c",
                                                        "catalogVersionId": "v"}}})]},
            {"name": "worker", "containers": [{"imageUri": "busybox"}]}],
    }))
    spec = art.spec
    assert (spec.type, spec.lifecycle, spec.description) == ("service", "draft", "")
    assert spec.display_name is None and spec.repository is None and spec.runtime is None
    assert spec.container_groups[0].name == "default"
    app = spec.container_groups[0].containers[0]
    probe = app.liveness_probe
    assert probe is not None
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds,
            probe.failure_threshold, probe.scheme) == (30, 30, 30, 3, "HTTP")
    # The probe port is resolved at render time: the container's port, else 8080.
    assert probe.port is None
    assert isinstance(app.environment_vars[0], StringEnvVar)
    assert app.environment_vars[0].source == "string"
    build = app.image_build_config
    assert build is not None and build.code_ref is not None
    assert (build.code_ref.provider, build.code_ref.type) == ("datarobot", "datarobot")
    assert (build.dockerfile.source, getattr(build.dockerfile, "path", None)) == (
        "provided", "./Dockerfile")
    worker = spec.container_groups[1].containers[0]
    assert worker.primary is False and worker.environment_vars == [] and worker.name is None
    assert worker.description == "" and worker.port is None


def test_nim_storage_defaults_to_a_dedicated_claim() -> None:
    art = parse(artifact({"type": "nim", "storage": {},
                          "containerGroups": groups(primary())}))
    assert art.spec.storage is not None
    assert (art.spec.storage.mode, art.spec.storage.pvc_size) == ("dedicatedPvc", None)


def test_env_var_kinds_are_told_apart_by_source() -> None:
    art = parse(artifact({"containerGroups": groups(primary(environmentVars=[
        {"name": "A", "value": "1"},
        {"name": "B", "source": "dr-credential", "drCredentialId": "db", "key": "password"},
        {"name": "C", "source": "dr-api-token"}]))}))
    kinds = [type(e).__name__ for e in art.spec.container_groups[0].containers[0].environment_vars]
    assert kinds == [StringEnvVar.__name__, CredentialEnvVar.__name__, "ApiTokenEnvVar"]


def test_generated_dockerfile_is_parsed_as_such() -> None:
    art = parse(artifact({"containerGroups": groups(primary(imageBuildConfig={"dockerfile": {
        "source": "generated", "executionEnvironmentId": "e",
        "executionEnvironmentVersionId": "v", "entrypoint": ["python", "app.py"]}}))}))
    build = art.spec.container_groups[0].containers[0].image_build_config
    assert build is not None and isinstance(build.dockerfile, GeneratedDockerfile)


def test_parse_raises_with_every_violation() -> None:
    doc = artifact({"type": "job", "containerGroups": groups(container(port=80))})
    with pytest.raises(InvalidArtifact) as err:
        parse(doc)
    paths = [v.path for v in err.value.violations]
    assert paths == [f"{C0}.port", f"{C0}.port", "spec.type"]


def _with(container_fields: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = primary(**(container_fields or {}))
    return {"containerGroups": groups(c), **spec}


def _env(**fields: Any) -> dict[str, Any]:
    return _with({"environmentVars": [fields]})


def _probe(**fields: Any) -> dict[str, Any]:
    return _with({"readinessProbe": {"path": "/", **fields}})


E0 = f"{C0}.environmentVars[0]"
P0 = f"{C0}.readinessProbe"

# (id, spec, path, message fragment)
SCHEMA_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("group-name-pattern", {"containerGroups": [{"name": "Api"}]}, f"{G0}.name",
     "lowercase letters, digits and '-'"),
    ("group-name-starts-with-digit", {"containerGroups": [{"name": "1api"}]}, f"{G0}.name",
     "start with a letter"),
    ("group-name-length", {"containerGroups": [{"name": "a" * 64}]}, f"{G0}.name",
     "at most 63 characters"),
    ("container-name-pattern", _with({"name": "app-"}), f"{C0}.name", "end with a letter"),
    ("container-name-length", _with({"name": "a" * 64}), f"{C0}.name", "at most 63"),
    ("port-below-1024", _with({"port": 80}), f"{C0}.port", "greater than or equal to 1024"),
    ("port-above-65535", _with({"port": 65536}), f"{C0}.port", "less than or equal to 65535"),
    ("probe-port-zero", _probe(port=0), f"{P0}.port", "greater than or equal to 1"),
    ("probe-port-above-65535", _probe(port=70000), f"{P0}.port", "less than or equal to 65535"),
    ("probe-path-required", _with({"livenessProbe": {"port": 8080}}),
     f"{C0}.livenessProbe.path", "field required"),
    ("probe-scheme-enum", _probe(scheme="TCP"), f"{P0}.scheme", "'HTTP' or 'HTTPS'"),
    ("probe-negative-delay", _probe(initialDelaySeconds=-1), f"{P0}.initialDelaySeconds",
     "greater than or equal to 0"),
    ("probe-zero-period", _probe(periodSeconds=0), f"{P0}.periodSeconds",
     "greater than or equal to 1"),
    ("probe-zero-timeout", _probe(timeoutSeconds=0), f"{P0}.timeoutSeconds",
     "greater than or equal to 1"),
    ("probe-zero-threshold", _probe(failureThreshold=0), f"{P0}.failureThreshold",
     "greater than or equal to 1"),
    ("pvc-size-pattern", {"type": "nim", "containerGroups": groups(primary()),
                          "storage": {"pvcSize": "10GB"}}, "spec.storage.pvcSize",
     "a number followed by Mi, Gi or Ti"),
    ("storage-mode-enum", {"type": "nim", "containerGroups": groups(primary()),
                           "storage": {"mode": "shared"}}, "spec.storage.mode",
     "'dedicatedPvc' or 'nimCache'"),
    ("type-enum", {"type": "job"}, "spec.type", "'service' or 'nim'"),
    ("lifecycle-enum", {"lifecycle": "frozen"}, "spec.lifecycle", "'draft' or 'locked'"),
    ("seccomp-type-enum", _with({"securityContext": {"seccompProfile": {"type": "Strict"}}}),
     f"{C0}.securityContext.seccompProfile.type", "'RuntimeDefault', 'Unconfined' or"),
    ("seccomp-type-required", _with({"securityContext": {"seccompProfile": {}}}),
     f"{C0}.securityContext.seccompProfile.type", "field required"),
    ("run-as-user-not-settable", _with({"securityContext": {"runAsUser": 0}}),
     f"{C0}.securityContext.runAsUser", "set by the platform"),
    ("run-as-non-root-not-settable", _with({"securityContext": {"runAsNonRoot": False}}),
     f"{C0}.securityContext.runAsNonRoot", "set by the platform"),
    ("env-source-enum", _env(name="A", source="secret"), f"{E0}.source",
     "'string', 'dr-credential', 'dr-api-token'"),
    ("env-name-required", _env(value="x"), f"{E0}.name", "field required"),
    ("env-name-pattern", _env(name="1A", value="x"), f"{E0}.name",
     "environment variable name"),
    ("env-name-dot-dot", _env(name="..A", value="x"), f"{E0}.name", "not starting with"),
    ("env-secret-name-pattern", _env(name="A", source="dr-credential",
                                     drCredentialId="Db_Creds", key="k"),
     f"{E0}.drCredentialId", "must be a Secret name"),
    ("env-secret-key-pattern", _env(name="A", source="dr-credential", drCredentialId="db",
                                    key="a/b"), f"{E0}.key", "must be a Secret key"),
    ("display-name-empty", {"displayName": ""}, "spec.displayName", "at least 1 character"),
    ("display-name-length", {"displayName": "x" * 5001}, "spec.displayName",
     "at most 5000 characters"),
    ("repository-pattern", {"repository": "-web"}, "spec.repository", "label value"),
    ("repository-length", {"repository": "r" * 64}, "spec.repository", "at most 63"),
    ("replicas-negative", _with(runtime={"api": {"replicas": -1}}),
     "spec.runtime.api.replicas", "greater than or equal to 0"),
    ("generated-entrypoint-empty", _with({"imageBuildConfig": {"dockerfile": {
        "source": "generated", "executionEnvironmentId": "e",
        "executionEnvironmentVersionId": "v", "entrypoint": []}}}),
     f"{C0}.imageBuildConfig.dockerfile.entrypoint", "at least 1 item"),
    ("code-ref-datarobot-required", _with({"imageBuildConfig": {"codeRef": {}}}),
     f"{C0}.imageBuildConfig.codeRef.datarobot", "field required"),
    ("dockerfile-source-enum", _with({"imageBuildConfig": {"dockerfile": {"source": "inline"}}}),
     f"{C0}.imageBuildConfig.dockerfile.source", "'provided', 'generated'"),
    ("unknown-field", _with({"command": ["sh"]}), f"{C0}.command", "unknown field"),
    ("image-uri-empty", _with({"imageUri": ""}), f"{C0}.imageUri", "at least 1 character"),
]


@pytest.mark.parametrize(("spec", "path", "message"), [c[1:] for c in SCHEMA_CASES],
                         ids=[c[0] for c in SCHEMA_CASES])
def test_schema_constraint_is_reported_with_its_path(spec: dict[str, Any], path: str,
                                                     message: str) -> None:
    violations = validate(artifact(spec))
    assert {v.path for v in violations} == {path}, violations
    assert any(message in v.message for v in violations), violations


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "w" * 64])
def test_metadata_name_must_be_a_dns_label(name: str) -> None:
    violations = validate({"metadata": {"name": name}, "spec": {}})
    assert [v.path for v in violations] == ["metadata.name"]


@pytest.mark.parametrize("name", ["A", "a.b", "-x", ".x", "_", "my-env.NAME_2"])
def test_env_names_kubernetes_accepts_are_accepted(name: str) -> None:
    assert validate(artifact(_env(name=name, value="v"))) == []


def test_edge_values_are_accepted() -> None:
    spec = _with({"port": 65535, "name": "a" * 63,
                  "readinessProbe": {"path": "/", "port": 1, "initialDelaySeconds": 0}},
                 displayName="x" * 5000, repository="r" * 63)
    spec["containerGroups"][0]["name"] = "g" * 63
    assert validate(artifact(spec)) == []
    for size in ("1Mi", "1.5Ti", "150Gi"):
        nim = {"type": "nim", "containerGroups": groups(primary(port=1024)),
               "storage": {"pvcSize": size}}
        assert validate(artifact(nim)) == [], size
