"""NIM model-weight claims, pure: which claims an artifact mounts, and how a dedicated claim
may change (it grows once bound, never shrinks; access modes and class are fixed at creation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.models import ArtifactType, StorageMode
from artifact_operator.api.status import Reason
from artifact_operator.logic.quantity import parse_quantity
from artifact_operator.logic.status import Observed

Obj = dict[str, Any]

# Immutable once a claim exists: the API server refuses any change to them.
_FIXED_AT_CREATION = ("accessModes", "storageClassName")


# -- pure helpers --------------------------------------------------------------------------

def is_cache_claim(obj: Mapping[str, Any]) -> bool:
    return bool(obj.get("kind") == "PersistentVolumeClaim"
                and naming.LABEL_CACHE in (obj.get("metadata", {}).get("labels") or {}))


def cache_claims_of(body: Mapping[str, Any]) -> set[str]:
    """The cache claims an Artifact (as stored, possibly invalid) would mount.

    Read from the raw object rather than parsed, because it runs over every artifact in a
    namespace on each check and must also answer for a spec that no longer validates.
    """
    spec = body.get("spec")
    if not isinstance(spec, Mapping) or spec.get("type") != ArtifactType.nim.value:
        return set()
    storage = spec.get("storage")
    if not isinstance(storage, Mapping) or storage.get("mode") != StorageMode.nim_cache.value:
        return set()
    out: set[str] = set()
    for group in spec.get("containerGroups") or []:
        for container in (group.get("containers") or []) if isinstance(group, Mapping) else []:
            if isinstance(container, Mapping) and container.get("primary") and \
                    isinstance(container.get("imageUri"), str) and container["imageUri"]:
                out.add(naming.cache_claim_name(container["imageUri"]))
    return out


def caches_mounted(objects: Iterable[Mapping[str, Any]]) -> set[str]:
    """Cache claims used by the Deployments among `objects` (by their cache label)."""
    return {naming.cache_claim_of_hash(o["metadata"]["labels"][naming.LABEL_CACHE])
            for o in objects
            if o.get("kind") == "Deployment"
            and naming.LABEL_CACHE in (o.get("metadata", {}).get("labels") or {})}


def _size(claim: Mapping[str, Any]) -> str | None:
    size = (claim.get("spec", {}).get("resources", {}).get("requests") or {}).get("storage")
    return str(size) if size is not None else None


def dedicated_update(live: Obj | None, desired: Obj, obs: Observed) -> Obj | None:
    """What to apply for a dedicated claim, or None to leave the live one as it is.

    A shrink is refused (Degraded) and growth waits until the claim is bound (the API server
    resizes only bound claims); in both cases nothing is written, so nothing that runs changes.
    """
    if live is None:
        return desired
    name = desired["metadata"]["name"]
    spec = dict(desired["spec"])
    live_spec = live.get("spec", {})
    for key in _FIXED_AT_CREATION:
        if key in live_spec:
            spec[key] = live_spec[key]
        else:
            spec.pop(key, None)
    want, have = _size(desired), _size(live)
    if want is not None and have is not None:
        if parse_quantity(want) < parse_quantity(have):
            obs.errors.append((Reason.shrink_refused,
                               f"claim {name} cannot shrink from {have} to {want}: persistent "
                               f"volume claims only grow; it stays at {have} and nothing was "
                               "changed"))
            return None
        phase = live.get("status", {}).get("phase")
        if parse_quantity(want) > parse_quantity(have) and phase != "Bound":
            obs.blockers.append((Reason.claim_pending,
                                 f"claim {name} grows from {have} to {want} once it is bound"))
            return None
    return {**desired, "spec": spec}
