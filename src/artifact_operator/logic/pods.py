"""What a group's pods say about it: container restarts, and why a pod is not ready, in the
kubelet's and the scheduler's own words. Pure: the controller reads the pods (and, for a pod
that runs but is not ready, its Events) and passes them in.

Pods are read only when a Deployment's status cannot explain itself (`should_read`): when its
rollout is stuck or its ready count moved. A steady artifact costs no pod reads, and neither
does one whose pods never start (nothing to count, and the Deployment says that already).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

# Waiting reasons of a container that is on its way, not stuck.
_ON_ITS_WAY = frozenset({"ContainerCreating", "PodInitializing"})
# What the kubelet reports of a running pod that is not ready (probe failures) or cannot
# start a container; the latest one is quoted.
_KUBELET_WARNINGS = frozenset({"Unhealthy", "BackOff", "Failed", "FailedMount",
                               "FailedCreatePodSandBox"})
MAX_MESSAGE = 300


@dataclass(frozen=True)
class PodFacts:
    """Of a group's current pods (not those on their way out)."""

    restarts: int = 0
    # Why one of them is not ready, naming the pod; None when all are, or nothing says why.
    problem: str | None = None


def should_read(deployment: Obj | None, stored_ready: int | None, stuck: bool) -> bool:
    """Read the pods of this Deployment's group now?

    `stuck`: its rollout exceeded its deadline or it has fewer ready replicas than wanted
    (Degraded), the moment a user needs the reason. Else only when the ready count differs
    from the one in the stored status (`stored_ready`, None if never stored) and some pod was
    ready on either side: a container restart makes its pod unready and ready again, so the
    count is read on the way back, while pods that never got ready are not read again on
    every update of their Deployment.
    """
    if deployment is None or not int(deployment.get("status", {}).get("replicas", 0)):
        return False
    if stuck:
        return True
    ready = int(deployment.get("status", {}).get("readyReplicas", 0))
    return stored_ready is not None and ready != stored_ready and max(ready, stored_ready) > 0


def current(pods: Iterable[Obj]) -> list[Obj]:
    return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]


def restarts(pods: Iterable[Obj]) -> int:
    return sum(int(c.get("restartCount", 0)) for p in current(pods)
               for c in _containers(p))


def unexplained(pods: Iterable[Obj]) -> list[str]:
    """Names of the pods that run but are not ready, with nothing in their status saying why:
    their Events hold the kubelet's probe failures."""
    return [p["metadata"]["name"] for p in current(pods)
            if p.get("status", {}).get("phase") == "Running" and not _ready(p)
            and _status_problem(p) is None]


def facts(pods: Sequence[Obj], events: Iterable[Obj] = ()) -> PodFacts:
    """`events`: those of the `unexplained` pods (any others are ignored)."""
    live = current(pods)
    problem = next((m for p in live if not _ready(p) and (m := _status_problem(p))), None)
    if problem is None:
        waiting = set(unexplained(live))
        latest = max((e for e in events if _about(e) in waiting
                      and e.get("reason") in _KUBELET_WARNINGS), key=_when, default=None)
        if latest is not None:
            problem = f"pod {_about(latest)}: {_clean(latest.get('message'))}"
    return PodFacts(restarts=restarts(live), problem=problem)


def _containers(pod: Obj) -> list[Obj]:
    status = pod.get("status", {})
    return list(status.get("initContainerStatuses") or []) + \
        list(status.get("containerStatuses") or [])


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def _status_problem(pod: Obj) -> str | None:
    """What the pod's own status says is wrong: not schedulable, a container that cannot
    start or keeps failing."""
    name = pod["metadata"]["name"]
    status = pod.get("status", {})
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            said = cond.get("message") or cond.get("reason")
            return f"pod {name} is not scheduled: {_clean(said)}"
    for container in _containers(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in _ON_ITS_WAY:
            said = waiting.get("reason", "Waiting")
            if waiting.get("message"):
                said += f": {waiting['message']}"
            last = (container.get("lastState") or {}).get("terminated")
            if last:
                said += (f" (last exit: {last.get('reason', 'Terminated')}, "
                         f"code {last.get('exitCode', '?')})")
            return f"pod {name}: container {container.get('name')}: {_clean(said)}"
    return None


def _about(event: Obj) -> str:
    return str(event.get("involvedObject", {}).get("name", ""))


def _when(event: Obj) -> str:
    # RFC 3339 in UTC: the strings order as the times do.
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or event.get("metadata", {}).get("creationTimestamp") or "")


def _clean(message: Any) -> str:
    """One line, bounded: kubelet messages may carry a probe's response body."""
    text = " ".join(str(message or "").split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
