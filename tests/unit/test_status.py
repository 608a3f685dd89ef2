"""Status from what the cluster holds (SPEC 2 and 4), table-driven over Deployment states."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.rules import Violation
from artifact_operator.api.status import ArtifactStatus, Reason
from artifact_operator.logic.pods import PodFacts
from artifact_operator.logic.render import render
from artifact_operator.logic.rollout import deployment_settling
from artifact_operator.logic.status import (
    Observed,
    compute_status,
    invalid_status,
    status_patch,
)
from artifact_operator.settings import Settings

from ..support.builders import parsed, primary, service_artifact

NOW = "2026-01-02T03:04:05Z"
EARLIER = "2026-01-01T00:00:00Z"
ENDPOINT = "http://web-api.team-a.svc.cluster.local:8080"


def artifact(generation: int = 2, image: str | None = "nginx:1.27") -> Artifact:
    """Group api of 2 replicas; without an image, its container waits for a build."""
    app = primary(image=image) if image else primary(image=None, imageBuildConfig={})
    return parsed(service_artifact("web", app=app, replicas=2, namespace="team-a", uid="u",
                                   generation=generation))


def deployment(*, generation: int = 3, observed: int = 3, replicas: int = 2,
               updated: int = 2, ready: int = 2, total: int | None = None,
               progressing: str | None = "NewReplicaSetAvailable") -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed, "replicas":
                              updated if total is None else total,
                              "updatedReplicas": updated, "readyReplicas": ready}
    if progressing:
        status["conditions"] = [{"type": "Progressing", "status":
                                 "False" if progressing == "ProgressDeadlineExceeded" else "True",
                                 "reason": progressing}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-api", "namespace": "team-a", "generation": generation},
            "spec": {"replicas": replicas}, "status": status}


def status_for(art: Artifact, live: dict[str, Any] | None,
               previous: dict[str, Any] | None = None) -> dict[str, Any]:
    rendered = render(art, Settings())
    obs = Observed(rendered=rendered, live={("Deployment", "web-api"): live} if live else {})
    return compute_status(art, obs, Settings(), ArtifactStatus.from_wire(previous), NOW).dump()


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


CASES = [
    # id, deployment, phase, Ready, Progressing, Degraded, ready column
    ("not-created-yet", None, "Progressing", ("False", "RolloutInProgress"),
     ("True", "RolloutInProgress"), ("False", "AsExpected"), "0/2"),
    ("not-observed-yet", deployment(observed=2, ready=2), "Progressing",
     ("False", "RolloutInProgress"), ("True", "RolloutInProgress"), ("False", "AsExpected"),
     "2/2"),
    ("rolling", deployment(updated=1, ready=1, total=3, progressing="ReplicaSetUpdated"),
     "Progressing", ("False", "RolloutInProgress"), ("True", "RolloutInProgress"),
     ("False", "AsExpected"), "1/2"),
    ("ready", deployment(), "Ready", ("True", "Ready"), ("False", "RolloutComplete"),
     ("False", "AsExpected"), "2/2"),
    ("deadline-exceeded", deployment(updated=1, ready=0, progressing="ProgressDeadlineExceeded"),
     "Degraded", ("False", "ProgressDeadlineExceeded"), ("False", "RolloutComplete"),
     ("True", "ProgressDeadlineExceeded"), "0/2"),
    ("replicas-unavailable", deployment(ready=1), "Degraded", ("False", "ReplicasUnavailable"),
     ("False", "RolloutComplete"), ("True", "ReplicasUnavailable"), "1/2"),
    ("scaled-to-zero", deployment(replicas=0, updated=0, ready=0, total=0), "Ready",
     ("True", "Ready"), ("False", "RolloutComplete"), ("False", "AsExpected"), "0/0"),
]


@pytest.mark.parametrize(("live", "phase", "ready", "progressing", "degraded", "column"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_status_from_the_deployment(live: dict[str, Any] | None, phase: str,
                                    ready: tuple[str, str], progressing: tuple[str, str],
                                    degraded: tuple[str, str], column: str) -> None:
    status = status_for(artifact(), live)
    assert status["phase"] == phase
    assert conditions(status) == {"Ready": ready, "Progressing": progressing,
                                  "Degraded": degraded}
    assert status["ready"] == column
    assert status["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in status["conditions"])
    assert all(c.get("message") != "" for c in status["conditions"]), "never an empty string"


def test_group_status_names_children_counts_and_endpoint() -> None:
    status = status_for(artifact(), deployment(updated=2, ready=1, total=2))
    assert status["endpoint"] == ENDPOINT
    assert status["containerGroups"] == [
        {"name": "api", "deployment": "web-api", "service": "web-api", "endpoint": ENDPOINT,
         "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2}]


def test_image_not_built_names_the_container() -> None:
    status = status_for(artifact(image=None), None)
    assert status["phase"] == "Pending"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ImageNotBuilt")
    assert "container app" in ready["message"] and "group api" in ready["message"]
    assert status["containerGroups"] == [
        {"name": "api", "replicas": 2, "readyReplicas": 0, "updatedReplicas": 0}]
    assert "endpoint" not in status


def test_apply_errors_make_it_degraded_with_the_servers_message() -> None:
    art = artifact()
    obs = Observed(rendered=render(art, Settings()), live={},
                   errors=[(Reason.apply_failed, "Deployment web-api was rejected: boom")])
    status = compute_status(art, obs, Settings(), None, NOW).dump()
    assert status["phase"] == "Degraded"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ApplyFailed")
    assert "boom" in degraded["message"]


def test_invalid_spec_fails_with_every_violation_and_keeps_the_rest() -> None:
    group = {"name": "api", "deployment": "web-api", "replicas": 2, "readyReplicas": 2,
             "updatedReplicas": 2}
    previous = {"observedGeneration": 1, "phase": "Ready", "ready": "2/2",
                "endpoint": ENDPOINT, "containerGroups": [group]}
    body = {"metadata": {"name": "web", "namespace": "team-a", "generation": 2},
            "status": previous}
    violations = [Violation("spec.containerGroups[0].containers[1].primary",
                            "at most one primary container per group"),
                  Violation("spec.containerGroups[1].containers[0].port",
                            "only the primary container may set port")]
    status = invalid_status(body, violations, NOW).dump()
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 2
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    for v in violations:
        assert f"{v.path}: {v.message}" in ready["message"] or str(v) in ready["message"]
    # Nothing running was touched, so what is known about it stays.
    assert (status["ready"], status["endpoint"]) == ("2/2", ENDPOINT)
    assert status["containerGroups"] == [group]


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    first = status_for(artifact(), deployment(updated=1, ready=1, total=3,
                                              progressing="ReplicaSetUpdated"))
    previous = {**first, "conditions": [{**c, "lastTransitionTime": EARLIER}
                                        for c in first["conditions"]]}
    still = status_for(artifact(), deployment(updated=2, ready=1, total=3,
                                              progressing="ReplicaSetUpdated"), previous)
    assert {c["lastTransitionTime"] for c in still["conditions"]} == {EARLIER}
    done = status_for(artifact(), deployment(), previous)
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times == {"Ready": NOW, "Progressing": NOW, "Degraded": EARLIER}


def test_status_patch_is_none_when_nothing_changed() -> None:
    status = status_for(artifact(), deployment())
    model = ArtifactStatus.from_wire(status)
    assert status_patch(status, model) is None
    assert status_patch({**status, "phase": "Progressing"}, model) == {"phase": "Ready"}
    assert status_patch(None, model) == status
    # A key the desired status no longer has is removed (null in a merge patch).
    assert status_patch({**status, "version": 3}, model) == {"version": None}


def test_a_status_this_version_cannot_read_keeps_only_its_version() -> None:
    assert ArtifactStatus.from_wire({"version": 4, "phase": "Exploded", "extra": 1}) == \
        ArtifactStatus(version=4)
    assert ArtifactStatus.from_wire(None) == ArtifactStatus()


@pytest.mark.parametrize(("live", "settling"), [
    (deployment(observed=2), True),                           # controller has not seen it
    (deployment(updated=0, ready=0, total=0), True),          # no pod of the new template yet
    (deployment(updated=1, ready=0), False),                  # pods exist: a real rollout
    (deployment(replicas=0, updated=0, ready=0, total=0), False),
    (deployment(), False),
])
def test_deployment_settling(live: dict[str, Any], settling: bool) -> None:
    assert deployment_settling(live) is settling


def test_a_degraded_group_says_why_in_the_kubelets_words_and_counts_restarts() -> None:
    art = artifact()
    probe = "pod web-api-1: Readiness probe failed: HTTP probe failed with statuscode: 404"
    obs = Observed(rendered=render(art, Settings()),
                   live={("Deployment", "web-api"): deployment(
                       updated=2, ready=0, progressing="ProgressDeadlineExceeded")},
                   pods={"api": PodFacts(restarts=3, problem=probe)})
    status = compute_status(art, obs, Settings(), None, NOW).dump()
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert degraded["message"] == \
        f"group api: rollout exceeded its progress deadline ({probe})"
    assert status["containerGroups"][0]["restarts"] == 3


def test_restarts_stay_as_stored_until_the_pods_are_read_again() -> None:
    art = artifact()
    rendered = render(art, Settings())
    live = {("Deployment", "web-api"): deployment()}
    counted = compute_status(art, Observed(rendered=rendered, live=live,
                                           pods={"api": PodFacts(restarts=2)}),
                             Settings(), None, NOW)
    assert counted.container_groups[0].restarts == 2
    again = compute_status(art, Observed(rendered=rendered, live=live), Settings(), counted,
                           NOW)
    assert again.container_groups[0].restarts == 2
    assert status_patch(counted.dump(), again) is None
    none = compute_status(art, Observed(rendered=rendered, live=live,
                                        pods={"api": PodFacts()}), Settings(), counted, NOW)
    assert "restarts" not in none.dump()["containerGroups"][0]  # absent for none
