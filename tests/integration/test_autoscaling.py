"""runtime.<group>.autoscaling on the real control plane (with kube-controller-manager's HPA
controller): the operator renders the HPA in the version the server serves (v2beta2 on 1.20),
leaves the Deployment's replicas to it with no write loop (counted in the audit log), reports
it in status, and prunes it when autoscaling goes."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact, require_audit_log
from ..support.audit import AuditLog
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

SCALING = {"minReplicas": 2, "maxReplicas": 4, "targetCpuUtilization": 60}


def hpa_version(cluster: Cluster) -> str:
    groups = client.ApisApi(cluster.api).get_api_versions().groups
    (autoscaling,) = [g for g in groups if g.name == "autoscaling"]
    served = {v.version for v in autoscaling.versions}
    return "v2" if "v2" in served else "v2beta2"


def hpa(cluster: Cluster, namespace: str, version: str) -> Any:
    return found(cluster.custom.get_namespaced_custom_object, "autoscaling", version,
                 namespace, "horizontalpodautoscalers", "web-api")


def reconciled(cluster: Cluster, namespace: str, note: str) -> None:
    patch_artifact(cluster, namespace, "web", {"spec": {"description": note}})
    generation = get_artifact(cluster, namespace, "web")["metadata"]["generation"]
    wait_for(lambda: get_artifact(cluster, namespace, "web").get("status", {}).get(
        "observedGeneration") == generation, timeout=30, what=f"reconciled ({note})")


def test_an_autoscaled_group_leaves_its_replicas_to_the_hpa(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    version = hpa_version(cluster)
    audit = AuditLog(require_audit_log(cluster)).mark()
    create_artifact(cluster, namespace, service_artifact(
        "web", runtime={"api": {"autoscaling": SCALING}}))
    made = wait_for(lambda: hpa(cluster, namespace, version), timeout=30, what="the HPA")
    assert made["apiVersion"] == f"autoscaling/{version}"
    assert made["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web-api"}
    assert (made["spec"]["minReplicas"], made["spec"]["maxReplicas"]) == (2, 4)
    assert made["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # The HPA controller scales the Deployment to its minimum (no metrics here: it says so).
    wait_for(lambda: cluster.apps.read_namespaced_deployment(
        "web-api", namespace).spec.replicas == 2, timeout=60, what="the HPA's 2 replicas")

    def reported() -> dict[str, Any]:
        (group,) = get_artifact(cluster, namespace, "web")["status"]["containerGroups"]
        scaler = group.get("autoscaler") or {}
        assert (scaler.get("minReplicas"), scaler.get("maxReplicas"),
                scaler.get("desiredReplicas"), group["replicas"]) == (2, 4, 2, 2), group
        return dict(scaler)

    wait_for(reported, timeout=60, what="the HPA in status")
    for note in ("one", "two"):
        reconciled(cluster, namespace, note)
    assert cluster.apps.read_namespaced_deployment("web-api", namespace).spec.replicas == 2
    writes = [str(w) for w in audit.writes(namespace)
              if w.resource in ("deployments", "horizontalpodautoscalers")]
    assert writes == [f"patch deployments {namespace}/web-api -> 201",
                      f"patch horizontalpodautoscalers {namespace}/web-api -> 201"], writes

    # Back to a fixed count: the HPA goes, the operator sets replicas again.
    patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {
        "autoscaling": None, "replicas": 3}}}})
    wait_for(lambda: hpa(cluster, namespace, version) is None, timeout=30,
             what="the HPA pruned")
    wait_for(lambda: cluster.apps.read_namespaced_deployment(
        "web-api", namespace).spec.replicas == 3, timeout=30, what="3 replicas")
