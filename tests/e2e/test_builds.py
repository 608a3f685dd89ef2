"""The Job build engine on a real node: the build Job's pod really runs (as uid 1000, no
service-account token), its log comes through the kubelet (`kubectl artifact build logs`),
the digest it writes to its termination message reaches the Deployment, whose pod runs that
digest; a cancelled build stops.

There is no registry here, so the builder is a stand-in for rootless BuildKit
(tests/support/images.py BUILDER): it reports the git revision as the pushed digest, and the
test names the web image in the node's containerd as `<output repository>@sha256:<digest>`,
as the push and a pull would. Everything between (the operator's Job, the Job controller,
the kubelet, the termination message, the status, the Deployment) is real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..conftest import get_artifact
from ..support import images
from ..support.operator import OperatorProcess
from ..support.wait import until_ok, wait_for
from .support import E2E, job_build_operator, plugin

pytestmark = pytest.mark.e2e

OUTPUT = "localhost/e2e-builds"
GIT = "https://git.example.invalid/shop.git"
# The execution environment of generated Dockerfiles (a name only: the stand-in builds nothing).
BASE = "registry.example.invalid/ee/python@sha256:" + "b" * 64


@pytest.fixture(scope="module")
def builder(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    if e2e.node is None:
        pytest.fail("the build stand-in needs the local node's containerd for its push",
                    pytrace=False)
    with job_build_operator(e2e, tmp_path_factory.mktemp("builds"), output=OUTPUT,
                            builder=e2e.pinned("builder"), environments={"py/3": BASE}
                            ) as proc:
        yield proc


def built_artifact(name: str, revision: str, dockerfile: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": "web", "containers": [{
                "name": "httpd", "primary": True, "port": images.WEB_PORT,
                "imageBuildConfig": {
                    "codeRef": {"provider": "git", "git": {"url": GIT, "revision": revision}},
                    "dockerfile": dockerfile or {"source": "provided", "path": "Dockerfile"}},
                "readinessProbe": {"path": "/ready", "initialDelaySeconds": 0,
                                   "periodSeconds": 1}}]}]}}


def one_build(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    """The artifact's one build row; an AssertionError (wait_for polls on) until there is."""
    rows = get_artifact(e2e.cluster, namespace, name).get("status", {}).get("builds", [])
    assert len(rows) == 1, rows
    return dict(rows[0])


def pushed(e2e: E2E, namespace: str, name: str) -> str:
    """The "push" of a build of artifact `name`: the web image under the output repository,
    by the digest the build stand-in reports (the revision, which the test makes the web
    image's manifest digest). Returns that digest."""
    assert e2e.node is not None
    digest = images.manifest_digest(e2e.built["web"].archive)
    images.tag_in_containerd(e2e.node.containerd_socket,
                             images.containerd_name(e2e.refs["web"]),
                             f"{OUTPUT}/{namespace}/{name}@{digest}")
    return digest


def wait_built(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    """The build row of artifact `name`, once BUILT."""
    def built() -> dict[str, Any]:
        row = one_build(e2e, namespace, name)
        assert row["build"]["status"] == "BUILT", row
        return row
    return wait_for(built, timeout=120, interval=1, what=f"the build of {name} BUILT")


def wait_ready(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    """The status of artifact `name`, once Ready 1/1 (on its built image)."""
    def ready() -> dict[str, Any]:
        status = get_artifact(e2e.cluster, namespace, name).get("status", {})
        assert (status.get("phase"), status.get("ready")) == ("Ready", "1/1"), status
        return status
    return wait_for(ready, timeout=90, interval=1, what=f"{name} Ready on the built image")


def test_the_build_job_runs_on_the_node_and_its_digest_runs(
        e2e: E2E, builder: OperatorProcess, namespace: str) -> None:
    digest = pushed(e2e, namespace, "shop")
    e2e.kubectl("-n", namespace, "apply", "-f", "-",
                input=yaml.safe_dump(built_artifact("shop", digest.removeprefix("sha256:"))))
    row = wait_built(e2e, namespace, "shop")
    assert row["image"] == f"{OUTPUT}/{namespace}/shop@{digest}"
    run = row["build"]["artifactImageBuildId"]
    job = client.BatchV1Api(e2e.cluster.api).read_namespaced_job(run, namespace)
    assert job.status.succeeded == 1
    (pod,) = e2e.cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={run}").items
    assert pod.spec.automount_service_account_token is False
    assert pod.status.container_statuses[0].state.terminated.message == digest
    # The build's log, through the API server and the kubelet.
    logs = plugin(e2e, "-n", namespace, "build", "logs", run)
    assert logs.returncode == 0, logs.stderr
    assert f"built revision {digest.removeprefix('sha256:')}" in logs.stdout, logs.stdout
    assert f"context={GIT}#{digest.removeprefix('sha256:')}" in logs.stdout, logs.stdout

    wait_ready(e2e, namespace, "shop")
    (server,) = [p for p in e2e.cluster.core.list_namespaced_pod(
        namespace, label_selector="workload.dev/artifact=shop").items
        if "job-name" not in (p.metadata.labels or {})]
    assert server.spec.containers[0].image == f"{OUTPUT}/{namespace}/shop@{digest}"
    assert e2e.pod_get(server, images.WEB_PORT, "/index.html").body == "artifact e2e\n"


def test_a_generated_dockerfile_reaches_the_builder_and_its_image_runs(
        e2e: E2E, builder: OperatorProcess, namespace: str) -> None:
    digest = pushed(e2e, namespace, "gen")
    generated = {"source": "generated", "executionEnvironmentId": "py",
                 "executionEnvironmentVersionId": "3", "entrypoint": ["python", "app.py"]}
    e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(
        built_artifact("gen", digest.removeprefix("sha256:"), generated)))

    row = wait_built(e2e, namespace, "gen")
    assert row["image"] == f"{OUTPUT}/{namespace}/gen@{digest}"
    # The builder was given the generated Dockerfile, apart from the git context.
    logs = plugin(e2e, "-n", namespace, "build", "logs", row["build"]["artifactImageBuildId"])
    assert logs.returncode == 0, logs.stderr
    assert (f"Dockerfile:\n# Generated by artifact-operator from execution environment py/3\n"
            f"FROM {BASE}\nWORKDIR /opt/code\nCOPY . /opt/code\n"
            'CMD ["python", "app.py"]\n') in logs.stdout, logs.stdout
    assert f"context={GIT}#{digest.removeprefix('sha256:')}" in logs.stdout, logs.stdout

    wait_ready(e2e, namespace, "gen")


def test_a_cancelled_build_stops_its_pod_and_ends_cancelled(
        e2e: E2E, builder: OperatorProcess, namespace: str) -> None:
    e2e.kubectl("-n", namespace, "apply", "-f", "-",
                input=yaml.safe_dump(built_artifact("slow", "slow-build")))

    def running() -> str:
        row = one_build(e2e, namespace, "slow")
        assert row["build"]["status"] == "IN_PROGRESS", row
        run = str(row["build"]["artifactImageBuildId"])
        pods = e2e.cluster.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={run}").items
        assert pods and pods[0].status.phase == "Running", pods
        return run

    run = wait_for(running, timeout=120, interval=1, what="the slow build's pod running")
    logs = wait_for(lambda: "building slowly" in (out := plugin(
        e2e, "-n", namespace, "build", "logs", run)).stdout and out, timeout=30,
        what="the running build's log")
    assert logs.returncode == 0
    cancel = plugin(e2e, "-n", namespace, "build", "cancel", run)
    assert cancel.returncode == 0, cancel.stderr

    def cancelled() -> None:
        row = one_build(e2e, namespace, "slow")
        assert row["build"]["status"] == "CANCELLED", row
        pods = e2e.cluster.core.list_namespaced_pod(
            namespace, label_selector=f"job-name={run}").items
        assert all(p.status.phase in ("Failed", "Succeeded") or p.metadata.deletion_timestamp
                   for p in pods), [(p.metadata.name, p.status.phase) for p in pods]

    until_ok(cancelled, timeout=90, interval=1, what="the build CANCELLED and its pod stopped")
    status = get_artifact(e2e.cluster, namespace, "slow")["status"]
    assert status["phase"] != "Ready"
    assert not e2e.cluster.apps.list_namespaced_deployment(
        namespace, label_selector="workload.dev/artifact=slow").items
