"""An editor gets no side doors (SPEC section 4): what an `artifact-editor` can put in an
Artifact does not reach past it, with the webhook and without it, on the real control plane
with the operator running as users run it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from ..support.webhook import bind
from .test_admission import (  # noqa: F401 - webhooks is a fixture
    ADMIN,
    ANNOTATION,
    EDITOR,
    as_user,
    create_as,
    install_roles,
    refused,
    webhooks,
)

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"


def probed(name: str, probe: dict[str, Any], **container: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": "api", "containers": [{
                "name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
                "readinessProbe": probe, **container}]}]}}


def condition(cluster: Cluster, namespace: str, name: str, type_: str = "Ready"
              ) -> dict[str, Any]:
    status = get_artifact(cluster, namespace, name).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def reconciled(cluster: Cluster, namespace: str, name: str) -> bool:
    body = get_artifact(cluster, namespace, name)
    return bool(body.get("status", {}).get("observedGeneration") ==
                body["metadata"]["generation"])


def readiness_get(cluster: Cluster, namespace: str, deployment: str) -> Any:
    d = found(cluster.apps.read_namespaced_deployment, deployment, namespace)
    return d.spec.template.spec.containers[0].readiness_probe.http_get if d else None


HOST_PATH = "spec.containerGroups[0].containers[0].readinessProbe.host"


def test_a_probe_host_is_admin_only_with_the_webhook(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess) -> None:  # noqa: F811
    error = refused(lambda: create_as(cluster, EDITOR, namespace, probed(
        "by-editor", {"path": "/", "host": "169.254.169.254"})))
    assert error.status == 403, error.body
    assert HOST_PATH in error.body and "only an admin" in error.body, error.body
    # An admin's is approved (signed), and rendered.
    created = create_as(cluster, ADMIN, namespace, probed(
        "by-admin", {"path": "/", "host": "metrics.internal"}))
    assert created["metadata"]["annotations"][ANNOTATION].startswith("hmac-sha256:")
    got = wait_for(lambda: readiness_get(cluster, namespace, "by-admin-api"), timeout=30,
                   what="the admin's Deployment")
    assert got.host == "metrics.internal"
    # The approval covers the host: an editor cannot point the approved probe elsewhere.
    error = refused(lambda: as_user(cluster, EDITOR).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "by-admin", probed(
            "by-admin", {"path": "/", "host": "169.254.169.254"})))
    assert error.status == 403 and HOST_PATH in error.body, error.body
    # Header names beyond the bound: the webhook names the field (the 1.20 API server cannot
    # bound map keys; 1.25+ refuses them by CEL).
    error = refused(lambda: create_as(cluster, EDITOR, namespace, probed(
        "long-header", {"path": "/", "httpHeaders": {"x" * 300: "v"}})))
    assert error.status == 422, error.body
    assert "readinessProbe.httpHeaders" in error.body and "256" in error.body, error.body


def test_without_the_webhook_a_probe_host_is_stored_but_not_rendered(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                           env={"ARTIFACT_OPERATOR_APPROVAL_KEY": "some-key"})
    with proc:
        body = probed("hosted", {"path": "/healthz", "host": "169.254.169.254"})
        body["metadata"]["annotations"] = {ANNOTATION: "hmac-sha256:" + "0" * 64}
        create_as(cluster, EDITOR, namespace, body)
        cond = wait_for(lambda: condition(cluster, namespace, "hosted").get("reason") ==
                        "ElevatedNotApproved" and condition(cluster, namespace, "hosted"),
                        timeout=30, what="ElevatedNotApproved")
        assert cond["status"] == "False" and HOST_PATH in cond["message"], cond
        got = readiness_get(cluster, namespace, "hosted-api")
        assert got.path == "/healthz" and got.host is None  # the kubelet probes the pod IP
        stored = get_artifact(cluster, namespace, "hosted")
        assert stored["spec"]["containerGroups"][0]["containers"][0]["readinessProbe"][
            "host"] == "169.254.169.254"


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080, **fields}


def _spec(**fields: Any) -> dict[str, Any]:
    return {"containerGroups": [{"name": "api", "containers": [_container(**fields)]}]}


# One spec per bounded list or map, each one item past its bound; the API server's field path
# (1.20 leaves out list indexes) must be named in its refusal.
OVER_BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    ("headers", _spec(readinessProbe={"path": "/", "httpHeaders": {
        f"h{i}": "v" for i in range(17)}}), "readinessProbe.httpHeaders"),
    ("header-value", _spec(readinessProbe={"path": "/", "httpHeaders": {"h": "v" * 4097}}),
     "readinessProbe.httpHeaders"),
    ("env", _spec(environmentVars=[{"name": f"E{i}", "value": "v"} for i in range(257)]),
     "environmentVars"),
    ("entrypoint", _spec(entrypoint=["x"] * 257), "entrypoint"),
    ("capabilities", _spec(securityContext={"capabilities": {"drop": ["X"] * 65}}),
     "capabilities.drop"),
    ("containers", {"containerGroups": [{"name": "api", "containers": [
        {"name": f"c{i}", "imageUri": "nginx:1.27"} for i in range(65)]}]}, "containers"),
    ("groups", {"containerGroups": [{"name": f"g{i}", "containers": []} for i in range(65)]},
     "containerGroups"),
    ("tolerations", {**_spec(), "runtime": {"api": {"tolerations": [
        {"key": "k", "operator": "Exists"}] * 65}}}, "tolerations"),
    ("node-selector", {**_spec(), "runtime": {"api": {"nodeSelector": {
        f"k{i}": "v" for i in range(65)}}}}, "nodeSelector"),
    ("runtime", {**_spec(), "runtime": {f"g{i}": {} for i in range(65)}}, "spec.runtime"),
]


def test_every_list_of_the_spec_is_bounded_by_the_api_server(
        cluster: Cluster, namespace: str) -> None:
    """No webhook, no operator: the CRD alone refuses an editor's spec past any bound."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    for case, spec, path in OVER_BOUNDS:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact",
                "metadata": {"name": f"over-{case}"}, "spec": spec}
        error = refused(lambda b=body: create_as(cluster, EDITOR, namespace, b))
        assert error.status == 422, (case, error.body)
        assert path in error.body, (case, error.body)
        assert re.search(r"at most|Too many|Too long|longer than", error.body), \
            (case, error.body)
    # At the bounds, accepted.
    create_artifact(cluster, namespace, {"metadata": {"name": "at-bounds"}, "spec": _spec(
        readinessProbe={"path": "/", "httpHeaders": {f"h{i}": "v" * 4096 for i in range(16)}},
        environmentVars=[{"name": f"E{i}", "value": "v"} for i in range(256)])})
