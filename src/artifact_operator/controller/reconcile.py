"""One level-based reconcile of one Artifact: validate, render, apply, prune, compute status.

The reconcile reads the cluster from `ClusterView` (our watches' indexes plus our own writes),
never by listing, and writes only what differs: children through `Applier` (only when the live
object lacks a rendered field), status only when it changed. A restart or resync over
unchanged artifacts therefore makes no writes. `WorkQueue` decides when it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.status import ArtifactStatus, Phase, Reason
from artifact_operator.api.validation import InvalidArtifact, parse
from artifact_operator.controller.apply import Applier
from artifact_operator.controller.builds import BuildFacts, Builds
from artifact_operator.controller.caches import SharedCaches
from artifact_operator.controller.pods import PodReader
from artifact_operator.controller.queue import WorkQueue
from artifact_operator.controller.secrets import CredentialFacts
from artifact_operator.controller.versions import Versions
from artifact_operator.controller.view import (
    ClusterView,
    Key,
    Obj,
    Ref,
    approval_keys,
    changed_by_others,
    owner_key,
    spec_unanswered,
)
from artifact_operator.controller.warmup import WarmUps, ensure_all
from artifact_operator.kube.client import CONNECTIONS, ApiError, Kube
from artifact_operator.kube.events import EventRecorder, now
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic.approval import LegacyApprover, decide
from artifact_operator.logic.builds import needs_build
from artifact_operator.logic.claims import caches_mounted
from artifact_operator.logic.credentials import SecretFacts
from artifact_operator.logic.legacy import hold_changed_legacy
from artifact_operator.logic.lock import lock_state
from artifact_operator.logic.render import Rendered, render
from artifact_operator.logic.repository import repository_label_patch
from artifact_operator.logic.rollout import deployment_settling
from artifact_operator.logic.served import ServedApis
from artifact_operator.logic.status import (
    Observed,
    compute_status,
    frozen_status,
    invalid_status,
    status_patch,
)
from artifact_operator.settings import Settings

log = logging.getLogger(__name__)

# Artifact versions whose validation and rendering are kept (see Reconciler._render).
RENDER_CACHE = 64
# A child's events within this window wake its artifact once (WorkQueue.enqueue_soon): the
# batch window kopf applied to them when it watched the children. Without it, creation ran
# ~1.3x slower (one reconcile per status step of each Deployment; docs/benchmarks.md).
CHILD_BATCH_SECONDS = 0.1


class Outcome(StrEnum):
    """How a reconcile ended: the `result` label of `artifact_operator_reconciles_total`."""

    ok = "ok"  # everything rendered was applied; status is current
    invalid = "invalid"  # the spec breaks a rule: status says why, nothing was touched
    frozen = "frozen"  # a locked artifact's spec changed: status says so, nothing was touched
    settling = "settling"  # status held while a Deployment takes its first step
    gone = "gone"  # the artifact was deleted meanwhile
    error = "error"  # the API server refused something (Degraded), or the pass failed


class ArtifactGone(Exception):
    """The API server has no such artifact (404 on our write): it was deleted while our
    watch was away, so no deletion event will ever say so."""


class Reconciler:
    def __init__(self, kube: Kube, settings: Settings, view: ClusterView,
                 events: EventRecorder, legacy: LegacyApprover, *,
                 credentials: ListWatch | None = None, children: Sequence[ListWatch] = (),
                 approvals: ListWatch | None = None,
                 lease_namespace: str = "default", concurrency: int = CONNECTIONS,
                 active: bool = True) -> None:
        self.kube = kube
        # The watches of our children (view.CHILD_KINDS); a reconcile waits for their lists.
        self.children = list(children)
        # Image builds (controller/builds.py): set by the composition root once it knows
        # the engine; None: containers waiting for a build stay ImageNotBuilt.
        self.builds: Builds | None = None
        # Model cache warm-ups (controller/warmup.py): set by the composition root; None: none.
        self.warmups: WarmUps | None = None
        # The optional APIs the server serves (controller/apis.py): set by the composition
        # root at start and when one appears; by default all, as offline.
        self.apis = ServedApis()
        # The ArtifactApprovals, indexed by the artifact they name (view.approval_keys).
        self.approvals = approvals
        # The Secrets that opt in to artifacts (logic/credentials.py), watched by label.
        self.credentials = credentials
        self.secrets = CredentialFacts(kube, credentials)
        self.settings = settings
        self.view = view
        self.events = events
        self.legacy = legacy
        self.versions = Versions(kube, lease_namespace)
        self.queue = WorkQueue(self.run, concurrency=concurrency,
                               max_backoff=settings.max_backoff_seconds,
                               known=lambda key: key in view.artifacts,
                               forget=self._forget,
                               urgent=lambda key: spec_unanswered(view.artifacts.get(key)),
                               active=active)
        self.caches = SharedCaches(kube, settings, view, events, self.queue.enqueue)
        self.applier = Applier(kube, view, events, self.caches)
        self.pods = PodReader(kube)
        self._phases: dict[Key, str] = {}
        self._rendered: OrderedDict[tuple[Any, ...], tuple[Artifact, Rendered]] = OrderedDict()

    # -- triggers ---------------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        self.queue.enqueue(key)

    def artifact_changed(self, old: Obj | None, new: Obj | None) -> None:
        """An Artifact appeared, changed or went (from its watch: `new` a slim body, `old`
        what the watch kept of it; the view holds the whole)."""
        body = new if new is not None else old
        if body is None:
            return
        key = (str(body["metadata"]["namespace"]), str(body["metadata"]["name"]))
        if new is None:
            held = self.view.artifacts.get(key)
            self.view.forget_artifact(key)
            if held is not None:
                self.caches.artifact_gone(key[0], held)
        elif not self.view.note_artifact(new):
            # Our own write coming back: its answer is held already, and a change of
            # someone else's in it was queued by the write (`_noted`).
            return
        self.queue.enqueue(key)

    def approval_changed(self, old: Obj | None, new: Obj | None) -> None:
        """An approval given, changed or withdrawn: the artifact it names decides again."""
        for body in (old, new):
            for key in approval_keys(body or {}):
                if key in self.view.artifacts:
                    self.queue.enqueue(key)

    def child_changed(self, old: Obj | None, new: Obj | None) -> None:
        """One of our children appeared, changed or went (slim bodies, from its watch)."""
        body = new if new is not None else old
        if body is None:
            return
        if new is not None:
            self.view.watched(new)
        # Both: a child whose artifact label was edited leaves that artifact, which must
        # notice, as well as naming another (or none).
        for owner in {self._owner(old), self._owner(new)}:
            if owner is not None and owner in self.view.artifacts:
                self.queue.enqueue_soon(owner, CHILD_BATCH_SECONDS)
        meta = body["metadata"]
        namespace, labels = meta.get("namespace"), meta.get("labels") or {}
        if not namespace or naming.LABEL_CACHE not in labels:
            return
        if body.get("kind") == "Deployment" and new is None:
            # A user of a shared cache claim went: the claim may have no users left.
            self.caches.apply_retention(namespace,
                                        naming.cache_claim_of_hash(labels[naming.LABEL_CACHE]))
        elif body.get("kind") == "PersistentVolumeClaim":
            self.caches.claim_changed(namespace, str(meta["name"]))

    @staticmethod
    def _owner(child: Obj | None) -> Key | None:
        if child is None:
            return None
        meta = child["metadata"]
        return owner_key(meta.get("namespace"), meta.get("labels") or {})

    def secret_changed(self, namespace: str, name: str) -> None:
        """An opted-in Secret appeared, changed or went: reconcile the artifacts that read it."""
        for key in self.view.secret_readers(namespace, name):
            self.queue.enqueue(key)

    def enqueue_all(self) -> None:
        self.queue.enqueue_all(self.view.artifacts)

    def activate(self) -> None:
        """This replica became the leader: reconcile everything from here on."""
        self.queue.activate(self.view.artifacts)

    def deactivate(self) -> None:
        self.queue.deactivate()

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            log.info("resync: %d artifacts queued", len(self.view.artifacts))
            self.enqueue_all()

    # -- one run, as the queue calls it -----------------------------------------------------

    async def run(self, key: Key) -> bool:
        """Reconcile once, counting the outcome; False asks the queue to retry with backoff."""
        started = time.perf_counter()
        try:
            outcome = await self.reconcile(key)
        except ApiError as exc:
            log.warning("reconcile of %s/%s failed: %s", *key, exc)
            metrics.RECONCILES.labels(result=Outcome.error.value).inc()
            return not exc.transient
        except Exception:
            log.exception("reconcile of %s/%s failed", *key)
            metrics.RECONCILES.labels(result=Outcome.error.value).inc()
            return False
        finally:
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels(result=outcome.value).inc()
        return True

    def _forget(self, key: Key) -> None:
        self._set_phase(key, None)
        if self.builds is not None:
            self.builds.artifact_gone(key)

    def _set_phase(self, key: Key, phase: str | None) -> None:
        old = self._phases.pop(key, None)
        if old is not None:
            metrics.ARTIFACTS.labels(phase=old).dec()
        if phase is not None:
            self._phases[key] = phase
            metrics.ARTIFACTS.labels(phase=phase).inc()

    # -- the reconcile ----------------------------------------------------------------------

    async def reconcile(self, key: Key) -> Outcome:
        try:
            with self.events.batch():  # one Event per reason, not one per child
                return await self._reconcile(key)
        except ArtifactGone:
            # Deleted, and the delete not yet seen (the watch catches up): without this, the
            # artifact stays in the view until it does, and every event of its
            # garbage-collected children would re-create them for an owner that is gone.
            body = self.view.artifacts.get(key)
            log.info("%s/%s is gone (deleted while the watch was away); forgotten", *key)
            self.view.forget_artifact(key, body["metadata"].get("uid") if body else None)
            self._set_phase(key, None)
            return Outcome.gone

    async def _reconcile(self, key: Key) -> Outcome:
        # Never judge a child or a Secret before its watch has listed them all: a child not
        # yet seen would be created again, and a restart must write nothing.
        for watch in self.children:
            await watch.synced.wait()
        if self.credentials is not None:
            await self.credentials.synced.wait()
        if self.approvals is not None:  # an approval not yet seen would withhold a group
            await self.approvals.synced.wait()
        body = self.view.artifacts.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome.gone
        stored = ArtifactStatus.from_wire(body.get("status"))
        lock = lock_state(body, stored)
        if lock.changed:
            # Never rolled out, whoever changed it and whether or not a webhook was there.
            if await self._write_status(body, frozen_status(body, stored, now())):
                self.events.post(body, "Warning", Reason.locked_spec_changed.value,
                                 "the spec of a locked artifact changed; nothing was rolled out")
            return Outcome.frozen
        live = self.view.children(key)
        try:
            facts = await self.secrets.facts(body, live)
            built = BuildFacts()
            if self.builds is not None and needs_build(body.get("spec")):
                built = await self.builds.observe(body, parse(body), stored)
            artifact, rendered = self._render(body, facts, built)
        except InvalidArtifact as exc:
            # Nothing running is touched: no apply, no prune; just say why.
            status = invalid_status(body, exc.violations, now())
            if await self._write_status(body, status):
                self.events.post(body, "Warning", Reason.invalid_spec.value, str(exc))
            return Outcome.invalid
        body = await self._label_repository(body, artifact)
        rendered = hold_changed_legacy(artifact, rendered, live)
        obs = Observed(rendered=rendered, live=live, builds=built.statuses,
                       build_held=built.held)
        caches_before = caches_mounted(live.values())
        rendered = obs.rendered = await ensure_all(self.applier, self.warmups, body, artifact,
                                                   rendered, live, obs)
        await self.applier.prune(body, artifact.metadata.uid, rendered, live)
        for claim in caches_before - caches_mounted(rendered.objects):
            self.caches.apply_retention(artifact.namespace, claim)  # no longer used here
        if self._settling(key, body, stored, rendered, live):
            return Outcome.settling
        obs.pods = await self.pods.facts(artifact, live, stored)
        status = compute_status(artifact, obs, self.settings, stored, now())
        if status.phase != Phase.ready:
            missing = self.secrets.missing_keys(artifact)
            if missing:
                obs.blockers.extend(missing)
                status = compute_status(artifact, obs, self.settings, stored, now())
        versioned = lock.locked and status.version is None
        if versioned:
            status = status.model_copy(update={"version": await self.versions.assign(body)})
        if lock.locked:
            status = status.model_copy(update={"locked_spec_digest": lock.digest})
        # A version is stored only over the artifact as we read it (409 otherwise, and the
        # queue retries): one that got its version meanwhile never gets another.
        await self._write_status(body, status, guarded=versioned)
        return Outcome.error if obs.errors else Outcome.ok

    @staticmethod
    async def _artifact_write(write: Awaitable[Obj]) -> Obj:
        try:
            return await write
        except ApiError as exc:
            if exc.status == 404:
                raise ArtifactGone from exc
            raise

    def _render(self, body: Obj, facts: SecretFacts,
                built: BuildFacts | None = None) -> tuple[Artifact, Rendered]:
        """Validation and rendering of this version of the artifact, given what is known of
        its Secrets.

        Most reconciles are woken by a child (our own write echoed, a controller's status
        update) while the artifact itself is unchanged: the result is kept for the last
        RENDER_CACHE artifact versions, so a burst of child events costs no pydantic or
        render work.
        """
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        approvals = self.view.approvals(key)
        # Approvals and Secrets change independently of the artifact: they are part of the key.
        built = built or BuildFacts()
        # Built images appear without the artifact changing: part of the key too.
        version = (meta.get("uid"), meta.get("resourceVersion"), facts, built.key(), self.apis,
                   *sorted(str(a["metadata"].get("resourceVersion")) for a in approvals))
        cached = self._rendered.get(version)
        if cached is not None:
            self._rendered.move_to_end(version)
            return cached
        artifact = parse(body)
        decisions = decide(artifact, approvals, legacy=self.legacy.verify(body))
        result = artifact, render(artifact, self.settings, decisions, secrets=facts,
                                  images=built.images, apis=self.apis)
        self._rendered[version] = result
        if len(self._rendered) > RENDER_CACHE:
            self._rendered.popitem(last=False)
        return result

    async def _label_repository(self, body: Obj, artifact: Artifact) -> Obj:
        """The artifact labelled with its repository; the body as it is now stored."""
        patch = repository_label_patch(body, artifact)
        if patch is None:
            return body
        updated = await self._artifact_write(self.kube.patch(body, patch))
        metrics.WRITES.labels(verb="patch", kind="Artifact").inc()
        self._noted(body, patch, updated)
        return updated

    def _settling(self, key: Key, body: Obj, stored: ArtifactStatus, rendered: Rendered,
                  live: Mapping[Ref, Obj]) -> bool:
        """Hold the status back while a Deployment has not yet reached the first pod of its
        current template (`deployment_settling`): the controllers' next status updates follow
        within moments and trigger the next reconcile. Without this, every create and every
        change writes the status two or three times on the way to the same Progressing. The
        hold is bounded: past `status_settle_seconds` the status is written as it stands, so
        a stopped controller or a refused pod cannot hide the artifact's state.

        A spec change of an artifact already observed is held for less
        (`status_change_settle_seconds`): its status is what tells a user or a GitOps tool
        that the change was taken (`observedGeneration`), and a busy Deployment controller
        must not delay that by seconds. A slow pod then costs one more status write."""
        settling = any(
            (d := live.get(("Deployment", o["metadata"]["name"]))) is not None
            and deployment_settling(d)
            for o in rendered.of_kind("Deployment"))
        seconds = self.settings.status_settle_seconds
        if stored.observed_generation is not None and spec_unanswered(body):
            seconds = min(seconds, self.settings.status_change_settle_seconds)
        return self.queue.hold(key, settling, seconds)

    async def _write_status(self, body: Obj, status: ArtifactStatus, *,
                            guarded: bool = False) -> bool:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._set_phase(key, status.phase)
        patch = status_patch(body.get("status"), status)
        if patch is None:
            return False
        log.debug("status of %s/%s: writing %s", *key, ", ".join(sorted(patch)))
        if guarded:
            updated = await self._artifact_write(self.kube.patch_if_unchanged(
                body, {"status": patch}, subresource="status"))
        else:
            updated = await self._artifact_write(
                self.kube.patch(body, {"status": patch}, subresource="status"))
        metrics.WRITES.labels(verb="patch", kind="Artifact/status").inc()
        self._noted(body, {"status": patch}, updated)
        return True

    def _noted(self, read: Obj, patch: Obj, updated: Obj) -> None:
        """Hold the answer to our write. The watch's echo of it then reconciles nothing
        (`artifact_changed`), so a change someone made between our read and our write,
        which the answer holds too, is queued here."""
        self.view.note_artifact(updated)
        if changed_by_others(read, patch, updated):
            key = (read["metadata"]["namespace"], read["metadata"]["name"])
            log.info("%s/%s changed while it was reconciled: queued again", *key)
            self.queue.enqueue(key)
