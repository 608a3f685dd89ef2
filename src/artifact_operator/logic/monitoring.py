"""`runtime.<group>.metrics`: a Prometheus Operator ServiceMonitor of the group's Service, and
the Service's `metrics` port when the metrics are served on another port than the primary
one. Pure.

The ServiceMonitor is named like the group's Service, labelled and owned like every child,
and selects the Service by the group's selector labels. It is rendered only while the cluster
serves `monitoring.coreos.com/v1` ServiceMonitors (logic/served.py); otherwise the condition
`Monitored` says so (`MonitoringApiMissing`) and nothing else changes: monitoring is never a
reason for the workload not to run, nor for `Ready`. The Service's metrics port is rendered
either way (other scrapers can use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.exposure import Metrics
from artifact_operator.api.runtime import RuntimeOverride
from artifact_operator.api.status import Reason
from artifact_operator.logic.containers import HTTP_PORT_NAME
from artifact_operator.logic.served import ServedApis

Manifest = dict[str, Any]
Obj = Mapping[str, Any]

METRICS_PORT_NAME = "metrics"


def service_ports(metrics: Metrics | None, primary_port: int) -> list[Manifest]:
    """The port the Service gains for metrics served apart from the primary port."""
    if metrics is None or metrics.port is None or metrics.port == primary_port:
        return []
    return [{"name": METRICS_PORT_NAME, "port": metrics.port, "targetPort": metrics.port,
             "protocol": "TCP"}]


def objects(artifact: Artifact, group: str, metrics: Metrics | None, primary_port: int,
            meta: Manifest, apis: ServedApis) -> tuple[list[Manifest], list[str]]:
    """The group's ServiceMonitor, and the kinds it asks for that the cluster does not serve
    (not rendered). `meta`: the group's object metadata."""
    if metrics is None:
        return [], []
    if apis.service_monitor is None:
        return [], ["ServiceMonitor"]
    return [service_monitor(artifact, group, metrics, primary_port, meta,
                            apis.service_monitor)], []


def service_monitor(artifact: Artifact, group: str, metrics: Metrics, primary_port: int,
                    meta: Manifest, api_version: str) -> Manifest:
    metadata = dict(meta)
    # Theirs first: the operator's labels (selectors, pruning) always win.
    metadata["labels"] = {**(metrics.labels or {}), **meta["labels"]}
    endpoint: Manifest = {"port": METRICS_PORT_NAME if service_ports(metrics, primary_port)
                          else HTTP_PORT_NAME, "path": metrics.path}
    if metrics.interval is not None:
        endpoint["interval"] = metrics.interval
    return {"apiVersion": api_version, "kind": "ServiceMonitor", "metadata": metadata,
            "spec": {"selector": {"matchLabels": naming.selector(artifact.name, group)},
                     "endpoints": [endpoint]}}


def condition(artifact: Artifact, held: set[str], unserved: Mapping[str, list[str]],
              live: Mapping[tuple[str, str], Obj]) -> tuple[bool, Reason, str] | None:
    """The `Monitored` condition: (status, reason, message); None when no group asks."""
    good, missing, failed = [], [], []
    for group in artifact.spec.container_groups:
        runtime = (artifact.spec.runtime or {}).get(group.name) or RuntimeOverride()
        if runtime.metrics is None or group.name in held:
            continue
        name = naming.group_object_name(artifact.name, group.name)
        if "ServiceMonitor" in unserved.get(group.name, ()):
            missing.append(group.name)
        elif ("ServiceMonitor", name) not in live:
            failed.append(f"ServiceMonitor {name} is not applied")
        else:
            good.append(f"ServiceMonitor {name} selects Service {name} "
                        f"({runtime.metrics.path})")
    if missing:
        return False, Reason.monitoring_api_missing, (
            f"group(s) {', '.join(missing)} not monitored: the cluster does not serve "
            "monitoring.coreos.com/v1 ServiceMonitors (install the Prometheus Operator's "
            "CRDs and the operator renders them); the workload runs regardless")
    if failed:
        return False, Reason.apply_failed, "; ".join(failed)
    if good:
        return True, Reason.monitored, "; ".join(good)
    return None
