"""Migration from the old HMAC annotation approvals, pure: a group approved only that way
keeps running what runs now, and nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.logic.approval import Decision, Grant
from artifact_operator.logic.compare import covers
from artifact_operator.logic.render import Rendered

Obj = dict[str, Any]
Ref = tuple[str, str]  # (kind, name)


def hold_changed_legacy(artifact: Artifact, rendered: Rendered,
                         live: Mapping[Ref, Obj]) -> Rendered:
    """Groups approved only by the old HMAC annotation keep running what runs now, and
    nothing else: the annotation never covered entrypoint, env, other containers or the
    runtime, so a group whose Deployment would change (or does not exist) is held as
    stale until an ArtifactApproval covers it."""
    if not rendered.legacy:
        return rendered
    held: dict[str, Decision] = {}
    for group in rendered.legacy:
        name = naming.group_object_name(artifact.name, group)
        want = next(o for o in rendered.of_kind("Deployment")
                    if o["metadata"]["name"] == name)
        current = live.get(("Deployment", name))
        # Exactly: an env var or container removed from the spec is a change too.
        if current is None or not covers(current, want, exact=True):
            held[group] = Decision(
                Grant.stale, f"group {group}: approved by the old "
                "workload.dev/elevated-approval annotation, which covers only what runs "
                "now; this change needs an admin's approval (kubectl artifact approve "
                f"{artifact.name})")
    if not held:
        return rendered
    # A copy: the cached render stays as it was (the next pass decides again).
    return dataclasses.replace(
        rendered,
        objects=[o for o in rendered.objects
                 if o["metadata"].get("labels", {}).get(naming.LABEL_GROUP) not in held],
        held={**rendered.held, **held},
        legacy=[g for g in rendered.legacy if g not in held])
