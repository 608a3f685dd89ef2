"""The operator writes only what changes: counted from the API server's audit log.

Every write request the operator process makes is in the audit log with its user agent, so
these tests count requests, not log lines or metrics the operator keeps about itself.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ..conftest import (
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    create_artifact,
    get_artifact,
    patch_artifact,
    require_audit_log,
)
from ..support.audit import AuditLog
from ..support.kubelet import make_pods_ready
from ..support.metrics import wait_artifacts_seen, wait_reconciles
from ..support.operator import OperatorProcess, pause
from ..support.samples import opted_in_secret, sample
from ..support.wait import until_ok, wait_for

pytestmark = pytest.mark.cluster

MANAGED = "app.kubernetes.io/managed-by=artifact-operator"
UNCHANGED = 50
DRIFTED = "drifted"


def audit_of(cluster: Cluster) -> AuditLog:
    return AuditLog(require_audit_log(cluster))


def phase_of(cluster: Cluster, namespace: str, name: str) -> str | None:
    body = get_artifact(cluster, namespace, name)
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return None
    return status.get("phase")


def phases(cluster: Cluster, namespace: str) -> dict[str, str | None]:
    items = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace,
                                                         PLURAL)["items"]
    return {a["metadata"]["name"]: (a.get("status") or {}).get("phase") for a in items}


def all_ready(cluster: Cluster, namespace: str, count: int) -> None:
    make_pods_ready(cluster.core, namespace, MANAGED)
    got = phases(cluster, namespace)
    waiting = {name: phase for name, phase in got.items() if phase != "Ready"}
    assert len(got) == count and not waiting, f"not Ready: {waiting}"


def test_creating_an_artifact_writes_each_child_once_and_status_once_per_phase(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    audit = audit_of(cluster).mark()
    create_artifact(cluster, namespace, {
        "metadata": {"name": "web"},
        "spec": {"containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}]}]}})
    wait_for(lambda: phase_of(cluster, namespace, "web") == "Progressing", timeout=30,
             what="Progressing")
    wait_for(lambda: cluster.core.list_namespaced_pod(namespace, label_selector=MANAGED).items,
             timeout=30, what="the pod")
    # Idle writes: the point is a stretch of time. The Deployment controller's updates
    # (replicas, conditions) reach the operator over it and must not cause status writes.
    pause(2)
    progressing = [str(w) for w in audit.writes(namespace) if w.resource != "events"]
    make_pods_ready(cluster.core, namespace, MANAGED)
    wait_for(lambda: phase_of(cluster, namespace, "web") == "Ready", timeout=30, what="Ready")
    pause(2)  # idle writes again: once Ready, the controllers' updates write nothing
    writes = audit.writes(namespace)

    status_write = f"patch artifacts/status {namespace}/web -> 200"
    assert progressing == [f"patch deployments {namespace}/web-api -> 201",
                           f"patch services {namespace}/web-api -> 201",
                           status_write]
    assert [str(w) for w in writes if w.resource != "events"] == [*progressing, status_write]
    # One Event for the reconcile that created both children ("Created Deployment web-api,
    # Service web-api"), not one per child.
    assert [w.verb for w in writes if w.resource == "events"] == ["create"]


def test_a_spec_change_is_acknowledged_while_the_deployment_controller_cannot_make_its_pod(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """The status waits for a new template's first pod to spare a write, but a spec change
    is acknowledged (`observedGeneration`) within `statusChangeSettleSeconds` whatever the
    Deployment controller does: here admission refuses the new pod, and the creation's hold
    is set to ten minutes, so only the change's own short hold can write the status."""
    operator = start_operator(cluster, namespace, tmp_path / "operator.log",
                              env={"ARTIFACT_OPERATOR_STATUS_SETTLE_SECONDS": "600"})
    try:
        container = {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}
        create_artifact(cluster, namespace, {"metadata": {"name": "web"}, "spec": {
            "containerGroups": [{"name": "api", "containers": [container]}]}})
        wait_for(lambda: phase_of(cluster, namespace, "web") is not None, timeout=30,
                 what="generation 1 observed")
        # The change asks for more CPU than the namespace allows a container: admission
        # refuses the new template's pod, and the Deployment controller never makes it.
        cluster.core.create_namespaced_limit_range(namespace, {
            "metadata": {"name": "one-cpu"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}})
        patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {
            "resources": {"requests": {"cpu": "2"}}}}}})

        wait_for(lambda: phase_of(cluster, namespace, "web") == "Progressing", timeout=30,
                 what="generation 2 acknowledged")
        deployment = cluster.apps.read_namespaced_deployment("web-api", namespace)
        assert deployment.status.observed_generation == deployment.metadata.generation
        assert not deployment.status.updated_replicas, "the new template's pod was refused"
    finally:
        operator.stop()


@pytest.fixture(scope="module")
def settled(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A namespace with 50 varied Artifacts (plus one to drift) all Ready, operator stopped."""
    namespace = f"writes-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    log = tmp_path_factory.mktemp("settled") / "operator.log"
    opted_in_secret(cluster.core, namespace, "db.creds")  # what the samples read
    try:
        with OperatorProcess(cluster.kubeconfig, [namespace], log):
            for i in range(UNCHANGED):
                create_artifact(cluster, namespace, sample(i))
            create_artifact(cluster, namespace, sample(0, DRIFTED))
            until_ok(lambda: all_ready(cluster, namespace, UNCHANGED + 1), timeout=180,
                     interval=1, what=f"{UNCHANGED + 1} Ready artifacts")
        yield namespace
    finally:
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespace(namespace)


def start_operator(cluster: Cluster, namespace: str, log: Path,
                   env: dict[str, str] | None = None) -> OperatorProcess:
    return OperatorProcess(cluster.kubeconfig, [namespace], log, env=env).start()


def test_restart_over_50_unchanged_artifacts_makes_no_writes(
        cluster: Cluster, settled: str, tmp_path: Path) -> None:
    namespace = settled
    # One more artifact drifts while the operator is down: its restored Deployment shows
    # that the restarted operator did go over the existing artifacts.
    cluster.apps.delete_namespaced_deployment(f"{DRIFTED}-api", namespace)
    wait_for(lambda: not cluster.apps.list_namespaced_deployment(
        namespace, field_selector=f"metadata.name={DRIFTED}-api").items,
        timeout=30, what="the drifted Deployment to be gone")
    audit = audit_of(cluster).mark()
    operator = start_operator(cluster, namespace, tmp_path / "operator.log")
    try:
        wait_for(lambda: cluster.apps.list_namespaced_deployment(
            namespace, field_selector=f"metadata.name={DRIFTED}-api").items,
            timeout=30, what="the drifted Deployment to be restored")
        # The restarted operator went over every artifact (the drifted one included).
        wait_artifacts_seen(operator, UNCHANGED + 1)
        writes = audit.writes(namespace)
        others = [str(w) for w in writes
                  if w.resource != "events" and not w.name.startswith(DRIFTED)]
        assert others == [], f"writes for unchanged artifacts: {others}"
        assert f"patch deployments {namespace}/{DRIFTED}-api -> 201" in map(str, writes)

        # Leave the drifted one Ready again for the next test.
        until_ok(lambda: all_ready(cluster, namespace, UNCHANGED + 1), timeout=60,
                 interval=1, what="all Ready again")
    finally:
        operator.stop()
        print(operator.logs()[-5000:])


def test_resync_with_no_change_makes_no_writes(
        cluster: Cluster, settled: str, tmp_path: Path) -> None:
    namespace = settled
    assert set(phases(cluster, namespace).values()) == {"Ready"}
    audit = audit_of(cluster).mark()
    operator = start_operator(cluster, namespace, tmp_path / "operator.log",
                              env={"ARTIFACT_OPERATOR_RESYNC_SECONDS": "1"})
    try:
        line = f"resync: {UNCHANGED + 1} artifacts queued"
        wait_for(lambda: operator.logs().count(line) >= 3, timeout=30,
                 what="three resyncs over every artifact")
        # Every artifact was gone over three times at least: at the start, and by two of
        # the resyncs (a resync's passes may coalesce with the next one's, never with none).
        wait_reconciles(operator, 3 * (UNCHANGED + 1),
                        what="three passes over every artifact")
        writes = [str(w) for w in audit.writes(namespace)]
        assert writes == [], f"writes without any change: {writes}"
    finally:
        operator.stop()
        print(operator.logs()[-5000:])
