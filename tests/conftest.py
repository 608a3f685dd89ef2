"""Test tiers: unit tests need nothing; tests marked `cluster` run against a real control plane.

The control plane is started once per session from KUBEBUILDER_ASSETS (default: the
`shared/k8s/bin` next to this repository). With ARTIFACT_TEST_USE_KUBECONFIG=1 the tests run
against the cluster in KUBECONFIG instead. Under CI=true a control plane that cannot start
fails the run; it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from artifact_operator.api.crd import build_approval_crd, build_crd

from .support.controlplane import ControlPlane, ControlPlaneError, default_assets
from .support.operator import OperatorProcess
from .support.wait import wait_for

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Cluster:
    kubeconfig: Path
    api: client.ApiClient
    control_plane: ControlPlane | None

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the control plane is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no control plane: {reason}")


def require_audit_log(cluster: Cluster) -> Path:
    """The API server's audit log, for tests that count writes. The control plane the tests
    start always writes one; a KUBECONFIG cluster's is out of reach, so such a test is skipped
    there, saying why, and fails under CI=true, where nothing may be skipped silently."""
    if cluster.control_plane is not None:
        return cluster.control_plane.audit_log
    reason = ("counts writes in the audit log of the control plane the tests start; a "
              "KUBECONFIG cluster (ARTIFACT_TEST_USE_KUBECONFIG=1) has none the tests can read")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"under CI=true this check may not be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def install_crd(api: client.ApiClient) -> None:
    """Both CRDs the operator needs: Artifact and ArtifactApproval."""
    for crd in (build_crd(), build_approval_crd()):
        _install_one(api, crd)


def _install_one(api: client.ApiClient, crd: dict[str, Any]) -> None:
    ext = client.ApiextensionsV1Api(api)
    name = crd["metadata"]["name"]
    try:
        current = ext.read_custom_resource_definition(name)
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, crd)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        ext.create_custom_resource_definition(crd)

    def established() -> bool:
        got = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True"
                   for c in got.status.conditions or [])

    wait_for(established, timeout=30, what=f"the CRD {name} to be established")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    cp: ControlPlane | None = None
    if os.environ.get("ARTIFACT_TEST_USE_KUBECONFIG") == "1":
        kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    else:
        assets = default_assets()
        if assets is None:
            _unavailable("KUBEBUILDER_ASSETS is not set and ../shared/k8s/bin does not exist")
        assert assets is not None
        cp = ControlPlane(assets, audit=True)
        try:
            cp.start()
        except (ControlPlaneError, OSError) as exc:
            _unavailable(str(exc))
        kubeconfig = cp.kubeconfig
    api = config.new_client_from_config(str(kubeconfig))
    version = client.VersionApi(api).get_code()
    _SERVER.append(f"kube-apiserver {version.git_version} at {api.configuration.host}"
                   + (f" (started from {cp.assets})" if cp is not None else " (KUBECONFIG)"))
    install_crd(api)
    try:
        yield Cluster(kubeconfig, api, cp)
    finally:
        api.close()
        if cp is not None:
            cp.stop()


# The server the cluster tests ran against, for the summary line below.
_SERVER: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the cluster tests ran, so a CI log shows they met a real API server."""
    ran = [r for key in ("passed", "failed", "error") for r in terminalreporter.stats.get(key, [])
           if "cluster" in getattr(r, "keywords", {}) and getattr(r, "when", "") == "call"]
    if _SERVER:
        terminalreporter.write_line(f"{len(ran)} cluster tests ran against {_SERVER[0]}")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    with contextlib.suppress(client.ApiException):
        cluster.core.delete_namespace(name)


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`artifact-operator run --namespace <ns>` as its own process, as users run it."""
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log") as proc:
        yield proc


@pytest.fixture
def operators() -> Iterator[list[OperatorProcess]]:
    """Operators a test starts one after another (each `start()`ed by the test): all stopped
    at the end, their logs printed."""
    started: list[OperatorProcess] = []
    yield started
    for proc in started:
        proc.stop()
        print("---- operator log ----\n" + proc.logs()[-20000:])


# -- small helpers for tests -----------------------------------------------------------

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"


def create_artifact(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> Any:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact", **manifest}
    body.setdefault("metadata", {})["namespace"] = namespace
    return cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def get_artifact(cluster: Cluster, namespace: str, name: str) -> Any:
    return cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def patch_artifact(cluster: Cluster, namespace: str, name: str, patch: dict[str, Any]) -> Any:
    return cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                         patch)


def delete_artifact(cluster: Cluster, namespace: str, name: str) -> Any:
    return cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
