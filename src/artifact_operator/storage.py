"""NIM model-weight claims: how a dedicated claim may change, and the shared cache's lifecycle.

A dedicated claim (`<artifact>-model-store`) is owned by its artifact and applied like any other
child, after `dedicated_update` has decided what may be applied: a claim can grow once it is
bound but never shrink, and its access modes and storage class are fixed at creation.

A shared cache claim (`nim-cache-<hash of the image>`) belongs to no artifact. `SharedCaches`
creates it when the first artifact needs it and never writes it again, because other workloads
may be mounting it. Who uses it is read from the cluster every time it matters (Deployments
labelled with the cache hash, and Artifacts that render it), never counted in memory or in a
finalizer, so the answer survives operator restarts and `kubectl delete` of an Artifact never
waits for the operator. When the last user is gone, the retention policy keeps the claim
(default) or deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from . import metrics, naming
from .events import EventRecorder
from .kube import ApiError, Kube
from .models import API_GROUP, API_VERSION, KIND, ArtifactType, StorageMode
from .quantity import parse_quantity
from .settings import CacheRetention, Settings
from .status import Observed, Reason

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, artifact name)

# Immutable once a claim exists: the API server refuses any change to them.
_FIXED_AT_CREATION = ("accessModes", "storageClassName")
RETRY_SECONDS = 5.0


# -- pure helpers --------------------------------------------------------------------------

def is_cache_claim(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("kind") == "PersistentVolumeClaim"
                and naming.LABEL_CACHE in (obj.get("metadata", {}).get("labels") or {}))


def cache_claim_of_hash(cache_hash: str) -> str:
    return naming.CACHE_CLAIM_PREFIX + cache_hash


def cache_hash_of(claim: str) -> str:
    return claim.removeprefix(naming.CACHE_CLAIM_PREFIX)


def cache_claims_of(body: Mapping[str, Any]) -> set[str]:
    """The cache claims an Artifact (as stored, possibly invalid) would mount.

    Read from the raw object rather than parsed, because it runs over every artifact in a
    namespace on each check and must also answer for a spec that no longer validates.
    """
    spec = body.get("spec")
    if not isinstance(spec, Mapping) or spec.get("type") != ArtifactType.nim.value:
        return set()
    storage = spec.get("storage")
    if not isinstance(storage, Mapping) or storage.get("mode") != StorageMode.nim_cache.value:
        return set()
    out: set[str] = set()
    for group in spec.get("containerGroups") or []:
        for container in (group.get("containers") or []) if isinstance(group, Mapping) else []:
            if isinstance(container, Mapping) and container.get("primary") and \
                    isinstance(container.get("imageUri"), str) and container["imageUri"]:
                out.add(naming.cache_claim_name(container["imageUri"]))
    return out


def caches_mounted(objects: Iterable[Mapping[str, Any]]) -> set[str]:
    """Cache claims used by the Deployments among `objects` (by their cache label)."""
    return {cache_claim_of_hash(o["metadata"]["labels"][naming.LABEL_CACHE])
            for o in objects
            if o.get("kind") == "Deployment"
            and naming.LABEL_CACHE in (o.get("metadata", {}).get("labels") or {})}


def _size(claim: Mapping[str, Any]) -> str | None:
    size = (claim.get("spec", {}).get("resources", {}).get("requests") or {}).get("storage")
    return str(size) if size is not None else None


def _quantity(text: str) -> Decimal:
    return parse_quantity(text)


def dedicated_update(live: Obj | None, desired: Obj, obs: Observed) -> Obj | None:
    """What to apply for a dedicated claim, or None to leave the live one as it is.

    A shrink is refused (Degraded) and growth waits until the claim is bound (the API server
    resizes only bound claims); in both cases nothing is written, so nothing that runs changes.
    """
    if live is None:
        return desired
    name = desired["metadata"]["name"]
    spec = dict(desired["spec"])
    live_spec = live.get("spec", {})
    for key in _FIXED_AT_CREATION:
        if key in live_spec:
            spec[key] = live_spec[key]
        else:
            spec.pop(key, None)
    want, have = _size(desired), _size(live)
    if want is not None and have is not None:
        if _quantity(want) < _quantity(have):
            obs.errors.append((Reason.shrink_refused,
                               f"claim {name} cannot shrink from {have} to {want}: persistent "
                               f"volume claims only grow; it stays at {have} and nothing was "
                               "changed"))
            return None
        phase = live.get("status", {}).get("phase")
        if _quantity(want) > _quantity(have) and phase != "Bound":
            obs.blockers.append((Reason.claim_pending,
                                 f"claim {name} grows from {have} to {want} once it is bound"))
            return None
    return {**desired, "spec": spec}


# -- the shared cache ------------------------------------------------------------------------

class SharedCaches:
    """Creates shared cache claims once, and deletes one only when no workload uses it."""

    def __init__(self, kube: Kube, settings: Settings, view: Any, events: EventRecorder,
                 enqueue: Callable[[Key], None]) -> None:
        self.kube = kube
        self.settings = settings
        self.view = view  # reconcile.ClusterView (not imported: reconcile imports this module)
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
        if current is None:
            try:
                created = await self.kube.create(claim)
            except ApiError as exc:
                if exc.status != 409:
                    if exc.transient:
                        raise
                    message = f"PersistentVolumeClaim {name} was rejected by the API server: " \
                              f"{exc.message}"
                    obs.errors.append((Reason.apply_failed, message))
                    self.events.post(body, "Warning", Reason.apply_failed.value, message)
                    return None
                existing = await self.kube.get("v1", "PersistentVolumeClaim", namespace, name)
                if existing is None:
                    raise ApiError(409, f"cache claim {name} vanished while being created",
                                   "Conflict") from exc
                if (existing["metadata"].get("labels") or {}).get(naming.LABEL_MANAGED_BY) \
                        != naming.MANAGER:
                    obs.errors.append((Reason.apply_failed,
                                       f"PersistentVolumeClaim {name} already exists and is not "
                                       "managed by artifact-operator; refusing to take it over"))
                    return None
                current = existing
            else:
                metrics.WRITES.labels(verb="create", kind="PersistentVolumeClaim").inc()
                self.view.note_written(created)
                current = created
                self.events.post(body, "Normal", "Created", f"Created PersistentVolumeClaim "
                                 f"{name} (shared model cache)")
        return current

    def users(self, namespace: str, claim: str) -> set[Key]:
        """Artifacts in the operator's view that use the cache claim: the owners of
        Deployments labelled with its hash, and artifacts whose spec renders it."""
        out: set[Key] = set()
        index = self.view.indexes.get("Deployment")
        key = ("cache", namespace, cache_hash_of(claim))
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
        self.check(namespace, claim)

    def artifact_gone(self, namespace: str, body: Mapping[str, Any]) -> None:
        for claim in cache_claims_of(body):
            self.check(namespace, claim)

    def check(self, namespace: str, claim: str) -> None:
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
                    asyncio.get_running_loop().call_later(RETRY_SECONDS, self.check, *key)
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
        try:
            # The uid precondition spares a claim that was deleted and re-created meanwhile.
            deleted = await self.kube.delete(current, uid=uid)
        except ApiError as exc:
            if exc.status == 409:
                return
            raise
        if deleted:
            metrics.WRITES.labels(verb="delete", kind="PersistentVolumeClaim").inc()
            self.view.note_deleted(current)
            log.info("deleted cache claim %s/%s: no artifact uses it (retention: delete)",
                     namespace, claim)
            self.events.post(current, "Normal", "Deleted",
                             f"Deleted cache claim {claim}: no artifact in {namespace} uses it "
                             "and the retention policy is delete")

    async def _used_in_cluster(self, namespace: str, claim: str) -> bool:
        selector = f"{naming.LABEL_CACHE}={cache_hash_of(claim)}"
        if await self.kube.list("apps/v1", "Deployment", namespace, label_selector=selector):
            return True
        artifacts = await self.kube.list(f"{API_GROUP}/{API_VERSION}", KIND, namespace)
        return any(claim in cache_claims_of(a) and not a["metadata"].get("deletionTimestamp")
                   for a in artifacts)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
