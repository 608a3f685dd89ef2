"""runtime.<group>.expose: an Ingress or an HTTPRoute to the group's Service, only where the
cluster serves it, and what their status says (externalEndpoint, the Exposed condition)."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.api.status import ArtifactStatus, Reason
from artifact_operator.api.validation import validate
from artifact_operator.logic.render import render
from artifact_operator.logic.served import ServedApis
from artifact_operator.logic.status import Observed, compute_status
from artifact_operator.settings import Settings

from ..support.builders import (
    artifact,
    container,
    group,
    in_namespace,
    parsed,
    primary,
    service_artifact,
)

NOW = "2026-01-01T00:00:00Z"
ROUTE = {"parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"}],
         "hostnames": ["*.example.com", "web.example.com"], "path": "/v1", "scheme": "https"}


def exposed(expose: dict[str, Any], **runtime: Any) -> Any:
    manifest = service_artifact("web", uid="u-1", runtime={"api": {"expose": expose,
                                                                   **runtime}})
    return parsed(in_namespace(manifest, "team-a"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def status_of(art: Any, live: dict[tuple[str, str], Any],
              apis: ServedApis | None = None) -> dict[str, Any]:
    rendered = render(art, Settings(), apis=apis)
    return compute_status(art, Observed(rendered=rendered, live=live), Settings(),
                          ArtifactStatus(), NOW).dump()


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == type_), None)


# -- rendering -------------------------------------------------------------------------------

def test_an_ingress_routes_the_host_and_path_to_the_groups_service() -> None:
    objects = render(exposed({"ingress": {
        "host": "web.example.com", "path": "/v1", "pathType": "Exact", "className": "nginx",
        "tlsSecret": "web-tls", "annotations": {"cert-manager.io/cluster-issuer": "le"}}}),
        Settings()).objects
    (service,) = of_kind(objects, "Service")
    (ingress,) = of_kind(objects, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["name"] == service["metadata"]["name"] == "web-api"
    assert ingress["metadata"]["labels"] == service["metadata"]["labels"]
    assert ingress["metadata"]["ownerReferences"] == service["metadata"]["ownerReferences"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "le"}
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
        "rules": [{"host": "web.example.com", "http": {"paths": [{
            "path": "/v1", "pathType": "Exact",
            "backend": {"service": {"name": "web-api", "port": {"number": 8080}}}}]}}]}


def test_an_ingress_without_a_host_takes_every_host_at_the_root() -> None:
    (ingress,) = of_kind(render(exposed({"ingress": {}}), Settings()).objects, "Ingress")
    assert "annotations" not in ingress["metadata"]
    assert ingress["spec"] == {"rules": [{"http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web-api", "port": {"number": 8080}}}}]}}]}


@pytest.mark.parametrize("version", ["gateway.networking.k8s.io/v1",
                                     "gateway.networking.k8s.io/v1beta1"])
def test_an_httproute_attaches_to_its_gateways_in_the_served_version(version: str) -> None:
    objects = render(exposed({"httpRoute": ROUTE}), Settings(),
                     apis=ServedApis(http_route=version)).objects
    (route,) = of_kind(objects, "HTTPRoute")
    assert route["apiVersion"] == version
    assert route["metadata"]["name"] == "web-api"
    assert route["spec"] == {
        "parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"}],
        "hostnames": ["*.example.com", "web.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                   "backendRefs": [{"name": "web-api", "port": 8080}]}]}
    assert not of_kind(objects, "Ingress")


def test_without_the_gateway_api_no_route_is_rendered_and_the_rest_is() -> None:
    rendered = render(exposed({"httpRoute": ROUTE}), Settings(),
                      apis=ServedApis(http_route=None))
    assert not rendered.of_kind("HTTPRoute")
    assert rendered.unserved == {"api": ["HTTPRoute"]}
    assert rendered.of_kind("Deployment") and rendered.of_kind("Service")
    # An Ingress needs no optional API: it is always rendered.
    assert render(exposed({"ingress": {}}), Settings(),
                  apis=ServedApis(http_route=None)).of_kind("Ingress")


def test_no_expose_nothing_more() -> None:
    objects = render(parsed(in_namespace(service_artifact("web", uid="u-1"), "team-a")),
                     Settings()).objects
    assert {o["kind"] for o in objects} == {"Deployment", "Service"}


def test_a_group_held_back_gets_no_route_and_reports_none() -> None:
    manifest = artifact("web", group("api", primary(image=None, imageBuildConfig={
        "dockerfile": {"path": "Dockerfile"}})), uid="u-1",
        runtime={"api": {"expose": {"ingress": {}}}})
    art = parsed(in_namespace(manifest, "team-a"))
    rendered = render(art, Settings())
    assert not rendered.of_kind("Ingress")
    assert condition(status_of(art, {}), "Exposed") is None


# -- status ----------------------------------------------------------------------------------

def ingress_with(*balancers: dict[str, str]) -> dict[str, Any]:
    return {"status": {"loadBalancer": {"ingress": list(balancers)}}}


@pytest.mark.parametrize(("spec", "balancer", "url"), [
    ({"host": "web.example.com", "tlsSecret": "t", "path": "/v1"}, {"ip": "203.0.113.7"},
     "https://web.example.com/v1"),
    ({"host": "web.example.com"}, {"hostname": "lb.cloud.example"}, "http://web.example.com/"),
    ({}, {"hostname": "lb.cloud.example"}, "http://lb.cloud.example/"),
    ({"host": "*.example.com", "path": "/a"}, {"ip": "203.0.113.7"}, "http://203.0.113.7/a"),
])
def test_the_external_endpoint_once_the_ingress_has_an_address(
        spec: dict[str, Any], balancer: dict[str, str], url: str) -> None:
    art = exposed({"ingress": spec})
    waiting = status_of(art, {("Ingress", "web-api"): ingress_with()})
    assert "externalEndpoint" not in waiting["containerGroups"][0]
    cond = condition(waiting, "Exposed")
    assert cond is not None and cond["status"] == "False"
    assert cond["reason"] == Reason.awaiting_address.value
    status = status_of(art, {("Ingress", "web-api"): ingress_with(balancer)})
    assert status["containerGroups"][0]["externalEndpoint"] == url
    assert status["externalEndpoint"] == url
    cond = condition(status, "Exposed")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "Exposed")
    assert url in cond["message"]


def route_with(*parents: tuple[str, str, str]) -> dict[str, Any]:
    return {"status": {"parents": [
        {"controllerName": "example.com/gateway", "parentRef": {"name": name,
                                                                "namespace": "infra"},
         "conditions": [{"type": "Accepted", "status": status, "reason": reason,
                         "message": "m", "lastTransitionTime": NOW}]}
        for name, status, reason in parents]}}


def test_the_external_endpoint_once_a_gateway_accepts_the_route() -> None:
    art = exposed({"httpRoute": ROUTE})
    none_yet = condition(status_of(art, {("HTTPRoute", "web-api"): {}}), "Exposed")
    assert none_yet is not None and none_yet["reason"] == Reason.route_not_accepted.value
    assert "no Gateway has accepted it yet" in none_yet["message"]
    refused = condition(status_of(art, {("HTTPRoute", "web-api"): route_with(
        ("edge", "False", "NotAllowedByListeners"))}), "Exposed")
    assert refused is not None and refused["status"] == "False"
    assert "infra/edge: NotAllowedByListeners" in refused["message"]
    status = status_of(art, {("HTTPRoute", "web-api"): route_with(
        ("other", "False", "NoMatchingParent"), ("edge", "True", "Accepted"))})
    # The first host name that is not a wildcard, with the scheme the spec gives.
    assert status["containerGroups"][0]["externalEndpoint"] == "https://web.example.com/v1"
    cond = condition(status, "Exposed")
    assert cond is not None and cond["status"] == "True"
    assert "accepted by infra/edge" in cond["message"]


def test_a_route_without_host_names_is_exposed_without_a_url() -> None:
    art = exposed({"httpRoute": {"parentRefs": [{"name": "edge"}]}})
    status = status_of(art, {("HTTPRoute", "web-api"): route_with(("edge", "True", "A"))})
    assert "externalEndpoint" not in status["containerGroups"][0]
    cond = condition(status, "Exposed")
    assert cond is not None and cond["status"] == "True"
    assert "the Gateway's address" in cond["message"]


def test_a_missing_gateway_api_is_said_and_does_not_hold_ready_back() -> None:
    art = exposed({"httpRoute": ROUTE})
    ready = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "True",
                        "reason": "NewReplicaSetAvailable"}]}}
    status = status_of(art, {("Deployment", "web-api"): ready},
                       apis=ServedApis(http_route=None))
    assert status["phase"] == "Ready"
    assert condition(status, "Ready")["status"] == "True"  # type: ignore[index]
    cond = condition(status, "Exposed")
    assert cond is not None and cond["status"] == "False"
    assert cond["reason"] == Reason.route_api_missing.value
    assert "does not serve the Gateway API" in cond["message"]


# -- rules -------------------------------------------------------------------------------------

def violations(runtime: dict[str, Any], *containers: dict[str, Any]) -> list[str]:
    doc = artifact("web", group("api", *containers), runtime={"api": runtime})
    return [str(v) for v in validate(doc)]


def test_annotation_keys_are_checked_by_validate() -> None:
    bad = violations({"expose": {"ingress": {"annotations": {"bad key": "v", "ok/k": "v"}}}},
                     primary())
    assert bad == ["spec.runtime.api.expose.ingress.annotations.bad key: annotation keys are "
                   "an optional DNS subdomain and '/', then at most 63 letters, digits, '-', "
                   "'_' or '.', starting and ending with a letter or digit"]


def test_schema_limits_of_expose() -> None:
    assert any("pattern" in v or "should match" in v for v in violations(
        {"expose": {"ingress": {"path": "v1"}}}, primary()))
    assert any("parentRefs" in v for v in violations(
        {"expose": {"httpRoute": {"parentRefs": []}}}, primary()))
    assert violations({"expose": {"ingress": {"host": "web.example.com"}}},
                      primary(), container("side")) == []
