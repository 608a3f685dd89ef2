"""Model cache warm-ups of a reconcile: create the Job a claim and image need, once, read how
far it got, record a warm claim, and hold the groups that wait (logic/warmup.py holds the
what; this the I/O).

Level-based, like the image builds: each reconcile looks at the claim (its warm annotation),
the warm-up Jobs (one watch by label) and the artifact's Deployments, and creates the Job of a
claim and image only when the claim is not warm and no such Job exists. The name comes from
both, so a second create (another artifact on the same image, another replica, a restart, a
watch that lags) is a 409, never a second download. When a Job succeeded, the claim is
annotated as warm for the image, so a Job deleted later (by hand, or by a TTL controller)
never starts a download again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.status import CachePhase, Reason, WarmUpStatus
from artifact_operator.controller.apply import Applier
from artifact_operator.controller.view import ClusterView, Obj, Ref, slim
from artifact_operator.kube.client import ApiError, Kube, permanent
from artifact_operator.kube.events import EventRecorder
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic import warmup as logic
from artifact_operator.logic.render import Rendered
from artifact_operator.logic.status import Observed
from artifact_operator.settings import CacheWarmUp, Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, artifact name)

# How long a reconcile waits for the first list of the warm-up Jobs (as for the builds').
SYNC_WAIT_SECONDS = 10.0
# How much of a failed pod's log (its termination message) goes into status.
FAILURE_LINES, FAILURE_CHARS = 3, 400


class WarmUps:
    def __init__(self, kube: Kube, settings: Settings, view: ClusterView,
                 events: EventRecorder, namespaces: list[str] | None,
                 enqueue: Callable[[Key], None], *, watch_kube: Kube | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.view = view
        self.events = events
        self.enqueue = enqueue
        self.watch = ListWatch(watch_kube or kube, "batch/v1", "Job", logic.selector(),
                               namespaces, slim, self._changed)
        self.sync_wait = SYNC_WAIT_SECONDS
        # The artifacts that wait for each Job, (namespace, job) -> keys, and the reverse.
        self._waiters: dict[Key, set[Key]] = {}
        self._asked: dict[Key, set[Key]] = {}
        # Jobs this process created that the watch may not show yet: not created twice.
        self._created: set[Key] = set()
        # Claims annotated warm by this process, (namespace, claim uid, image).
        self._marked: set[tuple[str, str, str]] = set()
        # Failed Jobs, by uid: the end of the failed pod's log (read once) and Events told.
        self._failures: dict[str, str | None] = {}

    async def run(self) -> None:
        await self.watch.run()

    def _changed(self, namespace: str, name: str) -> None:
        if self.watch.get(namespace, name) is None:
            self._created.discard((namespace, name))  # deleted: created again when needed
        waiters = self._waiters.get((namespace, name), set())
        for key in list(waiters):
            if key in self.view.artifacts:
                self.enqueue(key)
            else:
                waiters.discard(key)

    def _note_asked(self, key: Key, jobs: set[Key]) -> None:
        for job in self._asked.pop(key, set()) - jobs:
            waiters = self._waiters.get(job)
            if waiters is not None:
                waiters.discard(key)
                if not waiters:
                    del self._waiters[job]
        for job in jobs:
            self._waiters.setdefault(job, set()).add(key)
        if jobs:
            self._asked[key] = jobs

    async def hold(self, body: Obj, artifact: Artifact, rendered: Rendered,
                   live: dict[Ref, Obj], obs: Observed) -> Rendered:
        """The rendering with the warm-up status of its claims, and the groups whose claim is
        not warm yet held back when Deployments wait (`CacheWarmUp.wait`). The reconcile has
        applied the claims (`live` holds them): a Job is owned by its claim, by its uid."""
        key = (artifact.namespace, artifact.name)
        plans = logic.plans(artifact, rendered, self.settings)
        self._note_asked(key, {(artifact.namespace, p.job) for p in plans})
        if not plans:
            return rendered
        synced = await self.watch.wait_synced(key, self.sync_wait, self.enqueue)
        outcomes = [(plan, await self._state(body, artifact, plan, live, obs, synced))
                    for plan in plans]
        return logic.hold(rendered, outcomes, self.settings.cache_warm_up == CacheWarmUp.wait)

    async def _state(self, body: Obj, artifact: Artifact, plan: logic.WarmUpPlan,
                     live: dict[Ref, Obj], obs: Observed, synced: bool) -> WarmUpStatus:
        namespace = artifact.namespace

        def status(phase: CachePhase, reason: str | None = None,
                   message: str | None = None) -> WarmUpStatus:
            return WarmUpStatus(phase=phase, job=plan.job, reason=reason, message=message)

        claim = live.get(("PersistentVolumeClaim", plan.claim))
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return status(CachePhase.pending, message=f"claim {plan.claim} is not created yet")
        uid = str(claim["metadata"].get("uid"))
        if logic.is_warm(claim, plan.image) or (namespace, uid, plan.image) in self._marked:
            return status(CachePhase.ready)
        deployment = live.get(("Deployment", naming.group_object_name(artifact.name,
                                                                      plan.groups[0])))
        if logic.proven_warm(deployment, plan.claim, plan.image):
            await self._mark(body, claim, plan, live, "its servers are ready on it")
            return status(CachePhase.ready)
        if not synced:
            return status(CachePhase.pending, message="the warm-up Jobs cannot be listed yet "
                          "(may the operator list Jobs? see its log)")
        job = self.watch.get(namespace, plan.job)
        if job is not None and not any(ref.get("uid") == uid for ref in
                                       job["metadata"].get("ownerReferences") or []):
            # The Job of an earlier claim of this name: garbage collection removes it.
            return status(CachePhase.pending, message=f"the Job {plan.job} of a deleted "
                          f"claim {plan.claim} is being removed")
        if job is None:
            if (namespace, plan.job) not in self._created:
                await self._create(body, artifact, plan, uid, obs)
            return status(CachePhase.pending)
        phase, reason, message = logic.job_phase(job)
        if phase == CachePhase.ready:
            await self._mark(body, claim, plan, live, f"its warm-up Job {plan.job} succeeded")
        elif phase == CachePhase.failed:
            message = await self._failure(body, job, plan, reason, message)
        return status(phase, reason, message)

    async def _create(self, body: Obj, artifact: Artifact, plan: logic.WarmUpPlan,
                      claim_uid: str, obs: Observed) -> None:
        obj = logic.render_job(artifact, plan, self.settings, claim_uid)
        try:
            created = await self.kube.create(obj, exists_ok=True)
        except ApiError as exc:
            message = f"Job {plan.job} was rejected by the API server: {permanent(exc).message}"
            obs.errors.append((Reason.apply_failed, message))
            self.events.post(body, "Warning", Reason.apply_failed.value, message)
            return
        self._created.add((artifact.namespace, plan.job))
        if created is not None:
            metrics.WRITES.labels(verb="create", kind="Job").inc()
            log.info("warm-up %s/%s started: %s into claim %s", artifact.namespace, plan.job,
                     plan.image, plan.claim)
            self.events.post(body, "Normal", "CacheWarmUpStarted",
                             f"Job {plan.job} downloads {plan.image} into claim {plan.claim}")

    async def _mark(self, body: Obj, claim: Obj, plan: logic.WarmUpPlan,
                    live: dict[Ref, Obj], why: str) -> None:
        """Record on the claim that it holds the model of the image (a merge patch of one
        annotation: nothing a pod mounting it sees)."""
        meta = claim["metadata"]
        patch = {"metadata": {"annotations": {logic.warm_key(plan.image): plan.image}}}
        try:
            patched = await self.kube.patch(claim, patch)
        except ApiError as exc:
            # The Job or the servers still say so: recorded at the next reconcile.
            log.warning("could not mark claim %s/%s warm: %s", meta["namespace"],
                        meta["name"], exc)
            return
        self._marked.add((str(meta["namespace"]), str(meta.get("uid")), plan.image))
        metrics.WRITES.labels(verb="patch", kind="PersistentVolumeClaim").inc()
        self.view.note_written(patched)
        live[("PersistentVolumeClaim", plan.claim)] = slim(patched)
        self.events.post(body, "Normal", "CacheWarm",
                         f"model cache {plan.claim} holds {plan.image}: {why}")

    async def _failure(self, body: Obj, job: Mapping[str, Any], plan: logic.WarmUpPlan,
                       reason: str | None, message: str | None) -> str | None:
        """The Job's message with the end of its last failed pod's log (read once per Job),
        and a Warning Event, once."""
        uid = str(job["metadata"].get("uid"))
        if uid not in self._failures:
            tail: str | None = None
            try:
                pods = await self.kube.list("v1", "Pod", str(job["metadata"]["namespace"]),
                                            f"job-name={plan.job}")
                tail = _last_words(pods)
            except ApiError as exc:
                log.warning("could not read the pods of Job %s: %s", plan.job, exc)
            self._failures[uid] = tail
            self.events.post(body, "Warning", Reason.cache_warm_up_failed.value,
                             f"Job {plan.job} failed ({reason or 'Failed'}): "
                             f"{tail or message or ''}".rstrip(": "))
        tail = self._failures[uid]
        return "; ".join(p for p in (message, tail) if p) or None


async def ensure_all(applier: Applier, warmups: WarmUps | None, body: Obj, artifact: Artifact,
                     rendered: Rendered, live: dict[Ref, Obj], obs: Observed) -> Rendered:
    """Apply what is rendered: the claims first (they come first anyway; a warm-up Job is
    owned by its claim), then the warm-ups, which may hold groups back, then the rest. The
    rendering as applied: the groups waiting for their cache left out."""
    for obj in rendered.of_kind("PersistentVolumeClaim"):
        await applier.ensure(body, obj, live, obs)
    if warmups is not None:
        rendered = await warmups.hold(body, artifact, rendered, live, obs)
    for obj in rendered.objects:
        if obj["kind"] != "PersistentVolumeClaim":
            await applier.ensure(body, obj, live, obs)
    return rendered


def _last_words(pods: list[Obj]) -> str | None:
    """The termination message of the warm-up container of the newest failed pod: the end of
    its log (terminationMessagePolicy FallbackToLogsOnError), cut short."""
    ended = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if cs.get("name") == logic.CONTAINER and terminated.get("message"):
                ended.append((str(terminated.get("finishedAt") or ""),
                              str(terminated["message"])))
    if not ended:
        return None
    lines = [line.strip() for line in max(ended)[1].splitlines() if line.strip()]
    text = " / ".join(lines[-FAILURE_LINES:])
    return text if len(text) <= FAILURE_CHARS else "..." + text[-FAILURE_CHARS:]
