"""The operator's Kubernetes API client (kopf's own watches aside, nothing else talks HTTP to
the API server).

A thin async layer over aiohttp that speaks plain dicts: server-side apply under one field
manager, create, delete with preconditions, status patches and lists.

The error policy lives here, once: absence is an answer, not an error (`get` returns None,
`delete` returns False, `create(exists_ok=True)` returns None); everything else comes back as
`ApiError` with the server's status and message, and `permanent(exc)` re-raises what a retry
with backoff may cure (network, 409 conflicts, 429, 5xx) so that callers handle only refusals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import kopf

from artifact_operator import __version__, metrics
from artifact_operator.api.naming import MANAGER
from artifact_operator.kube.kinds import KINDS, kind_of

Obj = dict[str, Any]
Items = list[Obj]  # named here: inside Kube, `list` is the method
log = logging.getLogger(__name__)


# HTTP/1.1 connections to the API server: requests in flight at once. Reconciles in flight are
# bounded to the same number (reconcile.py), so none waits long for a connection.
CONNECTIONS = 16
# Objects per page of a list, as client-go's reflector takes them: a list of thousands never
# sits in memory whole, as text and parsed, while it is taken (a restart over 1000 artifacts
# peaked above the creation that made them).
LIST_PAGE = 500
USER_AGENT = f"{MANAGER}/{__version__}"


async def login(client_login: bool = False) -> kopf.ConnectionInfo:
    """The credentials kopf itself would use: the in-cluster service account, else the
    kubeconfig (KUBECONFIG or ~/.kube/config); with `client_login`, a Kubernetes client
    library's login first (kubeconfigs with exec or auth-provider plugins)."""
    settings = kopf.OperatorSettings()
    logins: list[Callable[..., kopf.ConnectionInfo | None]] = [
        kopf.login_with_service_account, kopf.login_with_kubeconfig]
    if client_login:
        logins.insert(0, kopf.login_via_client)
    for fn in logins:
        info = fn(settings=settings, logger=log)
        if info is not None:
            return info
    raise ApiError(0, "no Kubernetes credentials: neither a service account nor a kubeconfig",
                   "NoCredentials")


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

    @property
    def conflict(self) -> bool:
        """409: someone else wrote first (a stale resourceVersion, a failed precondition)."""
        return self.status == 409


def permanent(exc: ApiError) -> ApiError:
    """`exc` when the API server refused for good (the caller reports it); a transient error
    is raised again, for the work queue to retry with backoff."""
    if exc.transient:
        raise exc
    return exc


class Kube:
    """An aiohttp session to the API server with the credentials kopf logs in with.

    Credentials come from kopf's own login functions (in-cluster service account, else the
    kubeconfig), so the operator needs no Kubernetes client library: importing one costs
    ~40 MB of the operator's memory (docs/benchmarks.md). On a 401 it logs in again, which
    picks up a rotated service-account token.
    """

    def __init__(self, info: kopf.ConnectionInfo, *, connections: int = CONNECTIONS,
                 user_agent: str = USER_AGENT, client_login: bool = False) -> None:
        self.info = info
        self.connections = connections
        self.user_agent = user_agent
        self.client_login = client_login
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def connect(cls, *, connections: int = CONNECTIONS, user_agent: str = USER_AGENT,
                      client_login: bool = False) -> Kube:
        return cls(await login(client_login), connections=connections, user_agent=user_agent,
                   client_login=client_login)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Each TLS connection holds a 256 KiB read buffer; a small pool is plenty for
            # one API server and keeps memory flat under load.
            connector = aiohttp.TCPConnector(limit=self.connections,
                                            ssl=self.info.as_ssl_context())
            self._session = aiohttp.ClientSession(
                base_url=self.info.server.rstrip("/") + "/", connector=connector,
                timeout=aiohttp.ClientTimeout(total=60, sock_connect=10),
                headers={"User-Agent": self.user_agent, **self.info.as_http_headers()},
                trust_env=self.info.trust_env)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _relogin(self) -> None:
        self.info = await login(self.client_login)
        await self.close()
        self._session = None

    async def request(self, method: str, path: str, *, body: Any = None,
                      query: list[tuple[str, str]] | None = None,
                      content_type: str = "application/json",
                      missing_ok: bool = False) -> Obj | None:
        data = json.dumps(body) if body is not None else None
        for attempt in (1, 2):
            try:
                async with self._client().request(
                        method, path.lstrip("/"), params=query or None, data=data,
                        headers={"Accept": "application/json",
                                 "Content-Type": content_type}) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                metrics.API_ERRORS.labels(method=method, code="network").inc()
                raise ApiError(0, str(exc), "NetworkError") from exc
            if status == 401 and attempt == 1:
                await self._relogin()
                continue
            break
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            metrics.API_ERRORS.labels(method=method, code=str(status)).inc()
            try:
                payload = json.loads(text)
            except json.JSONDecodeError:
                raise ApiError(status, text) from None
            raise ApiError(status, payload.get("message", text), payload.get("reason", ""))
        result: Obj = json.loads(text) if text else {}
        return result

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply `obj` as our field manager, taking over conflicting fields."""
        return await self._patch(obj, obj, "application/apply-patch+yaml", force=True)

    async def create(self, obj: Obj, *, exists_ok: bool = False) -> Obj | None:
        """POST `obj`; with `exists_ok`, None when an object of that name already exists."""
        k = kind_of(obj)
        try:
            out = await self.request("POST", k.path(obj["metadata"].get("namespace")), body=obj,
                                     query=[("fieldManager", MANAGER)])
        except ApiError as exc:
            if exists_ok and exc.conflict:
                return None
            raise
        assert out is not None
        return out

    async def create_new(self, obj: Obj) -> Obj:
        """POST an object that cannot exist yet (reviews, generateName)."""
        out = await self.create(obj)
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
                  name: str, *, cached: bool = False) -> Obj | None:
        """The object, or None. `cached`: as the API server's watch cache holds it (no etcd
        read; it may lag a write by moments), for a question a watch would answer as well."""
        k = KINDS[(api_version, kind)]
        return await self.request("GET", k.path(namespace, name), missing_ok=True,
                                  query=[("resourceVersion", "0")] if cached else None)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> list[Obj]:
        k = KINDS[(api_version, kind)]
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        out = await self.request("GET", k.path(namespace), query=query)
        return list((out or {}).get("items", []))

    async def delete(self, obj: Mapping[str, Any], *, uid: str | None = None) -> bool:
        """Delete `obj` in the background; False when it is already gone.

        With `uid`, the API server deletes only that incarnation of the object, so a claim
        re-created by someone else in the meantime is left alone (also False).
        """
        k = kind_of(obj)
        meta = obj["metadata"]
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions",
                     "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            out = await self.request("DELETE", k.path(meta.get("namespace"), meta["name"]),
                                     body=body, missing_ok=True)
        except ApiError as exc:
            if uid and exc.conflict:
                return False  # the precondition failed: it is another object now
            raise
        return out is not None

    async def patch(self, obj: Mapping[str, Any], patch: Obj, *,
                    subresource: str | None = None) -> Obj:
        """A JSON merge patch (status, labels): it touches only the keys it names."""
        return await self._patch(obj, patch, "application/merge-patch+json",
                                 subresource=subresource)

    async def json_patch(self, obj: Mapping[str, Any], ops: Sequence[Obj]) -> Obj:
        """A JSON patch (RFC 6902): for a change a merge patch cannot name, such as one field
        of one list item; its `test` ops make the whole patch fail (422) if they do not hold."""
        return await self._patch(obj, ops, "application/json-patch+json")

    async def _patch(self, obj: Mapping[str, Any], body: Any, content_type: str, *,
                     subresource: str | None = None, force: bool = False) -> Obj:
        """PATCH `obj` (or its `subresource`) as our field manager; the content type says
        which kind of patch `body` is."""
        meta = obj["metadata"]
        query = [("fieldManager", MANAGER)] + ([("force", "true")] if force else [])
        out = await self.request(
            "PATCH", kind_of(obj).path(meta.get("namespace"), meta["name"], subresource),
            body=body, query=query, content_type=content_type)
        assert out is not None
        return out

    async def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves this resource (discovery of one group version)."""
        out = await self.request("GET", f"/apis/{api_version}", missing_ok=True)
        return any(r.get("name") == plural for r in (out or {}).get("resources", []))

    async def list_pages(self, api_version: str, kind: str, namespace: str | None,
                         label_selector: str, page: int = LIST_PAGE
                         ) -> AsyncIterator[tuple[Items, str]]:
        """A list, `page` objects at a time, each page with the list's resourceVersion (where
        a watch resumes). The pages are one snapshot; a snapshot too old to go on from (the
        continue token expired) is a 410, as for a watch."""
        k = KINDS[(api_version, kind)]
        token = ""
        while True:
            query = [("labelSelector", label_selector), ("limit", str(page))]
            if token:
                query.append(("continue", token))
            out = await self.request("GET", k.path(namespace), query=query) or {}
            meta = out.get("metadata", {})
            token = str(meta.get("continue") or "")
            # Popped, so that this frame holds no page while the caller works through it.
            yield list(out.pop("items", None) or []), str(meta.get("resourceVersion"))
            if not token:
                return

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    label_selector: str, resource_version: str,
                    timeout_seconds: int = 290, field_selector: str = ""
                    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """(type, object) of each watch event from `resource_version` on, until the server
        ends the watch; a 410 (too old) and ERROR events come back as ApiError."""
        k = KINDS[(api_version, kind)]
        query = [("watch", "true"), ("labelSelector", label_selector),
                 ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        try:
            async with self._client().get(
                    k.path(namespace).lstrip("/"), params=query,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10,
                                                  sock_read=timeout_seconds + 30)) as resp:
                if resp.status >= 400:
                    metrics.API_ERRORS.labels(method="WATCH", code=str(resp.status)).inc()
                    raise ApiError(resp.status, await resp.text())
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(int(status.get("code", 500)),
                                       str(status.get("message", "")), "WatchError")
                    yield str(event.get("type")), event.get("object") or {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            metrics.API_ERRORS.labels(method="WATCH", code="network").inc()
            raise ApiError(0, str(exc), "NetworkError") from exc

    async def patch_if_unchanged(self, obj: Mapping[str, Any], patch: Obj, *,
                                 subresource: str | None = None) -> Obj:
        """A merge patch that the API server applies only if `obj`'s resourceVersion is
        still current (409 otherwise): a compare-and-swap for a field set once."""
        meta = obj["metadata"]
        guarded = {**patch, "metadata": {**patch.get("metadata", {}),
                                         "resourceVersion": meta["resourceVersion"]}}
        return await self.patch(obj, guarded, subresource=subresource)
