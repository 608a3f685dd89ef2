"""What a group with a Service offers beyond it, as `runtime.<group>` asks: an Ingress or
HTTPRoute (logic/exposure.py) and a ServiceMonitor (logic/monitoring.py). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.runtime import RuntimeOverride
from artifact_operator.api.status import Reason
from artifact_operator.logic import exposure, monitoring
from artifact_operator.logic.metadata import meta
from artifact_operator.logic.served import ServedApis

Manifest = dict[str, Any]


def reach_objects(artifact: Artifact, group: str, service: Manifest, owner: Manifest | None,
                  apis: ServedApis, unserved: dict[str, list[str]]) -> list[Manifest]:
    """The group's Ingress or HTTPRoute and ServiceMonitor for its rendered `service`; the
    kinds the cluster does not serve are left out and added to `unserved[group]`."""
    runtime = (artifact.spec.runtime or {}).get(group) or RuntimeOverride()
    name = naming.group_object_name(artifact.name, group)
    port = int(service["spec"]["ports"][0]["port"])
    out: list[Manifest] = []
    for made, missing in (
            exposure.objects(runtime.expose, name, port, meta(artifact, name, group, owner),
                             apis),
            monitoring.objects(artifact, group, runtime.metrics, port,
                               meta(artifact, name, group, owner), apis)):
        out.extend(made)
        if missing:
            unserved.setdefault(group, []).extend(missing)
    return out


def reach_status(artifact: Artifact, held: set[str], unserved: Mapping[str, list[str]],
                 live: Mapping[tuple[str, str], Any]
                 ) -> tuple[list[tuple[str, bool, Reason, str]], dict[str, str]]:
    """The conditions `Exposed` and `Monitored` (type, status, reason, message), each only
    when a rendered group asks for it, and each group's external endpoint where known."""
    reached = exposure.reaches(artifact, held, unserved, live)
    conditions = [(type_, *found) for type_, found in (
        ("Exposed", exposure.condition(reached)),
        ("Monitored", monitoring.condition(artifact, held, unserved, live)))
        if found is not None]
    endpoints = {group: r.endpoint for group, r in reached.items() if r.endpoint}
    return conditions, endpoints
