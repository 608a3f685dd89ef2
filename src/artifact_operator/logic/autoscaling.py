"""The HorizontalPodAutoscaler of a group with `runtime.<group>.autoscaling`, and what its
status says. Pure.

`autoscaling/v2` and `v2beta2` share the shape used here (metrics, `target.averageUtilization`),
so one rendering serves both; the API version is the one the server serves
(`Settings.hpa_api_version`, chosen at start). The Deployment then carries no `replicas` (the
runtime rule makes autoscaling and replicas exclusive), so the HPA's count is never fought.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import ContainerGroup
from artifact_operator.api.runtime import Autoscaling

Manifest = dict[str, Any]


def _resource(name: str, utilization: int) -> Manifest:
    return {"type": "Resource", "resource": {
        "name": name, "target": {"type": "Utilization", "averageUtilization": utilization}}}


def metrics(scaling: Autoscaling) -> list[Manifest]:
    out = []
    if scaling.target_cpu_utilization is not None:
        out.append(_resource("cpu", scaling.target_cpu_utilization))
    if scaling.target_memory_utilization is not None:
        out.append(_resource("memory", scaling.target_memory_utilization))
    out.extend(dict(m) for m in scaling.metrics or [])
    return out


def hpa(artifact: Artifact, group: ContainerGroup, scaling: Autoscaling,
        meta: Manifest, api_version: str) -> Manifest:
    """`meta`: the group's object metadata (name, labels, owner), as the Deployment's."""
    spec: Manifest = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": naming.group_object_name(artifact.name, group.name)},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
    }
    wanted = metrics(scaling)
    if wanted:  # none: the HPA's default, 80% average CPU utilization
        spec["metrics"] = wanted
    return {"apiVersion": api_version, "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": spec}


@dataclass(frozen=True)
class Scale:
    """What an HPA says of its target."""

    current: int
    desired: int
    # Why it cannot scale as asked (a condition of the HPA that is False), if anything.
    problem: str | None = None


def scale_of(live: Mapping[str, Any] | None) -> Scale | None:
    if live is None:
        return None
    status = live.get("status") or {}
    problem = next((f"{c.get('type')}: {c.get('message') or c.get('reason')}"
                    for c in status.get("conditions") or []
                    if c.get("type") in ("AbleToScale", "ScalingActive")
                    and c.get("status") == "False"), None)
    return Scale(current=int(status.get("currentReplicas", 0)),
                 desired=int(status.get("desiredReplicas", 0)), problem=problem)
