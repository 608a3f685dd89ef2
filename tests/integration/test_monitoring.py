"""runtime.<group>.metrics on the real control plane, with the operator run as users run it:
with the Prometheus Operator's ServiceMonitor CRD installed, a ServiceMonitor selecting the
group's Service (which gains a `metrics` port), owned, put back when deleted, changed with the
spec and pruned when `metrics` goes; without the CRD, a clear condition and the workload Ready
all the same. No Prometheus runs here: what is shown is what it would be given to scrape.
No kubelet either: the test plays it for the pods (tests/support/kubelet.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact
from ..support import optional_crds
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from .test_exposure import (
    condition,
    owned_and_labelled,
    ready,
    start_operator,  # noqa: F401 - a fixture
    status,
)

pytestmark = pytest.mark.cluster

SM = ("monitoring.coreos.com", "v1", "servicemonitors")
METRICS = {"port": 9090, "path": "/stats", "interval": "15s", "labels": {"release": "prom"}}


def monitor(cluster: Cluster, namespace: str) -> Any:
    return found(cluster.custom.get_namespaced_custom_object, *SM[:2], namespace, SM[2],
                 "web-api")


def service_ports(cluster: Cluster, namespace: str) -> list[tuple[str, int, Any]]:
    service = cluster.core.read_namespaced_service("web-api", namespace)
    return [(p.name, p.port, p.target_port) for p in service.spec.ports]


monitoring_api = optional_crds.served("ServiceMonitor")
no_monitoring_api = optional_crds.not_served("ServiceMonitor")


def test_a_servicemonitor_selects_the_groups_service(
        cluster: Cluster, namespace: str, monitoring_api: None,
        start_operator: Callable[..., OperatorProcess]) -> None:  # noqa: F811
    start_operator()
    create_artifact(cluster, namespace, service_artifact("web", runtime={"api": {
        "metrics": METRICS}}))
    made = wait_for(lambda: monitor(cluster, namespace), timeout=30, what="the ServiceMonitor")
    owned_and_labelled(made, cluster, namespace)
    assert made["metadata"]["labels"]["release"] == "prom"
    assert made["spec"] == {
        "selector": {"matchLabels": {"workload.dev/artifact": "web",
                                     "workload.dev/container-group": "api"}},
        "endpoints": [{"port": "metrics", "path": "/stats", "interval": "15s"}]}
    # What it selects: the group's Service, by its labels, with the port it names.
    service = cluster.core.read_namespaced_service("web-api", namespace)
    assert made["spec"]["selector"]["matchLabels"].items() <= service.metadata.labels.items()
    assert service_ports(cluster, namespace) == [("http", 8080, "http"),
                                                 ("metrics", 9090, 9090)]
    wait_for(lambda: ready(cluster, namespace), timeout=60, what="Ready")
    wait_for(lambda: condition(cluster, namespace, "Monitored").get("status") == "True",
             timeout=30, what="Monitored")

    # Deleted, it is made again.
    uid = made["metadata"]["uid"]
    cluster.custom.delete_namespaced_custom_object(*SM[:2], namespace, SM[2], "web-api")
    wait_for(lambda: (m := monitor(cluster, namespace)) is not None
             and m["metadata"]["uid"] != uid, timeout=30, what="the ServiceMonitor re-created")

    # Metrics on the primary port: the Service's extra port goes, the monitor scrapes `http`.
    patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {"metrics": {
        "port": None, "labels": None, "interval": None}}}}})
    wait_for(lambda: monitor(cluster, namespace)["spec"]["endpoints"] ==
             [{"port": "http", "path": "/stats"}], timeout=30, what="the monitor on http")
    wait_for(lambda: service_ports(cluster, namespace) == [("http", 8080, "http")],
             timeout=30, what="the Service without the metrics port")

    # Without metrics: pruned, and the condition goes.
    patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {"metrics": None}}}})
    wait_for(lambda: monitor(cluster, namespace) is None, timeout=30,
             what="the ServiceMonitor pruned")
    wait_for(lambda: not condition(cluster, namespace, "Monitored"), timeout=30,
             what="no Monitored condition")


def test_without_the_servicemonitor_api_a_condition_says_so_and_the_workload_runs(
        cluster: Cluster, namespace: str, no_monitoring_api: None,
        start_operator: Callable[..., OperatorProcess]) -> None:  # noqa: F811
    start_operator()
    create_artifact(cluster, namespace, service_artifact("web", runtime={"api": {
        "metrics": METRICS}}))
    wait_for(lambda: ready(cluster, namespace), timeout=60, what="Ready")
    cond = wait_for(lambda: condition(cluster, namespace, "Monitored"), timeout=30,
                    what="the Monitored condition")
    assert (cond["status"], cond["reason"]) == ("False", "MonitoringApiMissing")
    assert "monitoring.coreos.com/v1 ServiceMonitors" in cond["message"]
    assert condition(cluster, namespace, "Degraded")["status"] == "False"
    assert status(cluster, namespace)["phase"] == "Ready"
    # The Service has the metrics port all the same, for other scrapers.
    assert ("metrics", 9090, 9090) in service_ports(cluster, namespace)
    assert get_artifact(cluster, namespace, "web")["status"]["observedGeneration"] == 1
