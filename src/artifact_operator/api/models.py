"""The Artifact resource as pydantic v2 models: the one schema of the project.

Field names, defaults, enums, patterns and ranges come from the workload API's artifact schemas
(`shared/seed`). The CRD (`crd.py`) is generated from these classes, validation (`validation.py`)
runs them, and rendering reads them. Cross-field rules live in `rules.py`, next to their CEL form.

Where we add a constraint the seed does not have, it is one the Kubernetes API server would
otherwise reject at apply time (an env name it cannot take, a probe period of 0): rejecting it
at the Artifact is the clearer error.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic.alias_generators import to_camel

API_GROUP = "workload.dev"
API_VERSION = "v1alpha1"
KIND = "Artifact"
PLURAL = "artifacts"
SINGULAR = "artifact"
SHORT_NAMES = ["art"]

# Kubernetes naming rules (RFC 1123 label / subdomain), shared by groups and containers.
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# What the API server accepts for env var names and Secret keys (IsEnvVarName, IsConfigMapKey):
# the character class, and neither "." nor a name starting with "..". Written without
# lookahead, which the API server's regexp engine lacks.
ENV_NAME = r"^([-_a-zA-Z][-._a-zA-Z0-9]*|\.[-_a-zA-Z0-9][-._a-zA-Z0-9]*)$"
SECRET_KEY = r"^([-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.[-_a-zA-Z0-9][-._a-zA-Z0-9]*)$"
PVC_SIZE = r"^[0-9]+(\.[0-9]+)?(Gi|Mi|Ti)$"  # ASCII digits: Go's \d is ASCII, Python's is not

# Lists keyed by name: the API server itself refuses duplicate names (also on 1.20, where CEL
# is ignored), and server-side apply of Artifacts merges them by name.
UNIQUE_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
# Bounds the seed does not have. Every list and map of the spec has one, far above what a real
# artifact holds, so that one object cannot make the API server, the webhook or the operator
# do unbounded work (and a 1.25+ API server, which estimates the cost of the CRD's CEL rules
# from maxItems, accepts the rules). They are in the models, so the CRD and `validate` agree.
MAX_LIST = 64  # container groups, containers per group, runtime entries, tolerations
MAX_ENV = 256  # environment variables per container
MAX_ARGS = 256  # entrypoint items
MAX_CAPABILITIES = 64  # capabilities.add / capabilities.drop (Linux has about 41)
MAX_MAP = 64  # nodeSelector, resources.limits, resources.requests
MAX_HEADERS = 16  # probe httpHeaders
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096


class Model(BaseModel):
    """camelCase on the wire, unknown fields refused (the seed's `additionalProperties: false`)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True,
        validate_default=True,
    )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


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


def _env_source(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("source", "string"))
    return str(getattr(value, "source", "string"))


EnvVar = Annotated[
    Annotated[StringEnvVar, Tag("string")]
    | Annotated[CredentialEnvVar, Tag("dr-credential")]
    | Annotated[ApiTokenEnvVar, Tag("dr-api-token")],
    Discriminator(_env_source),
]


class DataRobotCodeRef(Model):
    catalog_id: str
    catalog_version_id: str


class DataRobotSource(Model):
    """The seed's code reference: a files API catalog item. A cluster cannot fetch it by
    itself; the operator reports `SourceUnresolved` for it (see README "Image builds")."""

    datarobot: DataRobotCodeRef
    provider: Literal["datarobot"] = "datarobot"
    type: Literal["datarobot"] = "datarobot"


class GitRef(Model):
    url: str = Field(
        min_length=1, max_length=2048,
        description="URL of the Git repository (https:// or ssh).")
    revision: str | None = Field(
        None, min_length=1, max_length=256,
        description="Branch, tag or commit; the repository's default branch when omitted.")
    context_dir: str | None = Field(
        None, min_length=1, max_length=1024,
        description="Directory of the build context inside the repository.")
    clone_secret: str | None = Field(
        None, pattern=DNS_SUBDOMAIN, max_length=253,
        description="Secret in the artifact's namespace with the credentials to clone.")


class GitSource(Model):
    """Source code in a Git repository (fetched by the build engine)."""

    provider: Literal["git"]
    git: GitRef


class OciRef(Model):
    image: str = Field(
        pattern=r"^[^@\s]+@sha256:[a-f0-9]{64}$", max_length=1024,
        description="Image holding the source code, pinned by digest (repo@sha256:<64 hex>).")
    context_dir: str | None = Field(
        None, min_length=1, max_length=1024,
        description="Directory of the build context inside the image.")
    pull_secret: str | None = Field(
        None, pattern=DNS_SUBDOMAIN, max_length=253,
        description="Secret in the artifact's namespace with the credentials to pull it.")


class OciSource(Model):
    """Source code in an OCI image (a Shipwright source bundle), pinned by digest."""

    provider: Literal["oci"]
    oci: OciRef


def _code_provider(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("provider", "datarobot"))
    return str(getattr(value, "provider", "datarobot"))


# `provider` tells them apart; untagged means the seed's `datarobot` shape.
CodeRef = Annotated[
    Annotated[DataRobotSource, Tag("datarobot")]
    | Annotated[GitSource, Tag("git")]
    | Annotated[OciSource, Tag("oci")],
    Discriminator(_code_provider),
]


class ProvidedDockerfile(Model):
    """The Dockerfile is part of the source code."""

    source: Literal["provided"] = "provided"
    path: str = Field("./Dockerfile", description="Path of the Dockerfile in the source code.")


class GeneratedDockerfile(Model):
    """A Dockerfile generated from an execution environment."""

    source: Literal["generated"] = "generated"
    execution_environment_id: str
    execution_environment_version_id: str
    entrypoint: list[str] = Field(min_length=1, max_length=MAX_ARGS)


def _dockerfile_source(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("source", "provided"))
    return str(getattr(value, "source", "provided"))


Dockerfile = Annotated[
    Annotated[ProvidedDockerfile, Tag("provided")]
    | Annotated[GeneratedDockerfile, Tag("generated")],
    Discriminator(_dockerfile_source),
]


class ImageBuildConfig(Model):
    """Server-side image build from source code, on the cluster's build engine (a Shipwright
    BuildRun, else a Job running rootless BuildKit). The built image is reported in status,
    never written back here."""

    code_ref: CodeRef | None = Field(
        None, description="Source code reference; required before a build or lock.")
    dockerfile: Dockerfile = Field(default_factory=ProvidedDockerfile)


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


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


# Kubernetes quantities arrive as strings or numbers (`nvidia.com/gpu: 1`).
Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class Resources(Model):
    limits: dict[str, Quantity] | None = Field(None, max_length=MAX_MAP)
    requests: dict[str, Quantity] | None = Field(None, max_length=MAX_MAP)


class RuntimeOverride(Model):
    """Per-group runtime settings. Without `replicas` the operator leaves the replica count to
    whoever sets it (an HPA, `kubectl scale`)."""

    replicas: int | None = Field(None, ge=0)
    resources: Resources | None = None
    node_selector: dict[str, str] | None = Field(None, max_length=MAX_MAP)
    tolerations: list[Toleration] | None = Field(None, max_length=MAX_LIST)


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
