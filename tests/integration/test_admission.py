"""The admission webhooks as users meet them: kubectl and API calls as editors and admins,
against the real control plane, with the operator serving the webhooks on loopback."""

from __future__ import annotations

import base64
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..conftest import REPO, Cluster, create_artifact, get_artifact
from ..support.builders import PINNED_IMAGE, service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from ..support.webhook import (
    bind,
    make_serving_cert,
    serving_webhooks,
    user_api,
    user_kubeconfig,
    webhook_operator,
)

pytestmark = pytest.mark.cluster

EDITOR, ADMIN = "erin-editor", "ada-admin"
GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"


def install_roles(cluster: Cluster) -> None:
    """The shipped ClusterRoles of deploy/rbac, as they are."""
    for name in ("artifact_admin_role", "artifact_editor_role", "artifact_viewer_role"):
        role = yaml.safe_load((REPO / "deploy" / "rbac" / f"{name}.yaml").read_text())
        try:
            cluster.rbac.create_cluster_role(role)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            cluster.rbac.replace_cluster_role(role["metadata"]["name"], role)


@pytest.fixture
def webhooks(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator serving its webhooks, registered for this namespace; an editor and an
    admin bound to the shipped roles."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    bind(cluster.rbac, namespace, ADMIN, "artifact-admin")
    cert = make_serving_cert(tmp_path / "certs")
    proc = webhook_operator(cluster.kubeconfig, namespace, tmp_path / "operator.log", cert)
    with serving_webhooks(cluster.api, namespace, proc, cert.ca):
        yield proc


def as_user(cluster: Cluster, user: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(user_api(cluster.kubeconfig, user))


def create_as(cluster: Cluster, user: str, namespace: str, body: dict[str, Any]) -> Any:
    body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    return as_user(cluster, user).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body)


def refused(call: Any) -> client.ApiException:
    with pytest.raises(client.ApiException) as info:
        call()
    return info.value


def capabilities(cluster: Cluster, namespace: str, deployment: str) -> dict[str, Any]:
    """The first container's capabilities; empty while the Deployment does not exist."""
    d = found(cluster.apps.read_namespaced_deployment, deployment, namespace)
    if d is None:
        return {}
    caps = d.spec.template.spec.containers[0].security_context.capabilities
    return {"add": caps.add, "drop": caps.drop}


NET_ADMIN = {"capabilities": {"add": ["NET_ADMIN"]}}


def test_editor_gets_every_violation_from_kubectl_apply(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess, tmp_path: Path) -> None:
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "type": "service",
            "storage": {"mode": "dedicatedPvc"},
            "runtime": {"nope": {"replicas": 1}},
            "containerGroups": [
                {"name": "api", "containers": [
                    {"name": "app", "imageUri": "nginx", "primary": True},
                    {"name": "side", "imageUri": "busybox", "port": 9000}]},
                {"name": "worker", "containers": [{"name": "x", "imageUri": "nginx"},
                                                  {"name": "x", "imageUri": "busybox"}]},
            ],
        },
    }
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(manifest))
    kubeconfig = user_kubeconfig(cluster.kubeconfig, tmp_path, EDITOR)
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--validate=false", "-f",
         str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout
    for expected in (
        "spec.containerGroups[0].containers[0].port: a primary container must set port",
        "spec.containerGroups[0].containers[1].port: a non-primary container must not set",
        "spec.containerGroups[1].containers[1].name: duplicate container name 'x'",
        "spec.storage: storage is only allowed with type nim",
        "spec.runtime.nope: runtime key 'nope' does not name a container group",
    ):
        assert expected in result.stderr, result.stderr
    assert "5 violation(s)" in result.stderr, result.stderr
    assert refused(lambda: get_artifact(cluster, namespace, "broken")).status == 404


def approve(cluster: Cluster, namespace: str, name: str) -> None:
    """What `kubectl artifact approve` does (tests/integration/test_approval.py runs the
    plugin itself), as the admin."""
    from artifact_operator.cli.plugin import approval_manifest

    body = approval_manifest(get_artifact(cluster, namespace, name), None)
    body["metadata"]["namespace"] = namespace
    as_user(cluster, ADMIN).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "artifactapprovals", body)


def test_capabilities_add_only_from_admins(cluster: Cluster, namespace: str,
                                           webhooks: OperatorProcess) -> None:
    error = refused(lambda: create_as(cluster, EDITOR, namespace,
                                      service_artifact("by-editor", PINNED_IMAGE,
                                                       security=NET_ADMIN)))
    assert error.status == 403
    assert "spec.containerGroups[0].containers[0].securityContext.capabilities.add" in \
        error.body
    assert "only an admin" in error.body
    # The same artifact without the elevated field is fine for the editor ...
    create_as(cluster, EDITOR, namespace, service_artifact("by-editor"))
    # ... and with it, for the admin.
    create_as(cluster, ADMIN, namespace,
              service_artifact("by-admin", PINNED_IMAGE, security=NET_ADMIN))
    approve(cluster, namespace, "by-admin")

    admin_caps = wait_for(
        lambda: capabilities(cluster, namespace, "by-admin-api").get("add"),
        timeout=30, what="the admin's Deployment with its capability")
    assert admin_caps == ["NET_ADMIN"]
    wait_for(lambda: cluster.apps.read_namespaced_deployment("by-editor-api", namespace),
             timeout=30, what="the editor's Deployment")
    assert capabilities(cluster, namespace, "by-editor-api") == {"add": None, "drop": ["ALL"]}


def test_an_editor_cannot_change_elevated_fields(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess) -> None:
    create_as(cluster, ADMIN, namespace,
              service_artifact("shared", PINNED_IMAGE, security=NET_ADMIN))
    approve(cluster, namespace, "shared")
    wait_for(lambda: capabilities(cluster, namespace, "shared-api").get("add") == ["NET_ADMIN"],
             timeout=30, what="the approved capability")
    editor = as_user(cluster, EDITOR)
    # Swapping the image of the elevated container is a new elevation: refused early by the
    # webhook (without it, the approval would go stale: tests/integration/test_approval.py).
    swap = {"spec": {"containerGroups": [{"name": "api", "containers": [{
        "name": "app", "imageUri": "evil@sha256:" + "e" * 64, "primary": True, "port": 8080,
        "securityContext": NET_ADMIN}]}]}}
    error = refused(lambda: editor.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "shared", swap))
    assert error.status == 403
    assert get_artifact(cluster, namespace, "shared")["metadata"]["generation"] == 1
    assert capabilities(cluster, namespace, "shared-api")["add"] == ["NET_ADMIN"]


def test_without_the_webhook_and_an_approval_an_elevated_group_is_not_rendered(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    # No webhook registered; the operator even holds the old approval key, and the artifact
    # carries a made-up old-style approval: neither makes anything run.
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                           env={"ARTIFACT_OPERATOR_APPROVAL_KEY": "some-key"})
    with proc:
        body = service_artifact("elevated", PINNED_IMAGE,
                                security={**NET_ADMIN, "allowPrivilegeEscalation": True})
        body["metadata"]["annotations"] = {
            "workload.dev/elevated-approval": "hmac-sha256:" + "0" * 64}
        create_artifact(cluster, namespace, body)

        def handled() -> dict[str, Any] | None:
            obj = get_artifact(cluster, namespace, "elevated")
            status = obj.get("status", {})
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            return next(c for c in status["conditions"] if c["type"] == "Ready")

        cond = wait_for(handled, timeout=30, what="the artifact handled")
        assert cond["status"] == "False"
        assert cond["reason"] == "ElevatedNotApproved"
        assert "securityContext.capabilities.add" in cond["message"]
        assert "securityContext.allowPrivilegeEscalation" in cond["message"]
        assert found(cluster.apps.read_namespaced_deployment, "elevated-api", namespace) \
            is None
        # Stored as written: nothing the user sent is lost.
        stored = get_artifact(cluster, namespace, "elevated")
        assert stored["spec"]["containerGroups"][0]["containers"][0]["securityContext"][
            "capabilities"] == {"add": ["NET_ADMIN"]}


def _chart_webhooks(namespace: str, kube_version: str, port: int, ca: bytes,
                    suffix: str) -> list[dict[str, Any]]:
    """The chart's own webhook configurations for a namespaced install (watchNamespaces),
    rendered for this server's version; only the transport is ours: the tests' API server
    reaches the webhook on loopback, not through the chart's Service."""
    from ..contract.test_deploy import helm_render

    docs = helm_render({"watchNamespaces": [namespace], "webhook": {"enabled": True}},
                       namespace="ops", kube_version=kube_version)
    out = []
    for doc in docs:
        if doc["kind"] not in ("MutatingWebhookConfiguration",
                               "ValidatingWebhookConfiguration"):
            continue
        doc["metadata"]["name"] += suffix
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}",
                                    "caBundle": base64.b64encode(ca).decode()}
        out.append(doc)
    return out


def test_the_charts_webhooks_for_watched_namespaces_work_on_this_server(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """A namespaced Helm install: its webhooks judge Artifacts in the watched namespace (on
    1.20 too, which has no namespace-name label to select by) and leave others alone."""
    version = str(client.VersionApi(cluster.api).get_code().git_version)
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    other = f"{namespace[:50]}-other"
    cluster.core.create_namespace({"metadata": {"name": other}})
    cert = make_serving_cert(tmp_path / "certs")
    proc = webhook_operator(cluster.kubeconfig, namespace, tmp_path / "operator.log", cert)
    adm = client.AdmissionregistrationV1Api(cluster.api)
    configs = []
    try:
        proc.start()
        configs = _chart_webhooks(namespace, version, proc.webhook_port,  # type: ignore[attr-defined]
                                  cert.ca.read_bytes(), f"-{namespace}")
        if version.startswith("v1.20."):
            assert all("namespaceSelector" not in h for c in configs for h in c["webhooks"])
        for doc in configs:
            create = adm.create_validating_webhook_configuration \
                if doc["kind"] == "ValidatingWebhookConfiguration" \
                else adm.create_mutating_webhook_configuration
            create(doc)
        invalid = service_artifact("bad", security=NET_ADMIN)
        invalid["spec"]["containerGroups"][0]["containers"][0].pop("port")

        # The watched namespace: judged (every violation, the admin-only field) ...
        error = wait_for(lambda: _refusal(cluster, namespace, invalid), timeout=30,
                         what="the chart's webhook to judge the watched namespace")
        assert error.status == 422 and "a primary container must set port" in error.body
        # ... and a lock holds there.
        create_as(cluster, EDITOR, namespace, service_artifact("kept", lifecycle="locked"))
        error = refused(lambda: as_user(cluster, EDITOR).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "kept", {"spec": {"description": "x"}}))
        assert error.status == 422 and "locked" in error.body
        # Another namespace is not this install's: admitted unjudged (the API server's own
        # schema still applies), as the 1.21+ selector would leave it out.
        create_artifact(cluster, other, invalid)
        assert get_artifact(cluster, other, "bad")["spec"]["containerGroups"]
    finally:
        for doc in configs:
            delete = adm.delete_validating_webhook_configuration \
                if doc["kind"] == "ValidatingWebhookConfiguration" \
                else adm.delete_mutating_webhook_configuration
            with contextlib.suppress(client.ApiException):
                delete(doc["metadata"]["name"])
        proc.stop()
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespace(other)
        print("---- operator log ----\n" + proc.logs()[-10000:])


def _refusal(cluster: Cluster, namespace: str, body: dict[str, Any]) -> client.ApiException:
    """The refusal of creating `body`; fails (for wait_for to retry) while it is admitted."""
    try:
        create_artifact(cluster, namespace, body)
    except client.ApiException as exc:
        if exc.status in (422, 403):
            return exc
        raise
    delete = cluster.custom.delete_namespaced_custom_object
    delete(GROUP, VERSION, namespace, PLURAL, body["metadata"]["name"])
    raise AssertionError("admitted: the webhook configuration is not in effect yet")
