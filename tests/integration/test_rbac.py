"""The operator runs with nothing but the shipped RBAC: its ServiceAccount's token only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, utils

from ..conftest import Cluster, create_artifact, get_artifact
from ..contract.test_deploy import DEPLOY, helm_render, kustomize
from ..support.accounts import (
    audit_writes,
    kubeconfig_with_token,
    sa_user,
    service_account_token,
)
from ..support.operator import OperatorProcess
from ..support.wait import wait_for

pytestmark = pytest.mark.cluster

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def _install(cluster: Cluster, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    installed = [d for d in docs if d["kind"] in RBAC_KINDS]
    for doc in installed:
        try:
            utils.create_from_dict(cluster.api, doc)
        except utils.FailToCreateError as exc:
            if any(e.status != 409 for e in exc.api_exceptions):
                raise
    return installed


def _uninstall(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        name = doc["metadata"]["name"]
        with contextlib.suppress(client.ApiException):
            if doc["kind"] == "ClusterRoleBinding":
                cluster.rbac.delete_cluster_role_binding(name)
            elif doc["kind"] == "ClusterRole":
                cluster.rbac.delete_cluster_role(name)


@contextlib.contextmanager
def _namespace(cluster: Cluster, name: str) -> Iterator[str]:
    with contextlib.suppress(client.ApiException):
        cluster.core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespace(name)


def _as(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


def _forbidden(call: Any, *args: Any) -> bool:
    try:
        call(*args)
    except client.ApiException as exc:
        return bool(exc.status == 403)
    return False


def _service_path_works(cluster: Cluster, namespace: str, name: str) -> None:
    create_artifact(cluster, namespace, {"metadata": {"name": name}, "spec": {
        "containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}]}]}})
    wait_for(lambda: [d for d in cluster.apps.list_namespaced_deployment(namespace).items
                      if d.metadata.name == f"{name}-api"], timeout=30, what="the Deployment")
    wait_for(lambda: [s for s in cluster.core.list_namespaced_service(namespace).items
                      if s.metadata.name == f"{name}-api"], timeout=30, what="the Service")
    wait_for(lambda: get_artifact(cluster, namespace, name).get("status", {}).get("phase"),
             timeout=30, what="a status phase")


def _no_refusals(proc: OperatorProcess) -> None:
    logs = proc.logs()
    assert "Forbidden" not in logs and " 403" not in logs, logs[-3000:]


def _written_only_by(cluster: Cluster, namespace: str, user: str) -> None:
    """The children were written with the ServiceAccount's token, not the admin's."""
    if cluster.control_plane is None:
        return
    writers = {w.user for w in audit_writes(cluster.control_plane.audit_log, namespace)
               if w.resource in ("deployments", "services") or w.subresource == "status"}
    writers.discard("admin")  # kube-controller-manager updates Deployment status as admin
    assert writers == {user}


def test_namespaced_helm_install_works_with_only_its_token(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    with _namespace(cluster, f"{namespace[:50]}-sys") as system:
        docs = _install(cluster, helm_render(
            {"watchNamespaces": [namespace], "userRoles": {"enabled": False},
             "webhook": {"enabled": False}},
            namespace=system))
        # A namespaced install asks for nothing cluster-wide.
        assert not [d for d in docs if d["kind"].startswith("Cluster")]
        token = wait_for(lambda: service_account_token(cluster.core, system,
                                                       "artifact-operator"),
                         timeout=30, what="a token for the operator's ServiceAccount")
        kubeconfig = kubeconfig_with_token(cluster.kubeconfig, token, tmp_path / "sa.kcfg")
        proc = OperatorProcess(kubeconfig, [namespace], tmp_path / "operator.log",
                               args=["--leader-election", "--leader-election-namespace",
                                     system])
        with proc:
            _service_path_works(cluster, namespace, "web")
            _no_refusals(proc)
        _written_only_by(cluster, namespace, sa_user(system, "artifact-operator"))

        sa = _as(kubeconfig)
        core = client.CoreV1Api(sa)
        # Secrets outside the watched namespace, nodes, other namespaces' workloads: refused.
        assert _forbidden(core.list_namespaced_secret, system)
        assert _forbidden(core.list_namespaced_secret, "default")
        assert _forbidden(core.list_node)
        assert _forbidden(client.AppsV1Api(sa).list_deployment_for_all_namespaces)
        assert _forbidden(core.list_namespaced_config_map, namespace)
        # ...while what it manages is allowed.
        core.list_namespaced_secret(namespace)
        sa.close()


def test_kustomize_rbac_runs_the_operator_cluster_wide(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    docs = kustomize(DEPLOY / "rbac")
    with _namespace(cluster, "artifact-operator-system") as system:
        installed = _install(cluster, docs)
        try:
            token = wait_for(lambda: service_account_token(cluster.core, system,
                                                           "artifact-operator"),
                             timeout=30, what="a token for the operator's ServiceAccount")
            kubeconfig = kubeconfig_with_token(cluster.kubeconfig, token, tmp_path / "sa.kcfg")
            # As shipped: all namespaces, leader election in its own namespace.
            proc = OperatorProcess(kubeconfig, None, tmp_path / "operator.log",
                                   env={"POD_NAMESPACE": system}, args=["--leader-election"])
            with proc:
                _service_path_works(cluster, namespace, "web")
                _no_refusals(proc)
            _written_only_by(cluster, namespace, sa_user(system, "artifact-operator"))
            sa = _as(kubeconfig)
            core = client.CoreV1Api(sa)
            assert _forbidden(core.list_node)
            assert _forbidden(core.list_namespaced_config_map, namespace)
            assert _forbidden(client.CoreV1Api(sa).delete_namespace, namespace)
            assert _forbidden(client.CustomObjectsApi(sa).delete_namespaced_custom_object,
                              "workload.dev", "v1alpha1", namespace, "artifacts", "web")
            sa.close()
        finally:
            _uninstall(cluster, installed)
