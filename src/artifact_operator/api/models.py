"""The Artifact resource as pydantic v2 models: the one schema of the project.

Field names, defaults, enums, patterns and ranges come from the workload API's artifact schemas
(`shared/seed`). The CRD (`crd.py`) is generated from these classes, validation (`validation.py`)
runs them, and rendering reads them. Cross-field rules live in `rules.py`, next to their CEL form.

Where we add a constraint the seed does not have, it is one the Kubernetes API server would
otherwise reject at apply time (an env name it cannot take, a probe period of 0): rejecting it
at the Artifact is the clearer error. The shared names, patterns and bounds are in `base.py`;
the image build part in `build_config.py`, the runtime overrides in `runtime.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, Tag

from artifact_operator.api.base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    LABEL_VALUE,
    MAX_ARGS,
    MAX_CAPABILITIES,
    MAX_ENV,
    MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_LIST,
    PVC_SIZE,
    SECRET_KEY,
    UNIQUE_BY_NAME,
    Model,
    tagged_by,
)
from artifact_operator.api.build_config import ImageBuildConfig
from artifact_operator.api.runtime import RuntimeOverride


class ArtifactType(StrEnum):
    service = "service"
    nim = "nim"


class Lifecycle(StrEnum):
    draft = "draft"
    locked = "locked"


class StorageMode(StrEnum):
    dedicated_pvc = "dedicatedPvc"
    nim_cache = "nimCache"


class Scheme(StrEnum):
    http = "HTTP"
    https = "HTTPS"


class SeccompType(StrEnum):
    runtime_default = "RuntimeDefault"
    unconfined = "Unconfined"
    localhost = "Localhost"


class Probe(Model):
    """An HTTP GET probe (the seed's ProbeConfig)."""

    path: str = Field(description="URL path to query for the health check.")
    port: int | None = Field(
        None, ge=1, le=65535,
        description="Port to probe, 1..65535. When omitted: the container's port, else 8080 "
        "(the seed's default).",
    )
    scheme: Scheme = Field(Scheme.http, description="Scheme to use for connecting to the host.")
    host: str | None = Field(
        None, min_length=1, max_length=253,
        description="Host name to connect to; defaults to the pod IP. Admin only: the kubelet "
        "sends the request from the node's network.")
    http_headers: dict[
        Annotated[str, Field(min_length=1, max_length=MAX_HEADER_NAME)],
        Annotated[str, Field(max_length=MAX_HEADER_VALUE)],
    ] | None = Field(
        None, max_length=MAX_HEADERS,
        description=f"HTTP headers for the probe (at most {MAX_HEADERS}; names at most "
        f"{MAX_HEADER_NAME} characters, values at most {MAX_HEADER_VALUE}).")
    # The minimums are Kubernetes': it rejects negative values, and silently replaces a 0
    # period, timeout or threshold with its own default (10s, 1s, 3), which is not what was asked.
    initial_delay_seconds: int = Field(
        30, ge=0, description="Seconds to wait before the first probe is executed (>= 0, as "
        "Kubernetes requires).")
    period_seconds: int = Field(
        30, ge=1, description="How often (in seconds) to probe (>= 1: Kubernetes replaces 0).")
    timeout_seconds: int = Field(
        30, ge=1, description="Seconds after which the probe times out (>= 1: Kubernetes "
        "replaces 0).")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures for the probe to be considered failed "
        "(>= 1: Kubernetes replaces 0).")


class Capabilities(Model):
    """Linux capabilities to add (admin only) or drop."""

    add: list[str] | None = Field(
        None, max_length=MAX_CAPABILITIES,
        description=f"Capabilities to add (admin only; at most {MAX_CAPABILITIES}).")
    drop: list[str] | None = Field(
        None, max_length=MAX_CAPABILITIES,
        description=f"Capabilities to drop (at most {MAX_CAPABILITIES}).")


class SeccompProfile(Model):
    type: SeccompType = Field(description="RuntimeDefault, Unconfined (admin only) or Localhost.")
    localhost_profile: str | None = Field(
        None, description="Path of a seccomp profile on the node; only with type Localhost.")


class SecurityContext(Model):
    """Tightens the platform defaults; elevated fields need the admin role.

    runAsNonRoot and runAsUser are set by the platform and are not user-settable.
    """

    allow_privilege_escalation: bool | None = Field(
        None, description="true requires the admin role.")
    capabilities: Capabilities | None = None
    read_only_root_filesystem: bool | None = Field(
        None, description="Whether the root filesystem is read-only.")
    seccomp_profile: SeccompProfile | None = None


class StringEnvVar(Model):
    source: Literal["string"] = "string"
    name: str = Field(
        pattern=ENV_NAME,
        description="Name of the environment variable; letters, digits, '_', '-' and '.', not "
        "starting with a digit or '..' (what Kubernetes accepts).")
    value: str = Field(description="Value of the environment variable.")


class CredentialEnvVar(Model):
    """A key of a Secret in the artifact's namespace (`drCredentialId` is the Secret's name)."""

    source: Literal["dr-credential"]
    name: str = Field(
        pattern=ENV_NAME,
        description="Name of the environment variable; letters, digits, '_', '-' and '.', not "
        "starting with a digit or '..' (what Kubernetes accepts).")
    dr_credential_id: str = Field(
        pattern=DNS_SUBDOMAIN, max_length=253,
        description="Name of a Secret in the artifact's namespace (a DNS subdomain, as "
        "Kubernetes requires of Secret names).")
    key: str = Field(
        pattern=SECRET_KEY, max_length=253,
        description="Key within the Secret (letters, digits, '_', '-', '.'; at most 253, as "
        "Kubernetes requires of Secret keys).")


class ApiTokenEnvVar(Model):
    """A platform-managed API token, from the artifact's own token Secret."""

    source: Literal["dr-api-token"]
    name: str = Field(
        pattern=ENV_NAME,
        description="Name of the environment variable; letters, digits, '_', '-' and '.', not "
        "starting with a digit or '..' (what Kubernetes accepts).")


EnvVar = Annotated[
    Annotated[StringEnvVar, Tag("string")]
    | Annotated[CredentialEnvVar, Tag("dr-credential")]
    | Annotated[ApiTokenEnvVar, Tag("dr-api-token")],
    tagged_by("source", "string"),
]


class Container(Model):
    name: str | None = Field(
        None, pattern=DNS_LABEL, max_length=63,
        description="Lowercase letters, digits and hyphens; starts with a letter, ends with a "
        "letter or digit; at most 63 characters (a Kubernetes container name). Defaults to "
        "container-<index>.",
    )
    description: str = Field("", description="Description of the container.")
    image_uri: str | None = Field(
        None, min_length=1,
        description="Image to run. Required unless imageBuildConfig is set (Kubernetes "
        "refuses a container without an image).")
    image_build_config: ImageBuildConfig | None = None
    entrypoint: list[str] | None = Field(
        None, max_length=MAX_ARGS,
        description=f"Overrides the image's command (at most {MAX_ARGS} items).")
    # `default=[]` (pydantic copies it per instance) rather than a factory, so that the CRD
    # carries the seed's default and CEL rules can read the list when it is omitted.
    environment_vars: list[EnvVar] = Field(
        default=[], max_length=MAX_ENV, json_schema_extra=UNIQUE_BY_NAME,
        description="Environment variables: source string (default), dr-credential or "
        f"dr-api-token. Names are unique in a container (at most {MAX_ENV}).")
    port: int | None = Field(
        None, ge=1024, le=65535,
        description="Container port, 1024..65535. Primary containers must set it; others must "
        "not.")
    primary: bool = Field(False, description="Whether this is the group's primary container.")
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    security_context: SecurityContext | None = None


class ContainerGroup(Model):
    name: str = Field(
        "default", pattern=DNS_LABEL, max_length=63,
        description="Group name; also the key of its runtime overrides. Lowercase letters, "
        "digits and hyphens; starts with a letter, ends with a letter or digit; at most 63 "
        "characters (it names Kubernetes objects and is a label value).")
    containers: list[Container] = Field(
        default=[], max_length=MAX_LIST,
        description=f"The containers of the group's pods, in order (at most {MAX_LIST}).")


class StorageConfig(Model):
    """Where a NIM artifact keeps its model weights."""

    mode: StorageMode = Field(
        StorageMode.dedicated_pvc,
        description="dedicatedPvc: a claim of its own; nimCache: one claim per model image.")
    pvc_size: str | None = Field(
        None, pattern=PVC_SIZE,
        description="Size of the dedicated claim (e.g. 150Gi); only with dedicatedPvc. When "
        "omitted, the operator's configured default.")
    warm_up: bool | None = Field(
        None,
        description="Download the model into the claim with a Job running the model image's "
        "own download command before the server starts (README \"Model cache warm-up\"). "
        "When omitted: on for nimCache, off for dedicatedPvc. The operator's "
        "ARTIFACT_OPERATOR_CACHE_WARM_UP setting decides whether the Deployments wait for it.")


class ArtifactSpec(Model):
    display_name: str | None = Field(
        None, min_length=1, max_length=5000, description="Defaults to metadata.name.")
    description: str = Field("", description="Description of the artifact.")
    type: ArtifactType = Field(
        ArtifactType.service, description="service (default) or nim (an NVIDIA NIM model).")
    lifecycle: Lifecycle = Field(
        Lifecycle.draft, description="draft is editable; locked freezes the spec.")
    repository: str | None = Field(
        None, max_length=63, pattern=LABEL_VALUE,
        description="Groups the versions of one artifact. It becomes the value of the label "
        "workload.dev/repository, so it must be a Kubernetes label value: at most 63 "
        "letters, digits, '-', '_' or '.', starting and ending with a letter or digit.")
    container_groups: list[ContainerGroup] = Field(
        default=[], max_length=MAX_LIST, json_schema_extra=UNIQUE_BY_NAME,
        description=f"Each group runs as one Deployment (at most {MAX_LIST}; names unique).")
    storage: StorageConfig | None = Field(
        None, description="Model weight storage; nim only. Defaults to a dedicated claim.")
    template_id: str | None = Field(
        None, description="Id of the template this nim artifact was made from; nim only.")
    runtime: dict[str, RuntimeOverride] | None = Field(
        None, max_length=MAX_LIST, description="Runtime overrides keyed by container group name.")
