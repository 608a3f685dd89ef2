"""The shared NIM model cache claims' lifecycle.

A shared cache claim (`nim-cache-<hash of the image>`) belongs to no artifact. `SharedCaches`
creates it when the first artifact needs it and never writes it again, because other workloads
may be mounting it. Who uses it is read from the cluster every time it matters (Deployments
labelled with the cache hash, and Artifacts that render it), never counted in memory or in a
finalizer, so the answer survives operator restarts and `kubectl delete` of an Artifact never
waits for the operator. When the last user is gone, the retention policy keeps the claim
(default) or deletes it (`apply_retention`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.base import API_GROUP, API_VERSION, KIND
from artifact_operator.api.status import Reason
from artifact_operator.controller.view import ClusterView
from artifact_operator.kube.client import ApiError, Kube, permanent
from artifact_operator.kube.events import EventRecorder
from artifact_operator.logic.claims import cache_claims_of
from artifact_operator.logic.status import Observed
from artifact_operator.settings import CacheRetention, Settings

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, artifact name)

RETRY_SECONDS = 5.0


class SharedCaches:
    """Creates shared cache claims once, and deletes one only when no workload uses it."""

    def __init__(self, kube: Kube, settings: Settings, view: ClusterView, events: EventRecorder,
                 enqueue: Callable[[Key], None]) -> None:
        self.kube = kube
        self.settings = settings
        self.view = view
        self.events = events
        self.enqueue = enqueue
        # (namespace, claim) -> "check again when done": checks of one claim never overlap.
        self._checks: dict[Key, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ensure(self, body: Obj, claim: Obj, obs: Observed) -> Obj | None:
        """The live cache claim, created if absent; an existing one is never applied over.

        Create (not apply) makes artifacts that start at the same moment agree on one claim:
        the first create wins and the others get 409 and use it.
        """
        meta = claim["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        current: Obj | None = self.view.claim(namespace, name)
        if current is not None:
            return current
        try:
            created = await self.kube.create(claim, exists_ok=True)
        except ApiError as exc:
            message = (f"PersistentVolumeClaim {name} was rejected by the API server: "
                       f"{permanent(exc).message}")
            obs.errors.append((Reason.apply_failed, message))
            self.events.post(body, "Warning", Reason.apply_failed.value, message)
            return None
        if created is not None:
            metrics.WRITES.labels(verb="create", kind="PersistentVolumeClaim").inc()
            self.view.note_written(created)
            self.events.post(body, "Normal", "Created", f"Created PersistentVolumeClaim "
                             f"{name} (shared model cache)")
            return created
        # Another artifact created it a moment ago (our view has not seen it yet).
        existing = await self.kube.get("v1", "PersistentVolumeClaim", namespace, name)
        if existing is None:
            raise ApiError(409, f"cache claim {name} vanished while being created", "Conflict")
        if (existing["metadata"].get("labels") or {}).get(naming.LABEL_MANAGED_BY) \
                != naming.MANAGER:
            obs.errors.append((Reason.apply_failed,
                               f"PersistentVolumeClaim {name} already exists and is not "
                               "managed by artifact-operator; refusing to take it over"))
            return None
        current = existing
        return current

    def users(self, namespace: str, claim: str) -> set[Key]:
        """Artifacts in the operator's view that use the cache claim: the owners of
        Deployments labelled with its hash, and artifacts whose spec renders it."""
        out: set[Key] = set()
        index = self.view.indexes.get("Deployment")
        key = ("cache", namespace, naming.cache_hash_of_claim(claim))
        if index is not None and key in index:
            for deployment in index[key]:
                owner = (namespace, (deployment["metadata"].get("labels") or {})
                         .get(naming.LABEL_ARTIFACT, ""))
                # Our own latest write wins over the index, which may not have seen the
                # Deployment drop the cache (an artifact that just switched away from it).
                latest = self.view.children(owner).get(
                    ("Deployment", deployment["metadata"]["name"]))
                if latest is not None and (latest["metadata"].get("labels") or {}).get(
                        naming.LABEL_CACHE) == key[2]:
                    out.add(owner)
        for (ns, name), body in list(self.view.artifacts.items()):
            if ns == namespace and not body["metadata"].get("deletionTimestamp") and \
                    claim in cache_claims_of(body):
                out.add((ns, name))
        return out

    # -- triggers (from kopf handlers and the reconcile) ---------------------------------------

    def claim_changed(self, namespace: str, claim: str) -> None:
        """A cache claim was added, changed or deleted: its users' status (and, if it was
        deleted, their claim) depends on it; and it may have no users left."""
        for key in self.users(namespace, claim):
            if key in self.view.artifacts:
                self.enqueue(key)
        self.apply_retention(namespace, claim)

    def artifact_gone(self, namespace: str, body: Mapping[str, Any]) -> None:
        for claim in cache_claims_of(body):
            self.apply_retention(namespace, claim)

    def apply_retention(self, namespace: str, claim: str) -> None:
        """Apply the retention policy to the claim if nothing uses it (in the background)."""
        if self.settings.cache_retention != CacheRetention.delete:
            return
        key = (namespace, claim)
        if key in self._checks:
            self._checks[key] = True
            return
        self._checks[key] = False
        task = asyncio.get_running_loop().create_task(self._run_checks(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_checks(self, key: Key) -> None:
        try:
            while True:
                self._checks[key] = False
                try:
                    await self._release_if_unused(*key)
                except ApiError as exc:
                    # Keeping a claim is always safe; look again shortly.
                    log.warning("could not check cache claim %s/%s: %s", *key, exc)
                    asyncio.get_running_loop().call_later(RETRY_SECONDS, self.apply_retention,
                                                          *key)
                if not self._checks[key]:
                    return
        finally:
            self._checks.pop(key, None)

    async def _release_if_unused(self, namespace: str, claim: str) -> None:
        current: Obj | None = self.view.claim(namespace, claim)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        if self.users(namespace, claim):
            return
        # The view trails the API server by a watch event: ask the API server itself right
        # before deleting, so a user created a moment ago keeps its cache.
        if await self._used_in_cluster(namespace, claim):
            return
        uid = current["metadata"].get("uid")
        # The uid precondition spares a claim that was deleted and re-created meanwhile.
        if await self.kube.delete(current, uid=uid):
            metrics.WRITES.labels(verb="delete", kind="PersistentVolumeClaim").inc()
            self.view.note_deleted(current)
            log.info("deleted cache claim %s/%s: no artifact uses it (retention: delete)",
                     namespace, claim)
            self.events.post(current, "Normal", "Deleted",
                             f"Deleted cache claim {claim}: no artifact in {namespace} uses it "
                             "and the retention policy is delete")

    async def _used_in_cluster(self, namespace: str, claim: str) -> bool:
        selector = f"{naming.LABEL_CACHE}={naming.cache_hash_of_claim(claim)}"
        if await self.kube.list("apps/v1", "Deployment", namespace, label_selector=selector):
            return True
        artifacts = await self.kube.list(f"{API_GROUP}/{API_VERSION}", KIND, namespace)
        return any(claim in cache_claims_of(a) and not a["metadata"].get("deletionTimestamp")
                   for a in artifacts)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
