"""What a Deployment's status says about its rollout, in the terms of the Artifact's status:
has the controller seen the spec, is it between a change and its first new pod, is it done,
stuck, or short of ready replicas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api.status import Reason

Obj = dict[str, Any]


def deployment_observed(d: Mapping[str, Any]) -> bool:
    """Has the Deployment controller seen this generation? Until it has, the replica counts
    in the Deployment's status describe the previous spec."""
    observed = int(d.get("status", {}).get("observedGeneration", 0))
    return observed >= int(d.get("metadata", {}).get("generation", 1))


def deployment_settling(d: Mapping[str, Any]) -> bool:
    """Is the Deployment between a spec change and its first pod of the new template? Both
    steps are the controllers' work of milliseconds, and the status in between says nothing
    a user needs to see."""
    if not deployment_observed(d):
        return True
    desired = int(d.get("spec", {}).get("replicas", 1))
    return desired > 0 and not int(d.get("status", {}).get("updatedReplicas", 0))


def deployment_stuck(d: Obj | None) -> bool:
    """Past its progress deadline, or rolled out with fewer ready replicas than wanted: the
    group is Degraded, and its pods say why."""
    return deployment_state(d)[3] in (Reason.progress_deadline_exceeded,
                                       Reason.replicas_unavailable)


def deployment_state(d: Obj | None) -> tuple[int, int, int, Reason]:
    if d is None:
        return 0, 0, 0, Reason.rollout_in_progress
    spec, st = d.get("spec", {}), d.get("status", {})
    desired = int(spec.get("replicas", 1))
    ready, updated = int(st.get("readyReplicas", 0)), int(st.get("updatedReplicas", 0))
    total = int(st.get("replicas", 0))
    progressing = next((c for c in st.get("conditions", []) if c.get("type") == "Progressing"),
                       None)
    observed = deployment_observed(d)
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return desired, ready, updated, Reason.progress_deadline_exceeded
    if desired == 0 and observed and total == 0:
        return desired, ready, updated, Reason.ready
    complete = (observed and updated >= desired and total == updated and progressing is not None
                and progressing.get("reason") == "NewReplicaSetAvailable")
    if not complete:
        return desired, ready, updated, Reason.rollout_in_progress
    if ready < desired:
        return desired, ready, updated, Reason.replicas_unavailable
    return desired, ready, updated, Reason.ready
