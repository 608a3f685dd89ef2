"""The Artifact's status as models: what the operator writes, and the CRD's status schema.

`Reason` names every condition reason the operator sets; `Phase` is the summary a printer
column shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, ValidationError

from artifact_operator.api.base import Model
from artifact_operator.api.models import StorageMode


class Reason(StrEnum):
    ready = "Ready"
    invalid_spec = "InvalidSpec"
    image_not_built = "ImageNotBuilt"
    building = "Building"
    build_failed = "BuildFailed"
    source_unresolved = "SourceUnresolved"
    rollout_in_progress = "RolloutInProgress"
    rollout_complete = "RolloutComplete"
    progress_deadline_exceeded = "ProgressDeadlineExceeded"
    replicas_unavailable = "ReplicasUnavailable"
    apply_failed = "ApplyFailed"
    claim_pending = "ClaimPending"
    claim_lost = "ClaimLost"
    shrink_refused = "ShrinkRefused"
    elevated_not_approved = "ElevatedNotApproved"
    approval_stale = "ApprovalStale"
    secret_missing = "SecretMissing"
    locked_spec_changed = "LockedSpecChanged"
    secret_not_usable = "SecretNotUsable"
    token_secret_conflict = "TokenSecretConflict"
    cache_warming_up = "CacheWarmingUp"
    cache_warm_up_failed = "CacheWarmUpFailed"
    as_expected = "AsExpected"
    waiting = "Waiting"
    # Conditions Exposed and Monitored (logic/exposure.py, logic/monitoring.py).
    exposed = "Exposed"
    awaiting_address = "AwaitingAddress"
    route_not_accepted = "RouteNotAccepted"
    route_api_missing = "RouteApiMissing"
    monitored = "Monitored"
    monitoring_api_missing = "MonitoringApiMissing"


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    # Never an empty string: the 1.20 API server reads "" in a CR as null and refuses it.
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class AutoscalerStatus(Model):
    """The group's HorizontalPodAutoscaler (runtime.<group>.autoscaling), as it reports."""

    min_replicas: int
    max_replicas: int
    current_replicas: int = 0
    desired_replicas: int = 0
    message: str | None = Field(
        None, description="Why it cannot scale as asked (a condition of the HPA that is "
        "False, e.g. no metrics), if anything.")


class GroupStatus(Model):
    name: str
    deployment: str | None = None
    service: str | None = None
    endpoint: str | None = None
    external_endpoint: str | None = Field(
        None, description="URL from outside the cluster (runtime.<group>.expose), once its "
        "Ingress has an address or a Gateway has accepted its HTTPRoute.")
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    autoscaler: AutoscalerStatus | None = None
    restarts: int | None = Field(
        None, description="Container restarts in the group's current pods, as the kubelet "
        "counts them (liveness failures, crashes); absent for none. Read when the group's "
        "ready count moves or it is Degraded.")


class BuildStatus(StrEnum):
    """The seed's ImageBuildExternalStatus. BUILT: the engine pushed the image and reported
    its digest. COMPLETED is the seed's too, but no engine state maps to it: this operator
    reports BUILT for every successful build."""

    pending = "PENDING"
    in_progress = "IN_PROGRESS"
    built = "BUILT"
    completed = "COMPLETED"
    cancelled = "CANCELLED"
    failed = "FAILED"
    unknown = "UNKNOWN"


class ContainerBuildInfo(Model):
    """The seed's ContainerBuildInfo: `artifactImageBuildId` is the name of the BuildRun or
    Job (what `kubectl artifact build cancel|logs` take)."""

    artifact_image_build_id: str
    status: BuildStatus
    created_at: str


class ContainerBuild(Model):
    """The build of one container with imageBuildConfig and no imageUri."""

    group: str
    container: str
    source_digest: str = Field(
        description="Digest of what is built (source, Dockerfile, rebuild request): a new "
        "one starts a new build.")
    build: ContainerBuildInfo | None = None
    build_namespace: str | None = Field(
        None, description="Namespace of the build's BuildRun or Job when it is not the "
        "artifact's (the operator's build namespace).")
    image: str | None = Field(
        None, description="The built image, repo@sha256:<digest>: what the Deployment runs.")
    message: str | None = None


class CachePhase(StrEnum):
    """How far the model cache warm-up of a claim got (README "Model cache warm-up")."""

    pending = "Pending"
    downloading = "Downloading"
    ready = "Ready"
    failed = "Failed"


class WarmUpStatus(Model):
    """The warm-up of the model cache in the claim: the Job that downloads the model."""

    phase: CachePhase
    job: str = Field(description="The warm-up Job (kubectl logs job/<job>).")
    reason: str | None = Field(None, description="The Job's reason, when Failed.")
    message: str | None = None


class StorageStatus(Model):
    mode: StorageMode
    claim_name: str
    phase: str | None = None
    warm_up: WarmUpStatus | None = None


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
    external_endpoint: str | None = Field(
        None, description="External endpoint of the first group with one.")
    container_groups: list[GroupStatus] = Field(default_factory=list)
    storage: StorageStatus | None = None
    builds: list[ContainerBuild] = Field(
        default_factory=list,
        description="Image builds of containers with imageBuildConfig and no imageUri.")
    locked_spec_digest: str | None = Field(
        None, description="Digest of the spec as it was locked: a locked artifact whose spec "
        "differs is never rolled out.")

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> ArtifactStatus:
        """The stored status as a model. A status this version cannot read (written by
        another version, or by hand) counts as empty, except its `version`, which is never
        given out twice, and the digest of a locked spec, which keeps it frozen."""
        raw = raw or {}
        try:
            return cls.model_validate(raw)
        except ValidationError:
            version, digest = raw.get("version"), raw.get("lockedSpecDigest")
            return cls(version=version if isinstance(version, int) else None,
                       locked_spec_digest=digest if isinstance(digest, str) else None)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
