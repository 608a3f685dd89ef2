"""ServiceAccount identities for operator processes, and the audit log of what they wrote."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client

from .operator import OperatorProcess
from .wait import wait_for


def service_account_token(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """A bound token for the ServiceAccount, from the TokenRequest API (as a kubelet gets it)."""
    resp = core.create_namespaced_service_account_token(name, namespace, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}})
    return str(resp.status.token)


def kubeconfig_with_token(base: Path, token: str, path: Path) -> Path:
    """`base` with every user replaced by `token`: the same server, another identity."""
    doc: dict[str, Any] = yaml.safe_load(base.read_text())
    for user in doc.get("users", []):
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(doc))
    return path


def sa_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


class AdminCluster(Protocol):
    """What `two_replicas` needs of a cluster (tests/conftest.py's Cluster has it)."""

    kubeconfig: Path

    @property
    def core(self) -> client.CoreV1Api: ...

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api: ...


REPLICAS = ("op-a", "op-b")


@contextlib.contextmanager
def two_replicas(cluster: AdminCluster, namespace: str, workdir: Path, *,
                 env: Mapping[str, str] | None = None) -> Iterator[dict[str, OperatorProcess]]:
    """Two operator replicas for `namespace` with leader election (the Lease in `namespace`),
    named as REPLICAS: each runs as a ServiceAccount of that name (cluster-admin in
    `namespace`), so that the audit log tells their writes apart (`sa_user`), and has it as
    POD_NAME, its identity in the Lease; `env` adds to their environment. Yields them by
    name, started; on exit stops both and prints their logs (kubeconfigs and logs go to
    `workdir`)."""
    for name in REPLICAS:
        cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    cluster.rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "operators"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": n, "namespace": namespace}
                     for n in REPLICAS]})
    replicas = {}
    for name in REPLICAS:
        token = wait_for(lambda n=name: service_account_token(cluster.core, namespace, n),  # type: ignore[misc]
                         timeout=30, what=f"a token for {name}")
        replicas[name] = OperatorProcess(
            kubeconfig_with_token(cluster.kubeconfig, token, workdir / f"{name}.kcfg"),
            [namespace], workdir / f"{name}.log", env={"POD_NAME": name, **(env or {})},
            args=["--leader-election", "--leader-election-namespace", namespace])
    with contextlib.ExitStack() as running:
        for proc in replicas.values():
            running.enter_context(proc)
        yield replicas


@dataclass(frozen=True)
class Write:
    user: str
    verb: str
    resource: str
    subresource: str
    name: str
    code: int


def audit_writes(audit_log: Path, namespace: str | None) -> Iterator[Write]:
    """Writes in `namespace` (None: to cluster-scoped objects, SubjectAccessReviews among them)
    recorded by the API server's audit log (the test control plane logs writes only)."""
    with audit_log.open() as f:
        for line in f:
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if ref.get("namespace") != namespace:
                continue
            yield Write(user=entry["user"]["username"], verb=entry["verb"],
                        resource=ref.get("resource", ""), subresource=ref.get("subresource", ""),
                        name=ref.get("name", ""),
                        code=int((entry.get("responseStatus") or {}).get("code", 0)))
