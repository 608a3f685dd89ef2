"""The status of a NIM artifact's claims: which claims its rendered groups mount,
`status.storage`, and what keeps it from Ready (a claim not Bound yet, or Lost)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import ArtifactType, StorageMode
from artifact_operator.api.status import Reason, StorageStatus
from artifact_operator.logic.model_store import storage_claim_name
from artifact_operator.logic.render import Rendered

Obj = dict[str, Any]
Live = Mapping[tuple[str, str], Obj]  # (kind, name) -> live object


def _claims(artifact: Artifact, rendered: Rendered) -> list[str]:
    """The claims the rendered groups mount, in group order, each once."""
    if artifact.spec.type != ArtifactType.nim:
        return []
    # A group waiting for its model cache to warm up still has its claim.
    held = rendered.held_groups - rendered.warming.keys()
    names = (storage_claim_name(artifact, g) for g in artifact.spec.container_groups
             if g.name not in held)
    return list(dict.fromkeys(n for n in names if n))


def _claim_phase(live: Obj | None) -> str | None:
    if live is None:
        return None
    return str(live.get("status", {}).get("phase") or "Pending")


def storage_status(artifact: Artifact, rendered: Rendered, live: Live) -> StorageStatus | None:
    claims = _claims(artifact, rendered)
    if not claims:
        return None
    mode = artifact.spec.storage.mode if artifact.spec.storage else StorageMode.dedicated_pvc
    # The status has room for one claim: the first group's (every group shares it in
    # dedicated mode; Ready below waits for all of them).
    return StorageStatus(mode=mode, claim_name=claims[0],
                         phase=_claim_phase(live.get(("PersistentVolumeClaim", claims[0]))),
                         warm_up=rendered.warm_ups.get(claims[0]))


def claim_problems(artifact: Artifact, rendered: Rendered, live: Live
                    ) -> tuple[list[tuple[Reason, str]], list[tuple[Reason, str]]]:
    """(degraded, not ready) for the artifact's claims: Ready waits until every one is Bound."""
    degraded: list[tuple[Reason, str]] = []
    waiting: list[tuple[Reason, str]] = []
    for name in _claims(artifact, rendered):
        claim = live.get(("PersistentVolumeClaim", name))
        phase = _claim_phase(claim)
        if claim is None:
            waiting.append((Reason.claim_pending, f"claim {name} is not created yet"))
        elif claim["metadata"].get("deletionTimestamp"):
            waiting.append((Reason.claim_pending, f"claim {name} is being deleted; it is "
                            "created again once it is gone"))
        elif phase == "Lost":
            degraded.append((Reason.claim_lost, f"claim {name} lost its volume"))
        elif phase != "Bound":
            waiting.append((Reason.claim_pending, f"claim {name} is {phase}: {_unbound(claim)}"))
    return degraded, waiting


def _unbound(claim: Obj) -> str:
    """Why a claim may not bind, in the claim's own terms (without a provisioner there are
    no provisioning events to quote)."""
    spec = claim.get("spec", {})
    size = (spec.get("resources", {}).get("requests") or {}).get("storage", "?")
    modes = ", ".join(spec.get("accessModes") or []) or "no access mode"
    klass = spec.get("storageClassName")
    where = f"storage class {klass}" if klass else "the default storage class"
    return (f"no PersistentVolume is bound to it yet; it needs {size} {modes} from {where} "
            "(a PersistentVolume or a provisioner for that class)")
