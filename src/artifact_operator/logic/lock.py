"""A locked artifact never changes what runs, with or without the webhook. Pure.

When the operator first sees an artifact locked, it records a digest of its spec in
`status.lockedSpecDigest` (with its version, in the same status write). From then on the
artifact counts as locked whatever its spec says (unlocking is a spec change too), and a spec
whose digest differs is never rolled out: `LockedSpecChanged`, children untouched.

The digest covers the spec as the model reads it, without the fields left at their defaults,
so an operator upgrade that adds a defaulted field does not make every locked artifact look
changed. A spec that no longer parses is digested as stored (it differs either way).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from artifact_operator.api.models import ArtifactSpec, Lifecycle
from artifact_operator.api.raw import as_dict
from artifact_operator.api.status import ArtifactStatus

_SCHEME = "sha256:"


def spec_digest(spec: Mapping[str, Any]) -> str:
    try:
        canonical: Any = ArtifactSpec.model_validate(dict(spec)).model_dump(
            by_alias=True, exclude_defaults=True, mode="json")
    except ValidationError:
        canonical = dict(spec)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return _SCHEME + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LockState:
    locked: bool  # locked now, or locked before (a recorded digest)
    digest: str | None  # the digest to keep in status (None: not locked)
    changed: bool  # the spec differs from the spec it was locked with


def lock_state(body: Mapping[str, Any], stored: ArtifactStatus) -> LockState:
    spec = as_dict(body.get("spec"))
    recorded = stored.locked_spec_digest
    if recorded is not None:
        return LockState(True, recorded, spec_digest(spec) != recorded)
    if spec.get("lifecycle") == Lifecycle.locked.value:
        # Locked now, first seen (or locked by a version that recorded no digest).
        return LockState(True, spec_digest(spec), False)
    return LockState(False, None, False)
