"""The Artifact resource: metadata, spec and status together, as the API server stores it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from artifact_operator.api.base import DNS_LABEL, Model
from artifact_operator.api.models import ArtifactSpec
from artifact_operator.api.status import ArtifactStatus


class ObjectMeta(BaseModel):
    """The metadata fields the operator reads; the rest passes through untouched."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(max_length=63, pattern=DNS_LABEL)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Artifact(Model):
    api_version: Literal["workload.dev/v1alpha1"] = "workload.dev/v1alpha1"
    kind: Literal["Artifact"] = "Artifact"
    metadata: ObjectMeta
    spec: ArtifactSpec = Field(default_factory=ArtifactSpec)
    status: ArtifactStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"
