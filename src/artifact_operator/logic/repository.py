"""The repository label: `kubectl get art -l workload.dev/repository=X` lists the versions of
one artifact. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.naming import LABEL_REPOSITORY

Obj = dict[str, Any]


def repository_label_patch(body: Mapping[str, Any], artifact: Artifact) -> Obj | None:
    """The metadata merge patch that makes the repository label right, or None if it is."""
    labels = body.get("metadata", {}).get("labels") or {}
    want = artifact.spec.repository
    if labels.get(LABEL_REPOSITORY) == want:
        return None
    # A stale label (the repository was removed from a draft) goes: null deletes it.
    return {"metadata": {"labels": {LABEL_REPOSITORY: want}}}
