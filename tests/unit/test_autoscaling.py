"""runtime.<group>.autoscaling: a HorizontalPodAutoscaler, and a Deployment without replicas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

from artifact_operator.logic.autoscaling import scale_of
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..support.builders import in_namespace, parsed, service_artifact


def scaled(**scaling: Any) -> Any:
    manifest = service_artifact("web", uid="u-1",
                                runtime={"api": {"autoscaling": {"maxReplicas": 5, **scaling}}})
    return parsed(in_namespace(manifest, "team-a"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_an_hpa_targets_the_groups_deployment_which_leaves_replicas_to_it() -> None:
    objects = render(scaled(minReplicas=2, targetCpuUtilization=70,
                            targetMemoryUtilization=80), Settings()).objects
    (deployment,) = of_kind(objects, "Deployment")
    assert "replicas" not in deployment["spec"]
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["name"] == "web-api"
    assert hpa["metadata"]["labels"] == deployment["metadata"]["labels"]
    assert hpa["metadata"]["ownerReferences"] == deployment["metadata"]["ownerReferences"]
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-api"},
        "minReplicas": 2, "maxReplicas": 5,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 70}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {
                "type": "Utilization", "averageUtilization": 80}}}]}


def test_without_a_target_the_hpas_own_default_applies() -> None:
    (hpa,) = of_kind(render(scaled(), Settings()).objects, "HorizontalPodAutoscaler")
    assert "metrics" not in hpa["spec"] and hpa["spec"]["minReplicas"] == 1


def test_custom_and_external_metrics_pass_through_after_the_targets() -> None:
    external = {"type": "External", "external": {
        "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
        "target": {"type": "AverageValue", "averageValue": "30"}}}
    (hpa,) = of_kind(render(scaled(targetCpuUtilization=50, metrics=[external]),
                            Settings()).objects, "HorizontalPodAutoscaler")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "External"]
    assert hpa["spec"]["metrics"][1] == external


@pytest.mark.parametrize(("api_version", "kube"), [
    ("autoscaling/v2beta2", all_versions()[0]), ("autoscaling/v2", all_versions()[-1])])
def test_the_hpa_is_valid_for_the_servers_that_serve_its_version(api_version: str,
                                                                 kube: str) -> None:
    external = {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {
        "type": "AverageValue", "averageValue": "100"}}}
    settings = Settings(hpa_api_version=api_version)  # type: ignore[arg-type]
    (hpa,) = of_kind(render(scaled(targetCpuUtilization=60, metrics=[external]),
                            settings).objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == api_version
    kubernetes_validate.validate(hpa, kube, strict=True)


def test_no_autoscaling_no_hpa() -> None:
    manifest = in_namespace(service_artifact("web", uid="u-1", replicas=3), "team-a")
    objects = render(parsed(manifest), Settings()).objects
    assert not of_kind(objects, "HorizontalPodAutoscaler")
    assert of_kind(objects, "Deployment")[0]["spec"]["replicas"] == 3


def test_what_the_hpas_status_says() -> None:
    assert scale_of(None) is None
    live = {"status": {"currentReplicas": 2, "desiredReplicas": 4, "conditions": [
        {"type": "AbleToScale", "status": "True"},
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
         "message": "unable to get metrics for resource cpu"}]}}
    scale = scale_of(live)
    assert scale is not None and (scale.current, scale.desired) == (2, 4)
    assert scale.problem == "ScalingActive: unable to get metrics for resource cpu"


def test_status_reports_the_hpa_and_counts_its_replicas() -> None:
    from artifact_operator.api.status import ArtifactStatus
    from artifact_operator.logic.status import Observed, compute_status

    art = scaled(minReplicas=2)
    rendered = render(art, Settings())
    live = {("HorizontalPodAutoscaler", "web-api"): {"status": {
        "currentReplicas": 3, "desiredReplicas": 3}}}
    status = compute_status(art, Observed(rendered=rendered, live=live), Settings(),
                            ArtifactStatus(), "2026-01-01T00:00:00Z").dump()
    (group,) = status["containerGroups"]
    assert group["autoscaler"] == {"minReplicas": 2, "maxReplicas": 5, "currentReplicas": 3,
                                   "desiredReplicas": 3}
    assert group["replicas"] == 3 and status["ready"] == "0/3"
