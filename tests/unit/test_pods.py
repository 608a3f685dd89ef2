"""What a group's pods say (logic/pods.py), and how it reaches the status (SPEC 4)."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.logic import pods
from artifact_operator.logic.pods import PodFacts

PROBE_404 = "Readiness probe failed: HTTP probe failed with statuscode: 404"


def pod(name: str, *, phase: str = "Running", ready: bool = True, restarts: int = 0,
        waiting: dict[str, Any] | None = None, last: dict[str, Any] | None = None,
        unschedulable: str | None = None, terminating: bool = False) -> dict[str, Any]:
    state = {"waiting": waiting} if waiting else {"running": {"startedAt": "t"}}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False",
                           "reason": "Unschedulable", "message": unschedulable})
    meta: dict[str, Any] = {"name": name}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {
        "phase": phase, "conditions": conditions,
        "containerStatuses": [{"name": "app", "restartCount": restarts, "state": state,
                               **({"lastState": {"terminated": last}} if last else {})}]}}


def event(about: str, reason: str, message: str, when: str) -> dict[str, Any]:
    return {"involvedObject": {"kind": "Pod", "name": about}, "reason": reason,
            "type": "Warning", "message": message, "lastTimestamp": when}


def deployment(replicas: int = 1, ready: int = 0) -> dict[str, Any]:
    return {"status": {"replicas": replicas, "readyReplicas": ready}}


@pytest.mark.parametrize(("live", "stored", "stuck", "read"), [
    (None, 0, True, False),                       # no Deployment: nothing to read
    (deployment(replicas=0), 0, True, False),     # no pods yet
    (deployment(ready=0), 0, True, True),         # Degraded: say why
    (deployment(ready=1), 1, False, False),       # steady: no reads
    (deployment(ready=0), 1, False, True),        # a pod went unready (a restart?)
    (deployment(ready=1), 0, False, True),        # and came back: count its restarts
    (deployment(ready=0), 0, False, False),       # pods that never got ready: not again
    (deployment(ready=0), None, False, False),    # first status: nothing to compare
])
def test_pods_are_read_only_when_the_deployment_cannot_say(
        live: dict[str, Any] | None, stored: int | None, stuck: bool, read: bool) -> None:
    assert pods.should_read(live, stored, stuck) is read


def test_restarts_are_summed_over_the_current_pods() -> None:
    found = [pod("a", restarts=2), pod("b", restarts=1), pod("old", restarts=7,
                                                              terminating=True)]
    assert pods.facts(found) == PodFacts(restarts=3, problem=None)


def test_a_failing_probe_is_quoted_from_the_kubelets_latest_event() -> None:
    found = [pod("web-1", ready=False), pod("web-2")]
    assert pods.unexplained(found) == ["web-1"]
    events = [event("web-1", "Unhealthy", "Readiness probe failed: connection refused",
                    "2026-01-01T00:00:01Z"),
              event("web-1", "Unhealthy", PROBE_404, "2026-01-01T00:00:09Z"),
              event("web-2", "Unhealthy", "not this pod's", "2026-01-01T00:00:10Z"),
              event("web-1", "Pulled", "not a warning", "2026-01-01T00:00:11Z")]
    assert pods.facts(found, events).problem == f"pod web-1: {PROBE_404}"


def test_a_container_that_cannot_start_is_quoted_from_the_pods_status() -> None:
    crash = pod("web-1", ready=False, restarts=4,
                waiting={"reason": "CrashLoopBackOff",
                         "message": "back-off 40s restarting failed container=app"},
                last={"reason": "Error", "exitCode": 3})
    assert pods.unexplained([crash]) == []  # its status says why: no Event read
    assert pods.facts([crash]) == PodFacts(restarts=4, problem=(
        "pod web-1: container app: CrashLoopBackOff: back-off 40s restarting failed "
        "container=app (last exit: Error, code 3)"))
    creating = pod("web-2", ready=False, waiting={"reason": "ContainerCreating"})
    assert pods.facts([creating]).problem is None


def test_an_unschedulable_pod_is_quoted_from_the_scheduler() -> None:
    pending = pod("nim-1", phase="Pending", ready=False,
                  unschedulable="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert pods.facts([pending]).problem == (
        "pod nim-1 is not scheduled: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")


def test_messages_are_one_bounded_line() -> None:
    found = [pod("web-1", ready=False)]
    long = "Liveness probe failed: " + "x\n" * 400
    problem = pods.facts(found, [event("web-1", "Unhealthy", long, "t")]).problem
    assert problem is not None and "\n" not in problem
    assert len(problem) == len("pod web-1: ") + pods.MAX_MESSAGE
    assert problem.endswith("...")
