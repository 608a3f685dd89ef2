"""Image builds of a reconcile: create the engine object a container's current source needs,
once, and read how far it got (logic/builds.py holds the what; this the I/O).

Level-based: each reconcile looks at the spec, the stored status and the engine objects (one
watch by label, like the opted-in Secrets), and creates the BuildRun or Job of a container's
current source digest only when none exists and no image for that digest is known. Names
come from the digest, so a second create (another replica, a restart, a watch that lags) is
a 409, never a second build. The image a build produced is kept in status.builds: what the
Deployment runs survives the engine object's deletion, and a locked artifact's images never
change.

The engine is chosen at start (`resolve_engine`). In auto mode on the Job fallback, the
operator asks again every `Settings.api_discovery_seconds` whether Shipwright's BuildRuns are
served (`take_up_shipwright`, app/context.py); once they are, new builds are BuildRuns
(`switch`), without a restart. The Jobs keep being watched: a build Job already started is
followed to its end and its result read (a run's name is the same in both engines, so no
BuildRun of that name is created beside it), a failed one stays the build of its source
until a rebuild request, and a container whose current source was built keeps its image
(status.builds). Only switching to Shipwright is noticed: removing its CRDs takes a restart,
like the other optional APIs (controller/apis.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import Lifecycle
from artifact_operator.api.status import (
    ArtifactStatus,
    BuildStatus,
    ContainerBuild,
    ContainerBuildInfo,
    Reason,
)
from artifact_operator.controller.build_gc import BuildCollector
from artifact_operator.controller.view import slim
from artifact_operator.kube.client import Kube
from artifact_operator.kube.events import EventRecorder, now
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic import build_objects
from artifact_operator.logic import builds as logic
from artifact_operator.settings import BuildEngine, Settings

log = logging.getLogger(__name__)

Key = tuple[str, str]
Obj = dict[str, Any]

# How long a reconcile waits for the first list of the engine's objects. Past it (the engine
# is not installed, or RBAC refuses the list) the artifact says so, and is reconciled again
# once the list succeeds: a reconcile never hangs on it.
SYNC_WAIT_SECONDS = 10.0


@dataclass
class BuildFacts:
    """What the builds of one artifact mean for its rendering and status."""

    # (group, container) -> repo@sha256:... for containers whose image is built.
    images: dict[tuple[str, str], str] = field(default_factory=dict)
    statuses: list[ContainerBuild] = field(default_factory=list)
    # Groups waiting for a build: why (ImageNotBuilt, SourceUnresolved, Building, BuildFailed)
    # and a sentence per container.
    held: dict[str, list[tuple[Reason, str]]] = field(default_factory=dict)

    def key(self) -> tuple[tuple[tuple[str, str], str], ...]:
        return tuple(sorted(self.images.items()))


async def resolve_engine(kube: Kube, wanted: BuildEngine) -> BuildEngine:
    """auto: Shipwright when the cluster serves its v1beta1 BuildRuns, else the Job."""
    if wanted != BuildEngine.auto:
        return wanted
    served = await kube.serves(logic.SHIPWRIGHT_API, "buildruns")
    return BuildEngine.shipwright if served else BuildEngine.job


class Builds:
    def __init__(self, kube: Kube, settings: Settings, events: EventRecorder,
                 engine: BuildEngine, namespaces: list[str] | None,
                 enqueue: Callable[[Key], None],
                 active: Callable[[], bool] = lambda: True,
                 earlier: Iterable[BuildEngine] = ()) -> None:
        """`earlier`: engines whose runs may still be in flight, followed to their end but
        never started anew (auto mode starting on Shipwright: Jobs from before a restart)."""
        assert engine != BuildEngine.auto, "resolve_engine first"
        self.kube = kube
        self.settings = settings
        self.events = events
        self.engine: BuildEngine = engine  # what new builds run on
        self.enqueue = enqueue
        self.active = active
        self.build_namespace = settings.build_namespace
        self.namespaces = [self.build_namespace] if self.build_namespace else namespaces
        # Each engine's objects: the one chosen at start, and Shipwright's once it is
        # switched to (then the Jobs still are, for the builds started before).
        self.watches: dict[BuildEngine, ListWatch] = {}
        self.collectors: dict[BuildEngine, BuildCollector] = {}
        self.watch = self._follow(engine)  # the current engine's
        for other in earlier:
            if other != engine:
                self._follow(other)
        self._later: list[asyncio.Task[None]] = []
        # Runs this process created that the watch may not show yet: not created twice.
        self._created: set[Key] = set()
        # Which artifact each run belongs to, to wake it when the run goes too.
        self._owners: dict[Key, Key] = {}
        self.sync_wait = SYNC_WAIT_SECONDS
        # Build ends already told by an Event: (namespace, run, status).
        self._ended: set[tuple[str, str, str]] = set()

    def _follow(self, engine: BuildEngine) -> ListWatch:
        """Watch the objects of `engine` (and collect them in a build namespace)."""
        api, kind = ((logic.SHIPWRIGHT_API, "BuildRun") if engine == BuildEngine.shipwright
                     else ("batch/v1", "Job"))
        watch = ListWatch(self.kube, api, kind, logic.build_selector(), self.namespaces,
                          slim, self._changed)
        self.watches[engine] = watch
        if self.build_namespace:
            self.collectors[engine] = BuildCollector(self.kube, watch, self.active,
                                                     self.settings.resync_seconds)
        return watch

    async def run(self) -> None:
        try:
            await asyncio.gather(*(self._run(engine) for engine in list(self.watches)))
        finally:
            for task in self._later:
                task.cancel()

    async def _run(self, engine: BuildEngine) -> None:
        collector = self.collectors.get(engine)
        await asyncio.gather(self.watches[engine].run(),
                             *([collector.run()] if collector is not None else []))

    async def take_up_shipwright(self) -> bool:
        """Auto mode on the Job fallback: whether Shipwright's BuildRuns are served now; if
        so, new builds are BuildRuns from now on (True)."""
        if not await self.kube.serves(logic.SHIPWRIGHT_API, "buildruns"):
            return False
        await self.switch(BuildEngine.shipwright)
        return True

    async def switch(self, engine: BuildEngine, timeout: float = 60.0) -> None:
        """New builds on `engine`, once its objects are listed (a reconcile must never judge
        "no run yet" before). The earlier engine's objects stay watched: its runs are
        followed to their end (module docstring). Within `run`."""
        if engine == self.engine:
            return
        watch = self.watches.get(engine)
        if watch is None:  # else a first try timed out: its watch runs already
            watch = self._follow(engine)
            self._later.append(asyncio.get_running_loop().create_task(self._run(engine)))
        await asyncio.wait_for(watch.synced.wait(), timeout)
        before, self.engine, self.watch = self.engine, engine, watch
        log.info("image builds: the %s engine is served now: new builds use it; %s builds "
                 "already started are followed to their end", engine, before)

    def artifact_gone(self, key: Key) -> None:
        """Builds in the build namespace go with their artifact (controller/build_gc.py)."""
        for collector in self.collectors.values():
            collector.artifact_gone(key)

    def _find(self, namespace: str, name: str) -> tuple[BuildEngine, Obj] | None:
        """The engine object of a run, and its engine: the current engine's, else one an
        earlier engine started (a Job from before the switch to Shipwright)."""
        for engine in (self.engine, *(e for e in self.watches if e != self.engine)):
            obj = self.watches[engine].get(namespace, name)
            if obj is not None:
                return engine, obj
        return None

    def _plans(self, artifact: Artifact) -> list[tuple[BuildEngine, logic.BuildPlan]]:
        """Each container's plan, with the engine that builds it: the current one, or the
        earlier one whose run of that name exists (judged as that engine judges it)."""
        current = logic.plan_builds(artifact, self.settings, self.engine)
        out: list[tuple[BuildEngine, logic.BuildPlan]] = []
        for index, plan in enumerate(current):
            found = self._find(plan.namespace, plan.run)
            if found is None or found[0] == self.engine:
                out.append((self.engine, plan))
            else:
                out.append((found[0], logic.plan_builds(artifact, self.settings,
                                                        found[0])[index]))
        return out

    def _changed(self, namespace: str, name: str) -> None:
        found = self._find(namespace, name)
        obj = found[1] if found is not None else None
        if obj is not None:
            labels = obj["metadata"].get("labels") or {}
            artifact = labels.get(naming.LABEL_ARTIFACT)
            if artifact:
                # In a build namespace, the artifact's namespace is a label.
                self._owners[(namespace, name)] = (
                    labels.get(logic.LABEL_ARTIFACT_NAMESPACE, namespace), artifact)
        owner = self._owners.get((namespace, name))
        if obj is None:
            self._owners.pop((namespace, name), None)
            self._created.discard((namespace, name))
        if owner:
            self.enqueue(owner)

    async def observe(self, body: Mapping[str, Any], artifact: Artifact,
                      stored: ArtifactStatus) -> BuildFacts:
        facts = BuildFacts()
        # Never judge "no run yet" before the first list of every engine's objects.
        key = (artifact.namespace, artifact.name)
        if not all([await watch.wait_synced(key, self.sync_wait, self.enqueue)
                    for watch in list(self.watches.values())]):
            what = "BuildRuns" if self.engine == BuildEngine.shipwright else "build Jobs"
            for plan in logic.plan_builds(artifact, self.settings, self.engine):
                message = (f"group {plan.group}: container {plan.container}: the {what} "
                           f"cannot be listed yet (is the {self.engine} engine installed, and "
                           "may the operator list them? see the operator's log)")
                facts.held.setdefault(plan.group, []).append((Reason.image_not_built, message))
            return facts
        previous = {(b.group, b.container): b for b in stored.builds}
        locked = artifact.spec.lifecycle == Lifecycle.locked
        uid = artifact.metadata.uid
        owner = naming.owner_reference(artifact.api_version, artifact.kind, artifact.name,
                                       uid) if uid else None
        for engine, plan in self._plans(artifact):
            where = (plan.group, plan.container)
            before = previous.get(where)
            if before is not None and before.image and \
                    (locked or before.source_digest == plan.digest):
                # Built already: a locked artifact keeps its images whatever else changes.
                facts.images[where] = before.image
                facts.statuses.append(before)
                continue
            if plan.unresolved is not None:
                reason = (Reason.image_not_built if "output repository" in plan.unresolved
                          else Reason.source_unresolved)
                facts.statuses.append(ContainerBuild(
                    group=plan.group, container=plan.container, source_digest=plan.digest,
                    message=plan.unresolved))
                facts.held.setdefault(plan.group, []).append(
                    (reason, f"group {plan.group}: container {plan.container}: "
                     f"{plan.unresolved}"))
                continue
            state, created = await self._state(body, artifact, plan, owner)
            image = logic.image_of(plan, state.digest) if state.digest else None
            self._note_end(body, plan, before, state, image)
            facts.statuses.append(ContainerBuild(
                group=plan.group, container=plan.container, source_digest=plan.digest,
                build=ContainerBuildInfo(artifact_image_build_id=plan.run,
                                         status=state.status, created_at=created),
                build_namespace=plan.namespace if plan.namespace != artifact.namespace
                else None, image=image, message=state.message))
            if image is not None:
                facts.images[where] = image
                continue
            facts.held.setdefault(plan.group, []).append(
                self._why(engine, plan, state, artifact.namespace))
        return facts

    def _note_end(self, body: Mapping[str, Any], plan: logic.BuildPlan,
                  before: ContainerBuild | None, state: logic.BuildState,
                  image: str | None) -> None:
        """An Event when a build ends, once: not when the stored status already says so,
        nor again while that status waits to be written (a settling Deployment)."""
        known = before.build if before is not None and before.build is not None and \
            before.build.artifact_image_build_id == plan.run else None
        ended = (str(body.get("metadata", {}).get("namespace")), plan.run, str(state.status))
        if (known is not None and known.status == state.status) or ended in self._ended:
            return
        if state.status in (BuildStatus.built, BuildStatus.failed, BuildStatus.cancelled):
            self._ended.add(ended)
        where = f"group {plan.group} container {plan.container}"
        if state.status == BuildStatus.built:
            self.events.post(body, "Normal", "BuildSucceeded",
                             f"build {plan.run} of {where}: {image}")
        elif state.status in (BuildStatus.failed, BuildStatus.cancelled):
            self.events.post(body, "Warning", "BuildFailed",
                             f"build {plan.run} of {where} {state.status}: "
                             f"{state.message or ''}".rstrip(": "))

    def _why(self, engine: BuildEngine, plan: logic.BuildPlan, state: logic.BuildState,
             namespace: str) -> tuple[Reason, str]:
        head = f"group {plan.group}: container {plan.container}: build {plan.run}"
        hint = logic.logs_hint(engine, plan, namespace)
        if state.status in (BuildStatus.failed, BuildStatus.cancelled):
            detail = f": {state.message}" if state.message else ""
            return (Reason.build_failed,
                    f"{head} {state.status}{detail} ({hint}; a new build: kubectl artifact "
                    "build NAME, or change the source)")
        return Reason.building, f"{head} {state.status} ({hint})"

    async def _state(self, body: Mapping[str, Any], artifact: Artifact,
                     plan: logic.BuildPlan, owner: Obj | None
                     ) -> tuple[logic.BuildState, str]:
        namespace = plan.namespace
        found = self._find(namespace, plan.run)
        if found is None:
            # Nor one this process created that no watch shows yet (of either engine).
            if (namespace, plan.run) not in self._created:
                await self._create(body, artifact, plan, owner)
            return logic.BuildState(BuildStatus.pending), now()
        engine, run = found
        created = str(run["metadata"].get("creationTimestamp") or now())
        if engine == BuildEngine.shipwright:
            return logic.buildrun_state(run), created
        message, pod_found = await self._termination_message(namespace, run)
        return logic.job_state(run, message, pod_found), created

    async def _create(self, body: Mapping[str, Any], artifact: Artifact,
                      plan: logic.BuildPlan, owner: Obj | None) -> None:
        render = (build_objects.render_buildrun if self.engine == BuildEngine.shipwright
                  else build_objects.render_build_job)
        obj = render(artifact, plan, self.settings, owner)
        created = await self.kube.create(obj, exists_ok=True)
        self._created.add((plan.namespace, plan.run))
        if created is not None:
            metrics.WRITES.labels(verb="create", kind=obj["kind"]).inc()
            log.info("build %s/%s started for group %s container %s (%s)", plan.namespace,
                     plan.run, plan.group, plan.container, self.engine)
            self.events.post(body, "Normal", "BuildStarted",
                             f"{obj['kind']} {plan.run} builds group {plan.group} container "
                             f"{plan.container}")

    async def _termination_message(self, namespace: str, job: Mapping[str, Any]
                                   ) -> tuple[str | None, bool]:
        """(the digest the builder wrote, from the Job's pod; whether a pod was found), read
        only once the Job is complete (then the status keeps the image, and this is not
        asked again)."""
        complete = any(c.get("type") == "Complete" and c.get("status") == "True"
                       for c in (job.get("status") or {}).get("conditions") or [])
        if not complete:
            return None, True
        name = job["metadata"]["name"]
        pods = await self.kube.list("v1", "Pod", namespace, f"job-name={name}")
        for pod in pods:
            message = logic.termination_message(pod)
            if message:
                return message, True
        return None, bool(pods)
