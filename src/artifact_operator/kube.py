"""The only module that talks to the Kubernetes API (kopf's own watches aside).

A thin async layer over `kubernetes_asyncio`'s ApiClient that speaks plain dicts: server-side
apply under one field manager, create, delete with preconditions, status patches and lists.
Errors come back as `ApiError` carrying the server's status and message; `transient` tells
the reconciler whether a retry with backoff may help.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from . import __version__, metrics
from .naming import MANAGER

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k for k in (
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("v1", "Service", "services"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "Namespace", "namespaces", namespaced=False),
        Kind("v1", "Event", "events"),
        Kind("workload.dev/v1alpha1", "Artifact", "artifacts"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
        Kind("authorization.k8s.io/v1", "SubjectAccessReview", "subjectaccessreviews",
             namespaced=False),
    )
}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    return KINDS[(obj["apiVersion"], obj["kind"])]


class ApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        # 409 is a conflict with a concurrent writer: a fresh attempt resolves it.
        if self.status == 500 and "failed to create typed patch object" in self.message:
            return False  # server-side apply refusing the object itself: retrying cannot help
        return self.status in (0, 409, 429) or self.status >= 500


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        api = client.ApiClient()
        api.user_agent = f"{MANAGER}/{__version__}"
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    async def request(self, method: str, path: str, *, body: Any = None,
                      query: list[tuple[str, str]] | None = None,
                      content_type: str = "application/json",
                      missing_ok: bool = False) -> Obj | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp = await self.api.call_api(
                path, method, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"], _preload_content=False)
            text = await resp.text()
            status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            metrics.API_ERRORS.labels(method=method, code="network").inc()
            raise ApiError(0, str(exc), "NetworkError") from exc
        except client.ApiException as exc:  # raised by the client's own checks
            status, text = exc.status or 0, exc.body or str(exc)
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            metrics.API_ERRORS.labels(method=method, code=str(status)).inc()
            try:
                payload = json.loads(text)
                raise ApiError(status, payload.get("message", text), payload.get("reason", ""))
            except json.JSONDecodeError:
                raise ApiError(status, text) from None
        return json.loads(text) if text else {}

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply `obj` as our field manager, taking over conflicting fields."""
        k = kind_of(obj)
        meta = obj["metadata"]
        out = await self.request(
            "PATCH", k.path(meta.get("namespace"), meta["name"]), body=obj,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml")
        assert out is not None
        return out

    async def create(self, obj: Obj) -> Obj:
        k = kind_of(obj)
        out = await self.request("POST", k.path(obj["metadata"].get("namespace")), body=obj,
                                 query=[("fieldManager", MANAGER)])
        assert out is not None
        return out

    async def replace(self, obj: Obj) -> Obj:
        """PUT `obj`; its metadata.resourceVersion makes this a compare-and-swap (409 if stale)."""
        k = kind_of(obj)
        meta = obj["metadata"]
        out = await self.request("PUT", k.path(meta.get("namespace"), meta["name"]), body=obj,
                                 query=[("fieldManager", MANAGER)])
        assert out is not None
        return out

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> Obj | None:
        k = KINDS[(api_version, kind)]
        return await self.request("GET", k.path(namespace, name), missing_ok=True)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None) -> list[Obj]:
        k = KINDS[(api_version, kind)]
        query = [("labelSelector", label_selector)] if label_selector else []
        out = await self.request("GET", k.path(namespace), query=query)
        return list((out or {}).get("items", []))

    async def delete(self, obj: Mapping[str, Any], *, uid: str | None = None) -> bool:
        """Delete `obj` in the background; False when it is already gone.

        With `uid`, the API server deletes only that incarnation of the object, so a claim
        re-created by someone else in the meantime is left alone.
        """
        k = kind_of(obj)
        meta = obj["metadata"]
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions",
                     "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        out = await self.request("DELETE", k.path(meta.get("namespace"), meta["name"]),
                                 body=body, missing_ok=True)
        return out is not None

    async def patch(self, obj: Mapping[str, Any], patch: Obj, *,
                    subresource: str | None = None) -> Obj:
        """A JSON merge patch (status, labels): it touches only the keys it names."""
        k = kind_of(obj)
        meta = obj["metadata"]
        out = await self.request(
            "PATCH", k.path(meta.get("namespace"), meta["name"], subresource), body=patch,
            query=[("fieldManager", MANAGER)], content_type="application/merge-patch+json")
        assert out is not None
        return out
