"""The operator's configuration: one tree, loaded once from the environment
(`ARTIFACT_OPERATOR_*`) and the `run` flags, then passed down; nothing reads the environment
at import time or below the composition root (`app/context.py`).

`Settings` shapes what is rendered and how the controller behaves (the configuration
reference of the README and the Helm chart's `settings.*`); `WebhookSettings` and
`ApprovalSettings` configure the webhook server and the approval key. A leaf module: every
layer may read it, it imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ARTIFACT_OPERATOR_"
# kubebuilder's convention, where cert-manager or the self-signed script mounts the cert.
DEFAULT_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")


class CacheRetention(StrEnum):
    keep = "keep"
    delete = "delete"


class CacheWarmUp(StrEnum):
    wait = "wait"  # Deployments of a claim start once its warm-up Job succeeded
    background = "background"  # they start at once; the Job runs beside them
    off = "off"  # no warm-up Jobs


class BuildEngine(StrEnum):
    auto = "auto"  # Shipwright when its BuildRun API is served, else the Job
    shipwright = "shipwright"
    job = "job"


# A registry repository (host[:port]/path, no tag or digest), and an image pinned by digest.
REPOSITORY = r"^[^\s@:]+(:[0-9]+)?(/[^\s@:]+)*$"
PINNED = r"^[^\s@]+@sha256:[a-f0-9]{64}$"

# Rootless BuildKit for the Job engine, pinned by digest (a tag can move under a build).
DEFAULT_BUILDER_IMAGE = (
    "docker.io/moby/buildkit:v0.33.0-rootless"
    "@sha256:80b15f0735e87bab7bf59ec4d695dfb4a7cfb25521cf56dc75d6f256285b63ef")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True)

    # Pod security defaults for every rendered pod.
    run_as_user: int = Field(1000, ge=1, description="runAsUser of every rendered pod.")
    run_as_group: int = Field(1000, ge=0, description="runAsGroup of every rendered pod.")
    fs_group: int = Field(1000, ge=0, description="fsGroup of every rendered pod.")
    cluster_domain: str = Field("cluster.local", description="DNS domain in Service endpoints.")

    # NIM model-weight storage.
    default_pvc_size: str = Field("100Gi", pattern=r"^\d+(\.\d+)?(Gi|Mi|Ti)$",
                                  description="Size of a dedicated claim without pvcSize.")
    storage_class: str | None = Field(
        None, description="storageClassName of the claims; unset means the cluster default.")
    dedicated_access_modes: list[str] = Field(
        default_factory=lambda: ["ReadWriteOnce"],
        description="accessModes of a dedicated model-weight claim (JSON list).")
    cache_access_modes: list[str] = Field(
        default_factory=lambda: ["ReadWriteMany"],
        description="accessModes of a shared nimCache claim (JSON list).")
    cache_size: str = Field("200Gi", pattern=r"^\d+(\.\d+)?(Gi|Mi|Ti)$",
                            description="Size of a shared nimCache claim.")
    nim_cache_path: str = Field("/opt/nim/.cache", description="Where NIM weights are mounted.")
    cache_retention: CacheRetention = Field(
        CacheRetention.keep, description="What happens to a cache claim when its last user goes.")
    shm_size: str | None = Field(None, description="sizeLimit of the /dev/shm emptyDir.")
    cache_warm_up: CacheWarmUp = Field(
        CacheWarmUp.wait, description="Model cache warm-up Jobs (nimCache claims, and "
        "dedicated ones with spec.storage.warmUp): wait (the group's Deployment is rendered "
        "once the Job succeeded), background (rendered at once, the Job beside it) or off.")
    cache_warm_up_command: list[str] = Field(
        default_factory=lambda: ["download-to-cache"], min_length=1,
        description="Command the warm-up Job runs in the model image (JSON list), with the "
        "primary container's env and NIM_CACHE_PATH; NIM images ship download-to-cache.")
    cache_warm_up_timeout_seconds: int = Field(
        21600, ge=60, description="activeDeadlineSeconds of a warm-up Job.")

    # Image builds (README "Image builds").
    build_engine: BuildEngine = Field(
        BuildEngine.auto, description="auto: a Shipwright BuildRun when the cluster serves "
        "shipwright.io/v1beta1 BuildRuns, else a Job running rootless BuildKit; or shipwright "
        "or job.")
    build_output_repository: str | None = Field(
        None, pattern=REPOSITORY,
        description="Registry repository built images are pushed under (e.g. "
        "registry.example.com/builds); unset: no builds, containers stay ImageNotBuilt.")
    build_push_secret: str | None = Field(
        None, description="Secret (kubernetes.io/dockerconfigjson) in the artifact's namespace "
        "with the credentials to push; unset: push without credentials.")
    build_strategy: str = Field(
        "buildkit", description="Shipwright ClusterBuildStrategy of the BuildRuns.")
    build_builder_image: str = Field(
        DEFAULT_BUILDER_IMAGE, pattern=r"@sha256:[a-f0-9]{64}$",
        description="Rootless BuildKit image of the Job engine, pinned by digest.")
    build_catalog_sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Where the seed's datarobot code references are fetched from: a JSON "
        "object mapping \"<catalogId>/<catalogVersionId>\" to a git or oci codeRef (e.g. "
        "{\"c1/v1\": {\"provider\": \"git\", \"git\": {\"url\": \"https://...\"}}}); "
        "an unmapped one is SourceUnresolved.")
    build_output_repositories: dict[str, Annotated[str, Field(pattern=REPOSITORY)]] = Field(
        default_factory=dict,
        description="Per-namespace output repositories: a JSON object mapping a namespace to "
        "the repository its artifacts' images are pushed under (e.g. {\"team-a\": "
        "\"registry.example.com/team-a\"}); other namespaces use buildOutputRepository.")
    build_execution_environments: dict[str, Annotated[str, Field(pattern=PINNED)]] = Field(
        default_factory=dict,
        description="The execution-environment table of generated Dockerfiles: a JSON object "
        "mapping \"<executionEnvironmentId>/<executionEnvironmentVersionId>\" to its base "
        "image, pinned by digest (repo@sha256:...); an unmapped one is SourceUnresolved.")
    build_namespace: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
        description="Namespace the builds run in (its Pod Security level may be privileged, "
        "so that the artifacts' namespaces can stay restricted); unset: each artifact's own. "
        "The push Secret and git clone Secrets are then read there.")
    build_timeout_seconds: int = Field(
        1800, ge=60, description="Longest a build may run before the engine stops it.")

    # Operator behaviour.
    resync_seconds: float = Field(600.0, gt=0, description="Full resync interval.")
    events: bool = Field(True, description="Post Events on Artifacts for child changes.")
    max_backoff_seconds: float = Field(
        300.0, gt=0, description="Longest wait between retries of a failing reconcile.")
    client_login: bool = Field(
        False, description="Log in through an installed Kubernetes client library (needed "
        "for kubeconfigs with exec or auth-provider plugins) instead of kopf's own login; "
        "costs ~40 MB of memory.")
    hpa_api_version: Literal["autoscaling/v2", "autoscaling/v2beta2"] | None = Field(
        None, description="API version of the HorizontalPodAutoscalers rendered for "
        "runtime.<group>.autoscaling; unset: the one the server serves, asked at start "
        "(v2beta2 on Kubernetes 1.20-1.22), and v2 offline.")
    api_discovery_seconds: float = Field(
        60.0, ge=0, description="While the cluster serves no Gateway API HTTPRoutes or no "
        "Prometheus Operator ServiceMonitors (or, with buildEngine auto on the Job fallback, "
        "no Shipwright BuildRuns), how often the operator asks again, so that installing "
        "their CRDs takes no restart; 0: asked only at start.")
    status_settle_seconds: float = Field(
        2.0, ge=0, description="How long status waits for the Deployment controller to "
        "observe a Deployment the operator just wrote, to spare a status write.")
    status_change_settle_seconds: float = Field(
        0.5, ge=0, description="The same hold for a spec change of an artifact already "
        "observed (never longer than statusSettleSeconds): the bound on how late "
        "status.observedGeneration acknowledges a change while the Deployment controller is "
        "slow; past it the status is written as it stands, and again at the first pod.")


class WebhookSettings(BaseSettings):
    """`run --webhook-*` flags, or `ARTIFACT_OPERATOR_WEBHOOK_*` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    webhook_port: int = Field(9443, ge=0, le=65535, description="0 disables the webhooks.")
    webhook_cert: Path | None = Field(None, description="Serving certificate (PEM).")
    webhook_key: Path | None = Field(None, description="Private key of the certificate.")
    webhook_host: str | None = Field(None, description="Address to listen on (all if unset).")
    webhook_client_ca: Path | None = Field(
        None, description="CA (PEM) whose client certificates the webhook requires (mutual "
        "TLS): the CA of the API server's admission client certificate. Unset: any caller "
        "that reaches the port is served (then restrict it with the shipped NetworkPolicy).")
    webhook_max_in_flight: int = Field(
        32, ge=1, le=1024, description="Admission requests served at once; more are refused "
        "with 503.")
    webhook_drain_seconds: float = Field(
        5.0, ge=0, le=60, description="After SIGTERM, how long the webhook keeps answering "
        "before the operator stops: the Service routes to a terminating pod until the "
        "endpoints controller and kube-proxy catch up, and every write refused meanwhile is "
        "a user's failed `kubectl apply`. Keep it below terminationGracePeriodSeconds.")

    @field_validator("webhook_client_ca")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        # Fail at start, not at the first review: a missing CA must not mean "no mTLS".
        if value is not None and not value.is_file():
            raise ValueError(f"webhook client CA file not found: {value}")
        return value

    @property
    def cert(self) -> Path:
        return self.webhook_cert or DEFAULT_CERT_DIR / "tls.crt"

    @property
    def key(self) -> Path:
        return self.webhook_key or DEFAULT_CERT_DIR / "tls.key"


class ApprovalSettings(BaseSettings):
    """The key of the old HMAC approval annotations: `ARTIFACT_OPERATOR_APPROVAL_KEY`, or a
    file named by `ARTIFACT_OPERATOR_APPROVAL_KEY_FILE`. Only verified now: artifacts approved
    that way keep running until their next change; ArtifactApprovals need no key."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    approval_key: SecretStr | None = Field(
        None, description="HMAC key of the old annotation approvals (only verified, for "
        "migration).")
    approval_key_file: Path | None = Field(None, description="File holding that key.")


@dataclass(frozen=True)
class Config:
    """Everything `run` is configured with, loaded once (`Config.load`)."""

    settings: Settings = field(default_factory=Settings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)

    @classmethod
    def load(cls, **webhook_flags: Any) -> Config:
        """The environment, with the webhook flags that were given (None: not given) on top."""
        given = {k: v for k, v in webhook_flags.items() if v is not None}
        return cls(Settings(), WebhookSettings(**given), ApprovalSettings())
