"""The Artifact's status as models: what the operator writes, and the CRD's status schema.

`Reason` names every condition reason the operator sets; `Phase` is the summary a printer
column shows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from artifact_operator.api.models import Model, StorageMode


class Reason(StrEnum):
    ready = "Ready"
    invalid_spec = "InvalidSpec"
    image_not_built = "ImageNotBuilt"
    rollout_in_progress = "RolloutInProgress"
    rollout_complete = "RolloutComplete"
    progress_deadline_exceeded = "ProgressDeadlineExceeded"
    replicas_unavailable = "ReplicasUnavailable"
    apply_failed = "ApplyFailed"
    claim_pending = "ClaimPending"
    claim_lost = "ClaimLost"
    shrink_refused = "ShrinkRefused"
    elevated_not_approved = "ElevatedNotApproved"
    secret_missing = "SecretMissing"
    as_expected = "AsExpected"
    waiting = "Waiting"


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class GroupStatus(Model):
    name: str
    deployment: str | None = None
    service: str | None = None
    endpoint: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0


class StorageStatus(Model):
    mode: StorageMode
    claim_name: str
    phase: str | None = None


class Phase(StrEnum):
    pending = "Pending"
    progressing = "Progressing"
    ready = "Ready"
    degraded = "Degraded"
    failed = "Failed"


class ArtifactStatus(Model):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    version: int | None = None
    ready: str | None = None
    endpoint: str | None = Field(None, description="Endpoint of the first group with a Service.")
    container_groups: list[GroupStatus] = Field(default_factory=list)
    storage: StorageStatus | None = None
