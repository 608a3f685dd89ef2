"""Other writers on our children (SPEC: the operator stays out of the way): a field we do not
own is kept (an HPA's replicas when `runtime.replicas` is unset, annotations other tools add,
a mesh sidecar a mutating webhook injects into the pod template), a field we own is restored,
and neither starts a fight or a write loop: the operator's writes are counted in the audit log.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact, require_audit_log
from ..support.audit import AuditLog
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

SIDECAR = {"name": "mesh-proxy", "image": "envoyproxy/envoy:v1.31.0"}


def deployment(cluster: Cluster, namespace: str) -> Any:
    return cluster.apps.read_namespaced_deployment("web-api", namespace)


def reconciled_after_a_spec_change(cluster: Cluster, namespace: str, note: str) -> None:
    """A change of the artifact (its description) and the reconcile that follows it."""
    patch_artifact(cluster, namespace, "web", {"spec": {"description": note}})
    generation = get_artifact(cluster, namespace, "web")["metadata"]["generation"]
    wait_for(lambda: get_artifact(cluster, namespace, "web").get("status", {}).get(
        "observedGeneration") == generation, timeout=30, what=f"reconciled ({note})")


def apply_as(cluster: Cluster, namespace: str, manager: str, body: dict[str, Any]) -> None:
    """Server-side apply by another field manager, as controllers and webhooks write."""
    cluster.apps.patch_namespaced_deployment(
        "web-api", namespace, body, field_manager=manager, force=True,
        _content_type="application/apply-patch+yaml")


def test_other_writers_fields_are_kept_ours_restored_and_nobody_loops(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, service_artifact("web"))  # no runtime.replicas
    wait_for(lambda: found(cluster.apps.read_namespaced_deployment, "web-api", namespace),
             timeout=30, what="Deployment web-api")
    reconciled_after_a_spec_change(cluster, namespace, "settled")
    audit = AuditLog(require_audit_log(cluster)).mark()

    # An HPA scales through the scale subresource.
    cluster.apps.patch_namespaced_deployment_scale("web-api", namespace,
                                                   {"spec": {"replicas": 3}})
    # Tools annotate the Deployment and its pod template.
    cluster.apps.patch_namespaced_deployment("web-api", namespace, {
        "metadata": {"annotations": {"example.com/team": "shop"}},
        "spec": {"template": {"metadata": {"annotations": {"example.com/scrape": "true"}}}}})
    # A mesh's mutating webhook adds its sidecar to the pod template.
    apply_as(cluster, namespace, "mesh-injector", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-api", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [SIDECAR]}}}})
    # And someone changes a field the operator owns: the image of its container.
    cluster.apps.patch_namespaced_deployment("web-api", namespace, {"spec": {"template": {
        "spec": {"containers": [{"name": "app", "image": "evil:latest"}]}}}})

    def restored() -> Any:
        live = deployment(cluster, namespace)
        images = {c.name: c.image for c in live.spec.template.spec.containers}
        assert images == {"app": "nginx:1.27", "mesh-proxy": SIDECAR["image"]}, images
        return live

    live = wait_for(restored, timeout=30, what="our image restored, the sidecar kept")
    assert live.spec.replicas == 3
    assert live.metadata.annotations["example.com/team"] == "shop"
    assert live.spec.template.metadata.annotations["example.com/scrape"] == "true"
    for note in ("again", "and again"):  # more reconciles: nothing more to write
        reconciled_after_a_spec_change(cluster, namespace, note)
    writes = [str(w) for w in audit.writes(namespace) if w.resource == "deployments"]
    assert writes == [f"patch deployments {namespace}/web-api -> 200"], writes
    live = deployment(cluster, namespace)
    assert live.spec.replicas == 3
    assert [c.name for c in live.spec.template.spec.containers] == ["app", "mesh-proxy"]
