"""Artifact status from what the cluster holds. Pure: the caller passes the clock in.

`compute_status` reads the live Deployments and claims of an artifact and returns the status
to store, as an `ArtifactStatus` model (the CRD's status schema comes from the same model);
`status_patch` says what storing it would change (None for nothing), so a reconcile with
nothing new writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.rules import Violation
from artifact_operator.api.runtime import RuntimeOverride
from artifact_operator.api.status import (
    ArtifactStatus,
    AutoscalerStatus,
    Condition,
    ContainerBuild,
    GroupStatus,
    Phase,
    Reason,
)
from artifact_operator.logic.approval import Grant
from artifact_operator.logic.autoscaling import scale_of
from artifact_operator.logic.claim_status import claim_problems, storage_status
from artifact_operator.logic.credentials import token_conflict
from artifact_operator.logic.pods import PodFacts
from artifact_operator.logic.reach import reach_status
from artifact_operator.logic.render import Rendered, endpoint
from artifact_operator.logic.rollout import deployment_state
from artifact_operator.settings import Settings

Obj = dict[str, Any]


@dataclass
class Observed:
    """What a reconcile found and did, as input to the status."""

    rendered: Rendered
    live: Mapping[tuple[str, str], Obj]  # (kind, name) -> live object
    # Problems that make the artifact Degraded: the API server refused an object, a claim
    # cannot shrink. Each is a full sentence naming the object.
    errors: list[tuple[Reason, str]] = field(default_factory=list)
    # Problems that keep it from Ready without a rollout being wrong (missing Secret keys).
    blockers: list[tuple[Reason, str]] = field(default_factory=list)
    # Image builds: per container, and why a group waiting for one waits (reason, sentence).
    builds: list[ContainerBuild] = field(default_factory=list)
    build_held: Mapping[str, list[tuple[Reason, str]]] = field(default_factory=dict)
    # Of the groups whose pods were read this time (logic/pods.py); the others keep the
    # restart count stored before.
    pods: dict[str, PodFacts] = field(default_factory=dict)


@dataclass
class _Group:
    name: str
    desired: int
    ready: int
    updated: int
    state: Reason  # rollout_in_progress, rollout_complete, deadline, replicas_unavailable, ready
    deployment: str | None
    service: str | None
    endpoint: str | None
    restarts: int = 0
    problem: str | None = None  # from the pods: why one is not ready
    autoscaler: AutoscalerStatus | None = None


def _groups(artifact: Artifact, obs: Observed, settings: Settings,
            previous: ArtifactStatus) -> list[_Group]:
    out = []
    before = {g.name: g for g in previous.container_groups}
    for group in artifact.spec.container_groups:
        name = naming.group_object_name(artifact.name, group.name)
        rendered_names = {(o["kind"], o["metadata"]["name"]) for o in obs.rendered.objects}
        has_service = ("Service", name) in rendered_names
        runtime = (artifact.spec.runtime or {}).get(group.name) or RuntimeOverride()
        wanted = runtime.replicas if runtime.replicas is not None else 1
        held = _held_reason(obs, group.name)
        if held is not None:
            out.append(_Group(group.name, wanted, 0, 0, held, None, None, None))
            continue
        live = obs.live.get(("Deployment", name))
        desired, ready, updated, state = deployment_state(live)
        autoscaler = _autoscaler(runtime, obs.live.get(("HorizontalPodAutoscaler", name)))
        if autoscaler is not None:
            wanted = autoscaler.desired_replicas or autoscaler.min_replicas
        if live is None:
            desired = wanted  # not created yet (or refused): still count what is wanted
        decision = obs.rendered.held.get(group.name)
        if decision is not None:
            # Not applied: what runs (if anything) is reported as it is, under the reason.
            out.append(_Group(group.name, desired, ready, updated,
                              Reason.approval_stale if decision.grant == Grant.stale
                              else Reason.elevated_not_approved,
                              name if live is not None else None, None, None))
            continue
        warming = obs.rendered.warming.get(group.name)
        if warming is not None:
            # Not applied until its model cache is warm: what runs is reported as it is.
            out.append(_Group(group.name, desired, ready, updated, warming[0],
                              name if live is not None else None, None, None))
            continue
        seen = obs.pods.get(group.name)
        stored = before.get(group.name)
        out.append(_Group(group.name, desired, ready, updated, state, name,
                          name if has_service else None,
                          endpoint(artifact, group, settings) if has_service else None,
                          restarts=seen.restarts if seen else
                          (stored.restarts or 0) if stored else 0,
                          problem=seen.problem if seen else None, autoscaler=autoscaler))
    return out


def _autoscaler(runtime: RuntimeOverride, live: Obj | None) -> AutoscalerStatus | None:
    scaling = runtime.autoscaling
    if scaling is None:
        return None
    scale = scale_of(live)
    return AutoscalerStatus(min_replicas=scaling.min_replicas,
                            max_replicas=scaling.max_replicas,
                            current_replicas=scale.current if scale else 0,
                            desired_replicas=scale.desired if scale else 0,
                            message=scale.problem if scale else None)


def _held_reason(obs: Observed, group: str) -> Reason | None:
    rendered = obs.rendered
    if group in rendered.waiting_for_image:
        why = obs.build_held.get(group)
        return why[0][0] if why else Reason.image_not_built
    if group in rendered.secrets_not_usable:
        return Reason.secret_not_usable
    if group in rendered.token_held:
        return Reason.token_secret_conflict
    return None


def _condition(type_: str, ok: bool, reason: Reason, message: str, generation: int | None,
               previous: ArtifactStatus, now: str) -> Condition:
    status: Literal["True", "False"] = "True" if ok else "False"
    before = previous.condition(type_)
    since = before.last_transition_time if before and before.status == status else None
    return Condition(type=type_, status=status, reason=reason.value, message=message or None,
                     last_transition_time=since or now, observed_generation=generation)


def invalid_status(body: Mapping[str, Any], violations: Sequence[Violation],
                   now: str) -> ArtifactStatus:
    """Failed, with every violation in the message; the rest of the status stays as it was,
    because nothing running was touched."""
    previous = ArtifactStatus.from_wire(body.get("status"))
    generation = body.get("metadata", {}).get("generation")
    message = "; ".join(str(v) for v in violations)
    conditions = [
        _condition("Ready", False, Reason.invalid_spec, message, generation, previous, now),
        _condition("Progressing", False, Reason.invalid_spec, "the spec is invalid; nothing "
                   "was changed", generation, previous, now),
        _condition("Degraded", True, Reason.invalid_spec, message, generation, previous, now),
    ]
    return previous.model_copy(update={"observed_generation": generation,
                                       "phase": Phase.failed.value, "conditions": conditions})


def frozen_status(body: Mapping[str, Any], previous: ArtifactStatus,
                  now: str) -> ArtifactStatus:
    """A locked artifact whose spec changed: Degraded, and nothing rolled out; what is known
    about the running children stays as it was."""
    generation = body.get("metadata", {}).get("generation")
    message = ("the spec differs from the spec this artifact was locked with; nothing was "
               "rolled out and the running version is kept: restore the locked spec, or "
               "clone it into a new draft (kubectl artifact clone)")
    conditions = [
        _condition("Ready", False, Reason.locked_spec_changed, message, generation, previous,
                   now),
        _condition("Progressing", False, Reason.locked_spec_changed, "nothing is rolled out",
                   generation, previous, now),
        _condition("Degraded", True, Reason.locked_spec_changed, message, generation, previous,
                   now),
    ]
    return previous.model_copy(update={"observed_generation": generation,
                                       "phase": Phase.degraded.value, "conditions": conditions})


def compute_status(artifact: Artifact, obs: Observed, settings: Settings,
                   previous: ArtifactStatus | None, now: str) -> ArtifactStatus:
    previous = previous or ArtifactStatus()
    generation = artifact.metadata.generation
    groups = _groups(artifact, obs, settings, previous)

    waiting: list[tuple[Reason, str]] = []
    for g, c in obs.rendered.waiting_for_image.items():
        waiting += obs.build_held.get(g) or [
            (Reason.image_not_built,
             f"group {g}: container {c} has no imageUri yet (waiting for an image build)")]
    failed_builds = [w for w in waiting if w[0] == Reason.build_failed]
    waiting = [w for w in waiting if w[0] != Reason.build_failed]
    rolling = [g for g in groups if g.state == Reason.rollout_in_progress]
    deadline = [g for g in groups if g.state == Reason.progress_deadline_exceeded]
    unavailable = [g for g in groups if g.state == Reason.replicas_unavailable]
    claim_degraded, claim_waiting = claim_problems(artifact, obs.rendered, obs.live)

    degraded: list[tuple[Reason, str]] = list(obs.errors)
    # A failed or cancelled build needs someone to act (a new build, another source).
    degraded += failed_builds
    # A stale approval is Degraded: the spec asks for something that does not run, and what
    # runs is no longer what the spec says. Never approved is only not Ready.
    degraded += [(Reason.approval_stale, d.message) for d in obs.rendered.held.values()
                 if d.grant == Grant.stale]
    if obs.rendered.token_conflict:
        degraded.append((Reason.token_secret_conflict,
                         f"{token_conflict(obs.rendered.token_conflict)}: group(s) "
                         f"{', '.join(obs.rendered.token_held)}"))
    degraded += [(Reason.progress_deadline_exceeded,
                  _why(f"group {g.name}: rollout exceeded its progress deadline", g))
                 for g in deadline]
    degraded += [(Reason.replicas_unavailable,
                  _why(f"group {g.name}: {g.ready}/{g.desired} replicas ready", g))
                 for g in unavailable]
    degraded += claim_degraded
    # A failed warm-up needs someone to act (its log says why; deleting the Job retries).
    for reason, message in obs.rendered.warming.values():
        (degraded if reason == Reason.cache_warm_up_failed else waiting).append((reason, message))

    not_ready: list[tuple[Reason, str]] = []
    for reason in dict.fromkeys(r for r, _ in waiting):
        not_ready.append((reason, "; ".join(m for r, m in waiting if r == reason)))
    not_ready += [(Reason.secret_not_usable, "; ".join(messages))
                  for messages in obs.rendered.secrets_not_usable.values()]
    not_ready += list(obs.blockers)
    not_ready += claim_waiting
    not_ready += [(Reason.elevated_not_approved, d.message)
                  for d in obs.rendered.held.values() if d.grant != Grant.stale]
    if rolling:
        not_ready.append((Reason.rollout_in_progress, "rollout in progress: " + ", ".join(
            f"{g.name} {g.updated}/{g.desired} updated, {g.ready}/{g.desired} ready"
            for g in rolling)))

    problems = degraded + not_ready
    ready = not problems
    conditions = [
        _condition("Ready", ready, problems[0][0] if problems else Reason.ready,
                   "; ".join(m for _, m in problems) if problems else "all container groups are "
                   "ready", generation, previous, now),
        _condition("Progressing", bool(rolling),
                   Reason.rollout_in_progress if rolling else Reason.rollout_complete,
                   not_ready[-1][1] if rolling else "no rollout in progress", generation,
                   previous, now),
        _condition("Degraded", bool(degraded), degraded[0][0] if degraded else Reason.as_expected,
                   "; ".join(m for _, m in degraded), generation, previous, now),
    ]
    # Exposed, Monitored: never part of Ready (logic/exposure.py, logic/monitoring.py).
    extra, external = reach_status(artifact, obs.rendered.held_groups, obs.rendered.unserved,
                                   obs.live)
    conditions += [_condition(*c, generation, previous, now) for c in extra]
    if degraded:
        phase = Phase.degraded
    elif rolling:
        phase = Phase.progressing
    elif problems:
        phase = Phase.pending
    else:
        phase = Phase.ready
    return ArtifactStatus(
        observed_generation=generation,
        phase=phase,
        conditions=conditions,
        ready=f"{sum(g.ready for g in groups)}/{sum(g.desired for g in groups)}",
        container_groups=[_group_status(g, external.get(g.name)) for g in groups],
        endpoint=next((g.endpoint for g in groups if g.endpoint), None),
        external_endpoint=next((external[g.name] for g in groups if g.name in external), None),
        storage=storage_status(artifact, obs.rendered, obs.live),
        builds=list(obs.builds),
        version=previous.version,
    )


def _why(message: str, g: _Group) -> str:
    return f"{message} ({g.problem})" if g.problem else message


def _group_status(g: _Group, external: str | None = None) -> GroupStatus:
    return GroupStatus(name=g.name, replicas=g.desired, ready_replicas=g.ready,
                       external_endpoint=external,
                       updated_replicas=g.updated, restarts=g.restarts or None,
                       autoscaler=g.autoscaler,
                       deployment=g.deployment, service=g.service, endpoint=g.endpoint)


# The wire names of the status fields: the keys a status patch may set or remove.
_OWN_KEYS = tuple(f.alias or name for name, f in ArtifactStatus.model_fields.items())


def status_patch(current: Mapping[str, Any] | None, desired: ArtifactStatus) -> Obj | None:
    """The merge patch that turns the stored status `current` into `desired`, or None when
    they are equal (then nothing is written)."""
    current = current or {}
    want = desired.dump()
    patch: Obj = {key: want.get(key) for key in _OWN_KEYS if current.get(key) != want.get(key)}
    return patch or None
