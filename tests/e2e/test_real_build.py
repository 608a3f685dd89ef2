"""A real image build on the real node: the operator's Job build engine builds a Dockerfile from
a git repository, pushes the image to a real registry, and the artifact's Deployment pulls that
digest and serves the page the Dockerfile put into it; once with the source's own Dockerfile,
once with one the operator generates from an execution environment.

What is real: the registry (Debian's `docker-registry`, distribution 2.8, filesystem storage
in a temporary directory, plain HTTP on port 5000 of the node), the git repository (a bare
repository served read-only over git's "dumb" HTTP protocol from the test process on the node
IP), the build (buildah: clone, `buildah bud`, `buildah push`), the operator's Job exactly as it
renders it, the Job controller, the kubelet, the termination message, the status, and the pull
of the built digest by containerd.

Deviations from production, each forced by this machine:
- The builder image is not rootless BuildKit (its image comes from a registry, and nothing
  here reaches one) but Debian's buildah behind a `buildctl-daemonless.sh` that takes
  BuildKit's arguments (tests/support/images.py BUILDER_REAL). The operator's Job is
  unchanged: same script, same arguments, same user (uid 1000), same security context.
- buildah maps one uid only (uid 1000 as root, its fallback; the build log shows the map):
  Debian's setuid newuidmap needs CAP_SYS_ADMIN, which the pod does not have, to map the
  subordinate ids. So the Dockerfiles make root's files only: the execution environment
  (`ee`) has no USER, else the generated WORKDIR would be chowned to it and fail.
- One registry, two addresses. containerd 1.6 pulls from `localhost:PORT` over plain HTTP (its
  CRI resolver treats localhost as insecure; any other host needs TLS or a registry entry in
  containerd's config, which node.sh writes), so the output repository is
  `localhost:5000/e2e-real`. A pod's localhost is its own, so the builder pushes what is
  named under `localhost:5000` to the node IP's port 5000 instead (REGISTRY_ALIAS in its image's
  environment), and pulls the Dockerfiles' base images from there (--tls-verify=false). A
  digest names content, so `localhost:5000/e2e-real/...@sha256:X` is the image pushed.
- The base images (the `web` and `ee` test images) are copied into the registry with skopeo.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..conftest import get_artifact
from ..support import images
from ..support.node import NODE_IP
from ..support.operator import OperatorProcess
from ..support.wait import until_ok, wait_for
from .support import E2E, job_build_operator, plugin

pytestmark = pytest.mark.e2e

PORT = 5000
LOCAL_REGISTRY = f"localhost:{PORT}"   # how the node's containerd (and the test) reach it
NODE_REGISTRY = f"{NODE_IP}:{PORT}"    # how pods (the builder) reach it
OUTPUT = f"{LOCAL_REGISTRY}/e2e-real"
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


def _prerequisite(ok: bool, reason: str) -> None:
    """Skip without `reason`'s tool, except under CI=true, where nothing may be skipped."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"a real image build needs {reason}", pytrace=False)
    pytest.skip(f"a real image build needs {reason}")


@dataclass
class Registry:
    url: str  # from the test process

    def manifest(self, name: str, reference: str) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}/v2/{name}/manifests/{reference}",
                                         headers={"Accept": MANIFEST_TYPES})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@pytest.fixture(scope="module")
def registry(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's docker-registry on port 5000 of the node (all its addresses), for the module."""
    _prerequisite(e2e.node is not None, "the local node (its containerd pulls from localhost)")
    exe = shutil.which("docker-registry")
    _prerequisite(exe is not None, "Debian's docker-registry (apt-get install docker-registry; "
                  "`make e2e-setup` installs it)")
    _prerequisite(shutil.which("skopeo") is not None, "skopeo (apt-get install skopeo; "
                  "`make e2e-setup` installs it)")
    assert f"{LOCAL_REGISTRY}={NODE_REGISTRY}" == images.REAL_BUILDER_REGISTRY_ALIAS
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"0.0.0.0:{PORT}"}}))
    log_path = root / "registry.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(exe), "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers() -> None:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-2000:]
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v2/", timeout=2) as resp:
                assert resp.status == 200
        until_ok(answers, timeout=30, what="the registry answering /v2/",
                 retry=(urllib.error.URLError, ConnectionError))
        yield Registry(f"http://127.0.0.1:{PORT}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Source:
    url: str        # the bare repository, as pods clone it
    revision: str   # the commit to build
    page: str       # site/www/index.html: what the built images serve as /index.html
    base: str       # site/Dockerfile's FROM (the `web` image)
    ee: str         # the execution environment's image (`ee`), for generated Dockerfiles


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def source(e2e: E2E, registry: Registry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Source]:
    """A git repository whose `site/Dockerfile` builds on the `web` image: COPY a page over
    its index.html. `site/www` holds the page and a /ready, for a generated Dockerfile (COPY .
    on the `ee` image). Served read-only over dumb HTTP on the node IP; both bases are in the
    registry."""
    pinned = {}
    for name in ("web", "ee"):
        image = e2e.built[name]
        images.push(image, NODE_REGISTRY, tls_verify=False)
        digest = images.manifest_digest(image.archive)
        repository = images.short_name(image.ref).split(":")[0]
        assert registry.manifest(repository, digest)[0] == 200, f"{name} is not in the registry"
        pinned[name] = f"{NODE_REGISTRY}/{repository}@{digest}"

    root = tmp_path_factory.mktemp("git")
    work, served = root / "work", root / "served"
    page = f"built from git by buildah, {uuid.uuid4().hex[:8]}\n"
    (work / "site" / "www").mkdir(parents=True)
    (work / "site" / "Dockerfile").write_text(
        f"FROM {pinned['web']}\nCOPY www/index.html /www/index.html\n")
    (work / "site" / "www" / "index.html").write_text(page)
    (work / "site" / "www" / "ready").write_text("ready\n")
    (work / "README").write_text("The build context is site/.\n")

    def git(*args: str, cwd: Path = work) -> str:
        return subprocess.run(["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid",
                               *args], cwd=cwd, check=True, capture_output=True,
                              text=True).stdout.strip()
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "a page on the web image")
    revision = git("rev-parse", "HEAD")
    git("clone", "-q", "--bare", str(work), str(served / "shop.git"), cwd=root)
    git("update-server-info", cwd=served / "shop.git")

    server = ThreadingHTTPServer((NODE_IP, 0),
                                 partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Source(f"http://{NODE_IP}:{server.server_address[1]}/shop.git", revision, page,
                     pinned["web"], pinned["ee"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def builder(e2e: E2E, source: Source, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[OperatorProcess]:
    with job_build_operator(e2e, tmp_path_factory.mktemp("real-build"), output=OUTPUT,
                            builder=e2e.pinned("builder-real"),
                            environments={"busybox/1": source.ee}) as proc:
        yield proc


def artifact(name: str, source: Source, dockerfile: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": "web", "containers": [{
                "name": "httpd", "primary": True, "port": images.WEB_PORT,
                "imageBuildConfig": {
                    "codeRef": {"provider": "git", "git": {
                        "url": source.url, "revision": source.revision, "contextDir": "site"}},
                    "dockerfile": dockerfile},
                "readinessProbe": {"path": "/ready", "initialDelaySeconds": 0,
                                   "periodSeconds": 1}}]}]}}


def built_and_running(e2e: E2E, registry: Registry, source: Source, namespace: str,
                      name: str, log_lines: list[str]) -> None:
    """Artifact `name` waits for its image (ImageNotBuilt or Building), its build ends BUILT
    with `OUTPUT/<namespace>/<name>@<digest>`, the registry holds that digest (the base's
    layer and the COPY's), the build's log (buildah's output) has `log_lines`, and the
    artifact's pod runs that digest, pulled from the registry, serving the page from git."""
    waiting: set[str] = set()  # the reasons of Ready=False seen while the image is built

    def built() -> dict[str, Any]:
        status = get_artifact(e2e.cluster, namespace, name).get("status", {})
        waiting.update(c.get("reason", "") for c in status.get("conditions", [])
                       if c["type"] == "Ready" and c["status"] == "False")
        rows = status.get("builds", [])
        assert len(rows) == 1, rows
        if rows[0]["build"]["status"] in ("FAILED", "CANCELLED", "UNKNOWN"):
            logs = plugin(e2e, "-n", namespace, "build", "logs",
                          rows[0]["build"]["artifactImageBuildId"])
            pytest.fail(f"the build ended {rows[0]}; its log:\n{logs.stdout}{logs.stderr}",
                        pytrace=False)
        assert rows[0]["build"]["status"] == "BUILT", rows
        return dict(rows[0])
    row = wait_for(built, timeout=180, interval=1, what=f"the build of {name} BUILT")
    assert waiting & {"ImageNotBuilt", "Building"}, waiting

    repository, _, digest = row["image"].partition("@")
    assert repository == f"{OUTPUT}/{namespace}/{name}"
    assert digest.startswith("sha256:") and len(digest) == 71, row
    status, body = registry.manifest(f"e2e-real/{namespace}/{name}", digest)
    assert status == 200, body
    assert f"sha256:{hashlib.sha256(body).hexdigest()}" == digest
    assert len(json.loads(body)["layers"]) == 2, body

    run = row["build"]["artifactImageBuildId"]
    job = client.BatchV1Api(e2e.cluster.api).read_namespaced_job(run, namespace)
    assert job.status.succeeded == 1
    (pod,) = e2e.cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={run}").items
    assert pod.status.container_statuses[0].state.terminated.message == digest
    # buildah's own output, through the kubelet.
    logs = plugin(e2e, "-n", namespace, "build", "logs", run)
    assert logs.returncode == 0, logs.stderr
    print(f"---- kubectl artifact build logs {run} ----\n{logs.stdout}")
    for line in [f"commit {source.revision}", *log_lines,
                 f"pushed {NODE_REGISTRY}/e2e-real/{namespace}/{name}:"]:
        assert line in logs.stdout, logs.stdout
    assert f"@{digest}" in logs.stdout, logs.stdout

    def ready() -> None:
        status = get_artifact(e2e.cluster, namespace, name).get("status", {})
        assert (status.get("phase"), status.get("ready")) == ("Ready", "1/1"), status
    until_ok(ready, timeout=120, interval=1, what=f"{name} Ready on the built image")
    (server,) = [p for p in e2e.cluster.core.list_namespaced_pod(
        namespace, label_selector=f"workload.dev/artifact={name}").items
        if "job-name" not in (p.metadata.labels or {})]
    assert server.spec.containers[0].image == row["image"]
    # containerd pulled it from the registry: the image it runs is that digest.
    assert server.status.container_statuses[0].image_id.endswith(f"@{digest}"), \
        server.status.container_statuses[0]
    assert e2e.pod_get(server, images.WEB_PORT, "/index.html").body == source.page


def test_a_dockerfile_from_git_is_built_pushed_and_runs_by_digest(
        e2e: E2E, registry: Registry, source: Source, builder: OperatorProcess,
        namespace: str) -> None:
    provided = {"source": "provided", "path": "Dockerfile"}
    e2e.kubectl("-n", namespace, "apply", "-f", "-",
                input=yaml.safe_dump(artifact("shop", source, provided)))
    built_and_running(e2e, registry, source, namespace, "shop", [
        f"FROM {source.base}", "COPY www/index.html /www/index.html"])


def test_a_generated_dockerfile_is_built_on_its_execution_environment_and_runs(
        e2e: E2E, registry: Registry, source: Source, builder: OperatorProcess,
        namespace: str) -> None:
    generated = {"source": "generated", "executionEnvironmentId": "busybox",
                 "executionEnvironmentVersionId": "1",
                 "entrypoint": ["/bin/busybox", "httpd", "-f", "-p", str(images.WEB_PORT),
                                "-h", "/opt/code/www"]}
    e2e.kubectl("-n", namespace, "apply", "-f", "-",
                input=yaml.safe_dump(artifact("gen", source, generated)))
    # The Dockerfile the operator generated (apart from the git context, which has one of
    # its own that is not used), built on the execution environment's base.
    built_and_running(e2e, registry, source, namespace, "gen", [
        f"FROM {source.ee}", "WORKDIR /opt/code", "COPY . /opt/code",
        'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/opt/code/www"]'])
