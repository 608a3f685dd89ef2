"""Which Secrets an artifact may read, and what it says when it may not. Pure.

A `dr-credential` env var becomes a `secretKeyRef`, and the pods run with the artifact's
namespace's Secrets at hand: without a rule, an editor could mount any Secret of the namespace
(another artifact's API token, a service-account token) into a pod they control. So a Secret
is usable only when it opts in (label `workload.dev/usable-by-artifacts: "true"`), is not a
service-account token, and is not an artifact's own token Secret (ours: managed by the
operator, or owned by an Artifact). The operator renders a group only while every Secret its
containers reference is usable; the webhook refuses a new reference to an unusable one.

What is said about an unusable Secret is the same whether it is missing or exists without
opting in: a status or an admission message is read by people who may not read Secrets, and
must not tell them which Secrets exist.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.base import API_GROUP
from artifact_operator.api.raw import as_dict, as_list

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
# Distinct Secrets the webhook looks up for one request; beyond it the operator still
# enforces the rule, the webhook just stops answering early.
MAX_ADMISSION_READS = 16


def usable(secret: Mapping[str, Any] | None) -> bool:
    """May an artifact's `dr-credential` read this Secret (a stored or slim Secret)?"""
    if secret is None:
        return False
    meta = as_dict(secret.get("metadata"))
    labels = as_dict(meta.get("labels"))
    if labels.get(naming.LABEL_USABLE) != "true":
        return False
    if secret.get("type") == SA_TOKEN_TYPE:
        return False
    if labels.get(naming.LABEL_MANAGED_BY) == naming.MANAGER:
        return False  # an artifact's token Secret, or another child of ours
    return not any(
        as_dict(ref).get("kind") == "Artifact"
        and str(as_dict(ref).get("apiVersion", "")).startswith(f"{API_GROUP}/")
        for ref in as_list(meta.get("ownerReferences")))


@dataclass(frozen=True)
class CredentialRef:
    """One `dr-credential` env var: where it is, and what it reads."""

    path: str  # spec.containerGroups[g].containers[c].environmentVars[e]
    group: str
    container: str
    env: str
    secret: str
    key: str

    def user(self) -> str:
        return f"env {self.env} of container {self.container} in group {self.group}"


def credential_refs(spec: Any) -> Iterator[CredentialRef]:
    """Every `dr-credential` env var of a raw spec (read defensively: the webhook sees specs
    that may not validate)."""
    for gi, group in enumerate(as_list(as_dict(spec).get("containerGroups"))):
        group = as_dict(group)
        for ci, container in enumerate(as_list(group.get("containers"))):
            container = as_dict(container)
            for ei, env in enumerate(as_list(container.get("environmentVars"))):
                env = as_dict(env)
                secret = env.get("drCredentialId")
                if env.get("source") != "dr-credential" or not isinstance(secret, str):
                    continue
                yield CredentialRef(
                    path=f"spec.containerGroups[{gi}].containers[{ci}].environmentVars[{ei}]",
                    group=str(group.get("name", "default")),
                    container=naming.container_name(container.get("name"), ci),
                    env=str(env.get("name", "")), secret=secret, key=str(env.get("key", "")))


def uses_api_token(spec: Any) -> bool:
    return any(as_dict(env).get("source") == "dr-api-token"
               for group in as_list(as_dict(spec).get("containerGroups"))
               for container in as_list(as_dict(group).get("containers"))
               for env in as_list(as_dict(container).get("environmentVars")))


def referenced_secrets(spec: Any) -> set[str]:
    return {ref.secret for ref in credential_refs(spec)}


def new_refs(old_spec: Any, new_spec: Any) -> list[CredentialRef]:
    """The references of `new_spec` to Secrets `old_spec` did not reference: what an update
    adds (on a create, all). Unchanged references are the operator's to judge, so an edit of
    an unrelated field never fails because a Secret changed since."""
    before = referenced_secrets(old_spec) if old_spec is not None else set()
    return [ref for ref in credential_refs(new_spec) if ref.secret not in before]


def not_usable(secret: str) -> str:
    """The one sentence for a Secret that is missing or does not opt in (see the module)."""
    return (f"Secret {secret} does not exist or is not usable by artifacts (it needs the "
            f"label {naming.LABEL_USABLE}=true, and must be neither a service-account token "
            "nor an artifact's token)")


def token_conflict(secret: str) -> str:
    return (f"Secret {secret} already exists and is not this artifact's; its groups that use "
            "dr-api-token are not rendered, and the Secret is never taken over (delete it, "
            "or rename the artifact)")


@dataclass(frozen=True)
class SecretFacts:
    """What rendering needs to know of the namespace's Secrets (the controller finds out)."""

    not_usable: frozenset[str] = frozenset()  # referenced credential Secrets not usable
    token_conflict: bool = False  # <artifact>-api-token exists and is not this artifact's
