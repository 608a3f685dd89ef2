"""What every part of the Artifact's schema shares: the resource's names, the naming rules
Kubernetes applies to what we render, the bounds we add, and the `Model` base class."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Discriminator
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


def tagged_by(key: str, default: str) -> Discriminator:
    """The discriminator of a union of models told apart by the value of `key` (its `Tag`);
    without `key`, `default`. Reads a raw mapping (validation) and a model (serialization)
    alike."""

    def tag(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get(key, default))
        return str(getattr(value, key, default))

    return Discriminator(tag)


class Model(BaseModel):
    """camelCase on the wire, unknown fields refused (the seed's `additionalProperties: false`)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True,
        validate_default=True,
    )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

