"""ServiceAccount identities for operator processes, and the audit log of what they wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client


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
