"""The metadata of every object an artifact runs as: its name, namespace, labels and owner.
One place, so that selectors, pruning and `kubectl get -l` agree on the labels."""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact

Manifest = dict[str, Any]


def meta(artifact: Artifact, name: str, group: str, owner: Manifest | None,
          labels: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": artifact.namespace,
        "labels": labels or naming.labels(artifact.name, group, str(artifact.spec.type)),
    }
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def artifact_labels(artifact: Artifact, component: str) -> dict[str, str]:
    """Labels of objects that belong to the whole artifact rather than to one group."""
    return {
        "app.kubernetes.io/name": artifact.name,
        "app.kubernetes.io/component": component,
        naming.LABEL_MANAGED_BY: naming.MANAGER,
        naming.LABEL_ARTIFACT: artifact.name,
        naming.LABEL_TYPE: str(artifact.spec.type),
    }
