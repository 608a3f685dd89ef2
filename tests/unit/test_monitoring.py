"""runtime.<group>.metrics: a ServiceMonitor of the group's Service (and a metrics port on
it), only where the cluster serves ServiceMonitors, and the Monitored condition; which
optional APIs are served, asked at start and again while one is missing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from artifact_operator.api.status import ArtifactStatus, Reason
from artifact_operator.api.validation import validate
from artifact_operator.controller.apis import discover_forever, served_apis
from artifact_operator.logic.render import render
from artifact_operator.logic.served import ServedApis
from artifact_operator.logic.status import Observed, compute_status
from artifact_operator.settings import Settings

from ..support.builders import artifact, group, in_namespace, parsed, primary, service_artifact

NOW = "2026-01-01T00:00:00Z"


def monitored(**metrics: Any) -> Any:
    manifest = service_artifact("web", uid="u-1", runtime={"api": {"metrics": metrics}})
    return parsed(in_namespace(manifest, "team-a"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def monitored_condition(art: Any, live: dict[tuple[str, str], Any],
                        apis: ServedApis | None = None) -> dict[str, Any] | None:
    rendered = render(art, Settings(), apis=apis)
    status = compute_status(art, Observed(rendered=rendered, live=live), Settings(),
                            ArtifactStatus(), NOW).dump()
    return next((c for c in status["conditions"] if c["type"] == "Monitored"), None)


def test_a_servicemonitor_scrapes_a_metrics_port_the_service_gains() -> None:
    objects = render(monitored(port=9090, path="/stats", interval="15s",
                               labels={"release": "prom", "workload.dev/artifact": "x"}),
                     Settings()).objects
    (service,) = of_kind(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == "web-api"
    assert monitor["metadata"]["ownerReferences"] == service["metadata"]["ownerReferences"]
    # Theirs added; ours win where they clash.
    assert monitor["metadata"]["labels"] == {"release": "prom", **service["metadata"]["labels"]}
    assert monitor["spec"] == {
        "selector": {"matchLabels": service["spec"]["selector"]},
        "endpoints": [{"port": "metrics", "path": "/stats", "interval": "15s"}]}


@pytest.mark.parametrize("port", [None, 8080])
def test_metrics_on_the_primary_port_scrape_it_and_add_no_port(port: int | None) -> None:
    objects = render(monitored(**({"port": port} if port else {})), Settings()).objects
    (service,) = of_kind(objects, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics"}]


def test_without_the_servicemonitor_api_nothing_but_the_port_changes() -> None:
    rendered = render(monitored(port=9090), Settings(), apis=ServedApis(service_monitor=None))
    assert not rendered.of_kind("ServiceMonitor")
    assert rendered.unserved == {"api": ["ServiceMonitor"]}
    assert [p["name"] for p in rendered.of_kind("Service")[0]["spec"]["ports"]] == \
        ["http", "metrics"]


def test_the_monitored_condition() -> None:
    art = monitored()
    missing = monitored_condition(art, {}, ServedApis(service_monitor=None))
    assert missing is not None and missing["status"] == "False"
    assert missing["reason"] == Reason.monitoring_api_missing.value
    assert "the workload runs regardless" in missing["message"]
    failed = monitored_condition(art, {})
    assert failed is not None and failed["reason"] == Reason.apply_failed.value
    ok = monitored_condition(art, {("ServiceMonitor", "web-api"): {}})
    assert ok is not None and (ok["status"], ok["reason"]) == ("True", "Monitored")
    assert monitored_condition(parsed(in_namespace(service_artifact("web", uid="u"), "n")),
                               {}) is None


def test_label_keys_are_checked_by_validate() -> None:
    doc = artifact("web", group("api", primary()),
                   runtime={"api": {"metrics": {"labels": {"-bad": "v", "good": "v"}}}})
    assert [v.path for v in validate(doc)] == ["spec.runtime.api.metrics.labels.-bad"]
    doc["spec"]["runtime"]["api"]["metrics"] = {"labels": {"ok": "not a value!"}}
    assert [v.path for v in validate(doc)] == ["spec.runtime.api.metrics.labels.ok"]


# -- which optional APIs are served --------------------------------------------------------------

class Discovery:
    """The API server's discovery, as Kube.serves reads it: the (version, plural) served."""

    def __init__(self, *served: tuple[str, str]) -> None:
        self.served = set(served)
        self.asked = 0

    async def serves(self, api_version: str, plural: str) -> bool:
        self.asked += 1
        return (api_version, plural) in self.served


async def test_the_newest_served_version_of_each_is_found() -> None:
    kube = Discovery(("gateway.networking.k8s.io/v1beta1", "httproutes"))
    apis = await served_apis(kube)  # type: ignore[arg-type]
    assert apis == ServedApis(http_route="gateway.networking.k8s.io/v1beta1",
                              service_monitor=None)
    assert apis.kinds() == [("gateway.networking.k8s.io/v1beta1", "HTTPRoute")]
    assert not apis.complete


async def test_asked_again_while_one_is_missing_until_all_are_served() -> None:
    kube = Discovery()
    seen: list[ServedApis] = []

    async def changed(apis: ServedApis) -> None:
        seen.append(apis)
        if apis.service_monitor is None:
            kube.served.add(("monitoring.coreos.com/v1", "servicemonitors"))

    kube.served.add(("gateway.networking.k8s.io/v1", "httproutes"))
    await asyncio.wait_for(discover_forever(kube, ServedApis(None, None),  # type: ignore[arg-type]
                                            0.01, changed), timeout=5)
    assert seen == [ServedApis("gateway.networking.k8s.io/v1", None),
                    ServedApis("gateway.networking.k8s.io/v1", "monitoring.coreos.com/v1")]


async def test_a_failed_start_of_the_watch_is_retried() -> None:
    kube = Discovery(("monitoring.coreos.com/v1", "servicemonitors"))
    calls: list[ServedApis] = []

    async def changed(apis: ServedApis) -> None:
        calls.append(apis)
        if len(calls) == 1:
            raise TimeoutError("not listed in time")

    start = ServedApis(http_route="gateway.networking.k8s.io/v1", service_monitor=None)
    await asyncio.wait_for(discover_forever(kube, start, 0.01, changed),  # type: ignore[arg-type]
                           timeout=5)
    assert len(calls) == 2 and calls[0] == calls[1]
