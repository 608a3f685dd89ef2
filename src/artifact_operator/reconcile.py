"""One level-based reconcile per Artifact: validate, render, apply, prune, compute status.

Every trigger (the Artifact changed, one of its children changed, a resync, a retry) only
marks the artifact dirty; one worker per artifact runs the reconcile until nothing is dirty,
so bursts of child events coalesce and an artifact is never reconciled twice at once.

The reconcile reads the cluster from `ClusterView` (kopf's indexes plus our own latest writes),
never by listing, and writes only what differs: an object is applied only when the live one
does not already hold the rendered fields (`compare.covers`), and status is patched only when
it changed. A restart or resync over unchanged artifacts therefore makes no writes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import metrics, naming, storage
from .approval import Approver
from .compare import covers
from .events import EventRecorder, now
from .kube import CONNECTIONS, ApiError, Kube
from .locking import Versions, repository_label_patch
from .models import Artifact, CredentialEnvVar, Lifecycle, Phase
from .observability import log_object
from .render import TOKEN_KEY, Rendered, render
from .settings import Settings
from .status import (
    Observed,
    Reason,
    compute_status,
    deployment_settling,
    invalid_status,
    status_patch,
)
from .validation import InvalidArtifact, parse

log = logging.getLogger(__name__)

# Artifact versions whose validation and rendering are kept (see Reconciler._render).
RENDER_CACHE = 64

Key = tuple[str, str]  # (namespace, artifact name)
Obj = dict[str, Any]
Ref = tuple[str, str]  # (kind, name)


def slim(body: Mapping[str, Any]) -> Obj:
    """The parts of an object the operator reads; managedFields and Secret data stay out of
    memory (and so out of any log line that might print an object)."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    out: Obj = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": meta}
    if body.get("kind") == "Secret":
        out["type"] = body.get("type")
        out["dataKeys"] = sorted((body.get("data") or {}).keys())
        return out
    for key in ("spec", "status"):
        if key in body:
            out[key] = body[key]
    return out


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


def controlled_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in obj.get("metadata", {}).get("ownerReferences", []))


class ClusterView:
    """The operator's picture of the cluster.

    Children come from kopf indexes (keyed by (namespace, artifact)), which kopf fills
    completely before any handler runs: after a restart the first reconcile already sees
    every existing child and re-creates nothing. Our own writes are overlaid until the watch
    catches up, so an echo of a write we just made is not mistaken for drift.
    """

    def __init__(self) -> None:
        self.artifacts: dict[Key, Obj] = {}
        self.indexes: dict[str, Any] = {}  # kind -> kopf.Index
        self._written: dict[tuple[str, str, str], Obj | None] = {}
        # The same writes by owning artifact, so a reconcile looks only at its own.
        self._written_by_owner: dict[Key, set[Ref]] = {}
        self._writer_owner: dict[tuple[str, str, str], Key] = {}

    def bind(self, indexes: Mapping[str, Any]) -> None:
        self.indexes.update(indexes)

    def note_artifact(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.artifacts.get(key)
        if current is not None and _rv(body) < _rv(current) and \
                current["metadata"].get("uid") == meta.get("uid"):
            return  # an older event overtaken by our own status write
        self.artifacts[key] = slim(body)

    def forget_artifact(self, key: Key) -> None:
        self.artifacts.pop(key, None)

    def note_written(self, obj: Mapping[str, Any]) -> None:
        self._note(obj, slim(obj))

    def note_deleted(self, obj: Mapping[str, Any]) -> None:
        self._note(obj, None)

    def _note(self, obj: Mapping[str, Any], written: Obj | None) -> None:
        meta = obj["metadata"]
        self._written[(obj["kind"], meta["namespace"], meta["name"])] = written
        owner = meta.get("labels", {}).get(naming.LABEL_ARTIFACT)
        if owner:
            key = (meta["namespace"], owner)
            self._writer_owner[(obj["kind"], meta["namespace"], meta["name"])] = key
            self._written_by_owner.setdefault(key, set()).add((obj["kind"], meta["name"]))

    def _forget_write(self, kind: str, namespace: str, name: str) -> None:
        self._written.pop((kind, namespace, name), None)
        owner = self._writer_owner.pop((kind, namespace, name), None)
        refs = self._written_by_owner.get(owner) if owner else None
        if owner is not None and refs is not None:
            refs.discard((kind, name))
            if not refs:
                del self._written_by_owner[owner]

    def _indexed(self, kind: str, key: tuple[str, ...]) -> list[Obj]:
        index = self.indexes.get(kind)
        if index is None or key not in index:
            return []
        return list(index[key])

    def _overlay(self, kind: str, namespace: str, name: str, seen: Obj | None) -> Obj | None:
        wkey = (kind, namespace, name)
        if wkey not in self._written:
            return seen
        written = self._written[wkey]
        if written is None:
            if seen is None:
                self._forget_write(kind, namespace, name)
            # A deletion we made; the watch may still show the object for a moment.
            return None
        if seen is not None and _rv(seen) >= _rv(written):
            self._forget_write(kind, namespace, name)  # the watch has caught up
            return seen
        return written

    def children(self, key: Key) -> dict[Ref, Obj]:
        namespace = key[0]
        out: dict[Ref, Obj] = {}
        for kind in self.indexes:
            for obj in self._indexed(kind, key):
                out[(obj["kind"], obj["metadata"]["name"])] = obj
        for kind, name in list(self._written_by_owner.get(key, ())):
            written = self._written.get((kind, namespace, name))
            if written and (kind, name) not in out:
                out[(kind, name)] = written
        for ref in list(out):
            merged = self._overlay(ref[0], namespace, ref[1], out[ref])
            if merged is None:
                del out[ref]
            else:
                out[ref] = merged
        return out

    def claim(self, namespace: str, name: str) -> Obj | None:
        found = self._indexed("PersistentVolumeClaim", ("claim", namespace, name))
        return self._overlay("PersistentVolumeClaim", namespace, name,
                             found[0] if found else None)


@dataclass
class _Work:
    dirty: bool = False
    running: bool = False
    failures: int = 0
    retry: asyncio.TimerHandle | None = None
    settling_since: float | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Reconciler:
    def __init__(self, kube: Kube, settings: Settings, view: ClusterView,
                 recorder: EventRecorder, concurrency: int = CONNECTIONS,
                 approver: Approver | None = None, active: bool = True) -> None:
        self.kube = kube
        self.approver = approver or Approver(None)
        self.versions = Versions(kube)
        # False on a standby replica (leader election): triggers are dropped, since the
        # leader reconciles everything when it takes over (`activate`).
        self.active = active
        self.settings = settings
        self.view = view
        self.events = recorder
        self._work: dict[Key, _Work] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._phases: dict[Key, str] = {}
        self._rendered: OrderedDict[tuple[Any, Any], tuple[Artifact, Rendered]] = OrderedDict()
        self.caches = storage.SharedCaches(kube, settings, view, recorder, self.enqueue)

    # -- scheduling ---------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        if not self.active:
            return
        work = self._work.setdefault(key, _Work())
        work.dirty = True
        if not work.running:
            work.running = True
            task = asyncio.get_running_loop().create_task(self._run(key, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def enqueue_all(self) -> None:
        for key in list(self.view.artifacts):
            self.enqueue(key)

    def activate(self) -> None:
        self.active = True
        self.enqueue_all()

    def deactivate(self) -> None:
        """Stop at once: no new reconciles, and the running ones are cancelled."""
        self.active = False
        for task in list(self._tasks):
            task.cancel()

    async def _run(self, key: Key, work: _Work) -> None:
        log_object.set(key)
        try:
            while work.dirty:
                work.dirty = False
                async with self._slots:
                    ok = await self._reconcile_once(key)
                if ok:
                    work.failures = 0
                else:
                    work.failures += 1
                    delay = min(2.0 ** (work.failures - 1), self.settings.max_backoff_seconds)
                    log.info("retrying %s/%s in %.0fs", *key, delay)
                    if work.retry:
                        work.retry.cancel()
                    work.retry = asyncio.get_running_loop().call_later(
                        delay, self.enqueue, key)
        finally:
            work.running = False
            if key not in self.view.artifacts and not work.dirty:
                self._work.pop(key, None)
                self._set_phase(key, None)

    async def _reconcile_once(self, key: Key) -> bool:
        started = time.perf_counter()
        try:
            result = await self.reconcile(key)
        except ApiError as exc:
            log.warning("reconcile of %s/%s failed: %s", *key, exc)
            metrics.RECONCILES.labels(result="error").inc()
            return not exc.transient
        except Exception:
            log.exception("reconcile of %s/%s failed", *key)
            metrics.RECONCILES.labels(result="error").inc()
            return False
        finally:
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels(result=result).inc()
        return True

    def _set_phase(self, key: Key, phase: str | None) -> None:
        old = self._phases.pop(key, None)
        if old is not None:
            metrics.ARTIFACTS.labels(phase=old).dec()
        if phase is not None:
            self._phases[key] = phase
            metrics.ARTIFACTS.labels(phase=phase).inc()

    # -- the reconcile ------------------------------------------------------------------

    async def reconcile(self, key: Key) -> str:
        """One pass over one artifact. Returns the result label for metrics."""
        body = self.view.artifacts.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return "gone"
        try:
            artifact, rendered = self._render(body)
        except InvalidArtifact as exc:
            # Nothing running is touched: no apply, no prune; just say why.
            status = invalid_status(body, exc.violations, now())
            if await self._write_status(body, status):
                self.events.post(body, "Warning", Reason.invalid_spec.value, str(exc))
            return "invalid"
        await self._label_repository(body, artifact)
        live = self.view.children(key)
        obs = Observed(rendered=rendered, live=live)
        caches_before = storage.caches_mounted(live.values())
        for obj in rendered.objects:
            await self._ensure(body, artifact, obj, live, obs)
        await self._prune(body, artifact, rendered, live)
        for claim in caches_before - storage.caches_mounted(rendered.objects):
            self.caches.check(artifact.namespace, claim)  # this artifact stopped using it
        if self._settling(key, rendered, live):
            return "settling"
        status = compute_status(artifact, obs, self.settings, body.get("status"), now())
        if status.get("phase") != Phase.ready.value:
            missing = await self._missing_secrets(artifact)
            if missing:
                obs.blockers.extend(missing)
                status = compute_status(artifact, obs, self.settings, body.get("status"), now())
        if artifact.spec.lifecycle == Lifecycle.locked and status.get("version") is None:
            status["version"] = await self.versions.assign(body)
        await self._write_status(body, status)
        return "error" if obs.errors else "ok"

    def _render(self, body: Obj) -> tuple[Artifact, Rendered]:
        """Validation and rendering of this version of the artifact.

        Most reconciles are woken by a child (our own write echoed, a controller's status
        update) while the artifact itself is unchanged: the result is kept for the last few
        hundred artifact versions, so a burst of child events costs no pydantic or render work.
        """
        meta = body["metadata"]
        version = (meta.get("uid"), meta.get("resourceVersion"))
        cached = self._rendered.get(version)
        if cached is not None:
            self._rendered.move_to_end(version)
            return cached
        artifact = parse(body)
        result = artifact, render(artifact, self.settings,
                                  elevated_approved=self.approver.verify(body))
        self._rendered[version] = result
        if len(self._rendered) > RENDER_CACHE:
            self._rendered.popitem(last=False)
        return result

    async def _label_repository(self, body: Obj, artifact: Artifact) -> None:
        patch = repository_label_patch(body, artifact)
        if patch is None:
            return
        updated = await self.kube.patch(body, patch)
        metrics.WRITES.labels(verb="patch", kind="Artifact").inc()
        self.view.note_artifact(updated)

    async def _missing_secrets(self, artifact: Artifact) -> list[tuple[Reason, str]]:
        """Credential Secrets or keys that do not exist, named (never a value).

        Asked only while the artifact is not Ready: a GET per referenced Secret then, none
        once it runs. Watching Secrets instead would mean a label-less watch holding every
        Secret of the namespace in memory, for a check that matters only until pods start.
        """
        wanted: dict[tuple[str, str], str] = {}
        for group in artifact.spec.container_groups:
            for ci, container in enumerate(group.containers):
                for env in container.environment_vars:
                    if isinstance(env, CredentialEnvVar):
                        wanted.setdefault(
                            (env.dr_credential_id, env.key),
                            f"env {env.name} of container {container.name or f'container-{ci}'}"
                            f" in group {group.name}")
        found: dict[str, list[str] | None] = {}
        out: list[tuple[Reason, str]] = []
        for (name, key), user in wanted.items():
            if name not in found:
                try:
                    secret = await self.kube.get("v1", "Secret", artifact.namespace, name)
                except ApiError as exc:
                    if exc.transient:
                        raise
                    log.info("cannot check Secret %s/%s: %s", artifact.namespace, name, exc)
                    return out
                # Only the key names are kept; the values are dropped right here.
                found[name] = None if secret is None else sorted(secret.get("data") or {})
            keys = found[name]
            if keys is None:
                out.append((Reason.secret_missing, f"Secret {name} ({user}) does not exist"))
            elif key not in keys:
                out.append((Reason.secret_missing, f"Secret {name} has no key {key} ({user})"))
        return out

    def _settling(self, key: Key, rendered: Rendered, live: Mapping[Ref, Obj]) -> bool:
        """Hold the status back while a Deployment has not yet reached the first pod of its
        current template (`deployment_settling`): the controllers' next status updates follow
        within moments and trigger the next reconcile. Without this, every create and every
        change writes the status two or three times on the way to the same Progressing. The
        hold is bounded: past `status_settle_seconds` the status is written as it stands, so
        a stopped controller or a refused pod cannot hide the artifact's state."""
        work = self._work.get(key)
        if work is None:
            return False
        settling = any(
            (d := live.get(("Deployment", o["metadata"]["name"]))) is not None
            and deployment_settling(d)
            for o in rendered.of_kind("Deployment"))
        if not settling:
            work.settling_since = None
            return False
        clock = time.monotonic()
        if work.settling_since is None:
            work.settling_since = clock
            asyncio.get_running_loop().call_later(
                self.settings.status_settle_seconds, self.enqueue, key)
        return clock - work.settling_since < self.settings.status_settle_seconds

    async def _ensure(self, body: Obj, artifact: Artifact, obj: Obj, live: dict[Ref, Obj],
                      obs: Observed) -> None:
        ref: Ref = (obj["kind"], obj["metadata"]["name"])
        current = live.get(ref)
        if storage.is_cache_claim(obj):
            claim = await self.caches.ensure(body, obj, obs)  # created once, never applied over
            if claim is not None:
                live[ref] = slim(claim)
            return
        if obj["kind"] == "PersistentVolumeClaim":
            update = storage.dedicated_update(current, obj, obs)  # grows, never shrinks
            if update is None:
                return
            obj = update
        if obj["kind"] == "Secret":
            if current is None:
                await self._create_token_secret(body, obj, live)
            return
        if current is not None and covers(current, obj):
            return
        if current is None:
            existing = await self.kube.get(obj["apiVersion"], obj["kind"], artifact.namespace,
                                           ref[1])
            if existing is not None and not self._may_take(existing, obj):
                message = (f"{ref[0]} {ref[1]} already exists and is not managed by this "
                           "artifact; refusing to take it over")
                obs.errors.append((Reason.apply_failed, message))
                return
            if existing is not None:
                current = slim(existing)
                live[ref] = current
                if covers(current, obj):
                    return
        try:
            applied = await self.kube.apply(obj)
        except ApiError as exc:
            if exc.transient:
                raise
            message = f"{ref[0]} {ref[1]} was rejected by the API server: {exc.message}"
            obs.errors.append((Reason.apply_failed, message))
            self.events.post(body, "Warning", Reason.apply_failed.value, message)
            return
        metrics.WRITES.labels(verb="apply", kind=ref[0]).inc()
        self.view.note_written(applied)
        live[ref] = slim(applied)
        verb = "Created" if current is None else "Updated"
        self.events.post(body, "Normal", verb, f"{verb} {ref[0]} {ref[1]}")

    @staticmethod
    def _may_take(existing: Obj, desired: Obj) -> bool:
        """An object we find by name is ours to apply over only if it is owned by the same
        artifact, or is a shared cache claim we manage."""
        owners = desired["metadata"].get("ownerReferences") or []
        if owners:
            return controlled_by(existing, owners[0]["uid"])
        labels = existing.get("metadata", {}).get("labels", {})
        return bool(labels.get(naming.LABEL_MANAGED_BY) == naming.MANAGER)

    async def _create_token_secret(self, body: Obj, obj: Obj, live: dict[Ref, Obj]) -> None:
        # Created once with a random token and never written again: not on resync, not on a
        # spec change. The token is never logged, posted or put in status.
        secret = {**obj, "stringData": {TOKEN_KEY: secrets.token_urlsafe(32)}}
        try:
            created = await self.kube.create(secret)
        except ApiError as exc:
            if exc.status == 409:
                return  # it exists; the watch will show it
            raise
        metrics.WRITES.labels(verb="create", kind="Secret").inc()
        self.view.note_written(created)
        live[("Secret", obj["metadata"]["name"])] = slim(created)
        self.events.post(body, "Normal", "Created", f"Created Secret {obj['metadata']['name']}")

    async def _prune(self, body: Obj, artifact: Artifact, rendered: Rendered,
                     live: Mapping[Ref, Obj]) -> None:
        wanted = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        keep_groups = set(rendered.waiting_for_image)  # still running the last good image
        uid = artifact.metadata.uid
        for ref, obj in list(live.items()):
            if ref in wanted or not controlled_by(obj, uid):
                continue
            group = obj["metadata"].get("labels", {}).get(naming.LABEL_GROUP)
            if group in keep_groups:
                continue
            try:
                await self.kube.delete(obj, uid=obj["metadata"].get("uid"))
            except ApiError as exc:
                if exc.transient:
                    raise
                if exc.status != 409:  # 409: the precondition failed, someone replaced it
                    log.warning("could not delete %s %s: %s", *ref, exc)
                continue
            metrics.WRITES.labels(verb="delete", kind=ref[0]).inc()
            self.view.note_deleted(obj)
            self.events.post(body, "Normal", "Deleted", f"Deleted {ref[0]} {ref[1]}")

    async def _write_status(self, body: Obj, status: Obj) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._set_phase(key, status.get("phase"))
        patch = status_patch(body.get("status"), status)
        if patch is None:
            return False
        log.debug("status of %s/%s: writing %s", *key, ", ".join(sorted(patch)))
        updated = await self.kube.patch(body, {"status": patch}, subresource="status")
        metrics.WRITES.labels(verb="patch", kind="Artifact/status").inc()
        self.view.note_artifact(updated)
        return True

    # -- periodic resync ----------------------------------------------------------------

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            log.info("resync: %d artifacts queued", len(self.view.artifacts))
            self.enqueue_all()

