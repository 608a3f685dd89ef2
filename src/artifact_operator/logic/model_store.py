"""Where a NIM artifact keeps its model weights: the claim each group mounts (a dedicated
claim, or the shared cache claim of its model image) and that claim as an object."""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import ArtifactType, ContainerGroup, StorageMode
from artifact_operator.logic.metadata import artifact_labels, meta
from artifact_operator.settings import Settings

Manifest = dict[str, Any]


def model_image(group: ContainerGroup) -> str | None:
    """The image of the group's primary container: for nim artifacts, the model it serves."""
    for container in group.containers:
        if container.primary:
            return container.image_uri
    return None


def shared(artifact: Artifact) -> bool:
    storage = artifact.spec.storage
    return storage is not None and storage.mode == StorageMode.nim_cache


def storage_claim_name(artifact: Artifact, group: ContainerGroup) -> str | None:
    if artifact.spec.type != ArtifactType.nim:
        return None
    if shared(artifact):
        image = model_image(group)
        return naming.cache_claim_name(image) if image else None
    return naming.dedicated_claim_name(artifact.name)


def claim(artifact: Artifact, group: ContainerGroup, name: str, owner: Manifest | None,
           settings: Settings) -> Manifest:
    storage = artifact.spec.storage
    if shared(artifact):
        image = model_image(group) or ""
        labels = {
            naming.LABEL_MANAGED_BY: naming.MANAGER,
            naming.LABEL_CACHE: naming.cache_hash_of_claim(name),
            "app.kubernetes.io/component": "nim-cache",
        }
        metadata: Manifest = {"name": name, "namespace": artifact.namespace, "labels": labels,
                              "annotations": {naming.ANNOTATION_CACHE_IMAGE: image}}
        modes, size = settings.cache_access_modes, settings.cache_size
    else:
        metadata = meta(artifact, name, "", owner, artifact_labels(artifact, "model-store"))
        modes = settings.dedicated_access_modes
        size = (storage.pvc_size if storage and storage.pvc_size else settings.default_pvc_size)
    spec: Manifest = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}
