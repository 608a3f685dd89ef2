"""runtime.<group>.expose on the real control plane, with the operator run as users run it:
an Ingress (networking.k8s.io/v1, served by every supported server) or a Gateway API HTTPRoute
(only with its CRD installed: with it, and without it and then with it installed while the
operator runs). Rendered, owned and labelled like every child, put back after an edit or a
deletion, pruned when `expose` goes; status shows the external URL once the route is live.

No ingress controller or Gateway runs here: where they would write the status of the Ingress
or HTTPRoute (the load balancer's address; a parent's Accepted condition), the test writes it
through the status subresource, as they do. No kubelet either: the test plays it for the pods
(tests/support/kubelet.py), so that the artifact can become Ready.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact
from ..support import optional_crds
from ..support.builders import service_artifact
from ..support.kubelet import make_pods_ready
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

GW = ("gateway.networking.k8s.io", "v1", "httproutes")
SELECTOR = "workload.dev/artifact=web"
INGRESS = {"host": "web.example.com", "path": "/v1", "className": "nginx",
           "tlsSecret": "web-tls", "annotations": {"cert-manager.io/cluster-issuer": "le"}}
ROUTE = {"parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"}],
         "hostnames": ["web.example.com"], "path": "/v1", "scheme": "https"}


def exposed(expose: dict[str, Any]) -> dict[str, Any]:
    return service_artifact("web", runtime={"api": {"expose": expose}})


def status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(get_artifact(cluster, namespace, "web").get("status") or {})


def condition(cluster: Cluster, namespace: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(cluster, namespace).get("conditions", [])
                 if c["type"] == type_), {})


def ingress(cluster: Cluster, namespace: str) -> Any:
    return found(client.NetworkingV1Api(cluster.api).read_namespaced_ingress, "web-api",
                 namespace)


def route(cluster: Cluster, namespace: str) -> Any:
    return found(cluster.custom.get_namespaced_custom_object, *GW[:2], namespace, GW[2],
                 "web-api")


def ready(cluster: Cluster, namespace: str) -> bool:
    """Play the kubelet for the artifact's pods; True once the artifact is Ready."""
    make_pods_ready(cluster.core, namespace, SELECTOR)
    return status(cluster, namespace).get("phase") == "Ready"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owned_and_labelled(obj: dict[str, Any], cluster: Cluster, namespace: str) -> None:
    uid = get_artifact(cluster, namespace, "web")["metadata"]["uid"]
    meta = obj["metadata"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in meta["ownerReferences"]] == \
        [("Artifact", uid, True)]
    assert meta["labels"]["workload.dev/artifact"] == "web"
    assert meta["labels"]["workload.dev/container-group"] == "api"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "artifact-operator"


@pytest.fixture
def start_operator(cluster: Cluster, namespace: str,
                   tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Starts `artifact-operator run --namespace <ns>` when the test says (after the CRDs it
    needs are in place); stopped before those fixtures undo theirs."""
    with contextlib.ExitStack() as stack:
        yield lambda **env: stack.enter_context(OperatorProcess(
            cluster.kubeconfig, [namespace], tmp_path / "operator.log", env=env))


gateway_api = optional_crds.served("HTTPRoute")
no_gateway_api = optional_crds.not_served("HTTPRoute")


def test_an_ingress_is_rendered_repaired_pruned_and_shows_its_address(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    net = client.NetworkingV1Api(cluster.api)
    create_artifact(cluster, namespace, exposed({"ingress": INGRESS}))
    made = wait_for(lambda: ingress(cluster, namespace), timeout=30, what="the Ingress")
    body = cluster.api.sanitize_for_serialization(made)
    owned_and_labelled(body, cluster, namespace)
    assert body["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "le"
    assert body["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
        "rules": [{"host": "web.example.com", "http": {"paths": [{
            "path": "/v1", "pathType": "Prefix",
            "backend": {"service": {"name": "web-api", "port": {"number": 8080}}}}]}}]}

    # Ready does not wait for an address; Exposed says what it waits for.
    wait_for(lambda: ready(cluster, namespace), timeout=60, what="Ready")
    assert condition(cluster, namespace, "Exposed")["reason"] == "AwaitingAddress"
    assert "externalEndpoint" not in status(cluster, namespace)["containerGroups"][0]

    # The ingress controller's part: it publishes the load balancer's address.
    net.patch_namespaced_ingress_status("web-api", namespace, {
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}})
    url = "https://web.example.com/v1"
    wait_for(lambda: status(cluster, namespace)["containerGroups"][0].get(
        "externalEndpoint") == url, timeout=30, what="the external endpoint")
    assert status(cluster, namespace)["externalEndpoint"] == url
    exposed_cond = condition(cluster, namespace, "Exposed")
    assert (exposed_cond["status"], exposed_cond["reason"]) == ("True", "Exposed")
    assert url in exposed_cond["message"]
    assert status(cluster, namespace)["phase"] == "Ready"

    # Drift: an edit of a rendered field is put back; so is a deleted Ingress.
    net.patch_namespaced_ingress("web-api", namespace, {"spec": {"ingressClassName": "other"}})
    wait_for(lambda: ingress(cluster, namespace).spec.ingress_class_name == "nginx",
             timeout=30, what="the Ingress class put back")
    uid = ingress(cluster, namespace).metadata.uid
    net.delete_namespaced_ingress("web-api", namespace)
    wait_for(lambda: (i := ingress(cluster, namespace)) is not None and i.metadata.uid != uid,
             timeout=30, what="the Ingress re-created")

    # Without expose: pruned, and status says nothing of it any more.
    patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {"expose": None}}}})
    wait_for(lambda: ingress(cluster, namespace) is None, timeout=30, what="the Ingress pruned")
    wait_for(lambda: "externalEndpoint" not in status(cluster, namespace) and not condition(
        cluster, namespace, "Exposed"), timeout=30, what="status without exposure")
    assert cluster.core.read_namespaced_service("web-api", namespace)


def test_an_httproute_with_the_gateway_api_installed(
        cluster: Cluster, namespace: str, gateway_api: None,
        start_operator: Callable[..., OperatorProcess]) -> None:
    start_operator()
    create_artifact(cluster, namespace, exposed({"httpRoute": ROUTE}))
    made = wait_for(lambda: route(cluster, namespace), timeout=30, what="the HTTPRoute")
    owned_and_labelled(made, cluster, namespace)
    (parent,) = made["spec"]["parentRefs"]  # with the CRD's defaults (group, kind) added
    assert {k: parent[k] for k in ("name", "namespace", "sectionName")} == ROUTE[
        "parentRefs"][0]
    assert made["spec"]["hostnames"] == ["web.example.com"]
    (rule,) = made["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert [(b["name"], b["port"]) for b in rule["backendRefs"]] == [("web-api", 8080)]
    wait_for(lambda: condition(cluster, namespace, "Exposed").get("reason") ==
             "RouteNotAccepted", timeout=30, what="RouteNotAccepted")

    # The Gateway controller's part: it accepts the route for its listener.
    cluster.custom.patch_namespaced_custom_object_status(*GW[:2], namespace, GW[2], "web-api", {
        "status": {"parents": [{
            "controllerName": "example.com/gateway-controller",
            "parentRef": {"name": "edge", "namespace": "infra", "sectionName": "https"},
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "accepted", "lastTransitionTime": now(),
                            "observedGeneration": made["metadata"]["generation"]}]}]}})
    url = "https://web.example.com/v1"
    wait_for(lambda: status(cluster, namespace)["containerGroups"][0].get(
        "externalEndpoint") == url, timeout=30, what="the external endpoint")
    assert condition(cluster, namespace, "Exposed")["status"] == "True"

    # Drift: deleted, it is made again.
    uid = made["metadata"]["uid"]
    cluster.custom.delete_namespaced_custom_object(*GW[:2], namespace, GW[2], "web-api")
    wait_for(lambda: (r := route(cluster, namespace)) is not None
             and r["metadata"]["uid"] != uid, timeout=30, what="the HTTPRoute re-created")

    # From a route to an Ingress: the HTTPRoute goes, the Ingress comes.
    patch_artifact(cluster, namespace, "web", {"spec": {"runtime": {"api": {"expose": {
        "httpRoute": None, "ingress": {"host": "web.example.com"}}}}}})
    wait_for(lambda: route(cluster, namespace) is None and ingress(cluster, namespace),
             timeout=30, what="the HTTPRoute replaced by an Ingress")


def test_without_the_gateway_api_the_rest_runs_and_the_route_comes_with_the_crd(
        cluster: Cluster, namespace: str, no_gateway_api: None,
        start_operator: Callable[..., OperatorProcess]) -> None:
    start_operator(ARTIFACT_OPERATOR_API_DISCOVERY_SECONDS="1")
    create_artifact(cluster, namespace, exposed({"httpRoute": ROUTE}))
    wait_for(lambda: ready(cluster, namespace), timeout=60, what="Ready without the route")
    missing = condition(cluster, namespace, "Exposed")
    assert (missing["status"], missing["reason"]) == ("False", "RouteApiMissing")
    assert "does not serve the Gateway API" in missing["message"]
    assert condition(cluster, namespace, "Ready")["status"] == "True"
    assert condition(cluster, namespace, "Degraded")["status"] == "False"

    # Installed while the operator runs: it notices, watches HTTPRoutes and renders the route.
    optional_crds.install(cluster.api, "HTTPRoute")
    wait_for(lambda: route(cluster, namespace), timeout=60, what="the HTTPRoute")
    wait_for(lambda: condition(cluster, namespace, "Exposed").get("reason") ==
             "RouteNotAccepted", timeout=30, what="the route waiting for its Gateway")
    assert status(cluster, namespace)["phase"] == "Ready"
