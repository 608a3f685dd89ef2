"""The ArtifactApproval resource: an admin's approval of an artifact's elevated container
groups, as an object the API server authorizes.

Only the admin roles may create, update or delete one (deploy/rbac), so whether a user may
approve is decided by RBAC, with or without the webhook. It names the artifact by name and
uid (a re-created artifact of the same name is a different artifact) and carries, per
container group with elevated fields, the digest of everything that decides what the group's
pods run (`logic/approval.py` computes it; `kubectl artifact approve` writes it). The
operator renders a group's elevated fields only while an approval holds its current digest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from artifact_operator.api.artifact import ObjectMeta
from artifact_operator.api.base import DNS_LABEL, MAX_LIST, UNIQUE_BY_NAME, Model

APPROVAL_KIND = "ArtifactApproval"
APPROVAL_PLURAL = "artifactapprovals"
APPROVAL_SINGULAR = "artifactapproval"
DIGEST = r"^sha256:[a-f0-9]{64}$"


class ApprovedArtifact(Model):
    name: str = Field(max_length=63, pattern=DNS_LABEL,
                      description="The approved Artifact, in the approval's namespace.")
    uid: str = Field(min_length=1, max_length=128,
                     description="Its metadata.uid: an artifact re-created under the same "
                     "name is not approved.")


class ApprovedGroup(Model):
    name: str = Field(max_length=63, pattern=DNS_LABEL, description="The container group.")
    digest: str = Field(
        pattern=DIGEST,
        description="sha256 of the canonical JSON of everything that decides what the group's "
        "pods run: all its containers, its runtime overrides (but replicas), the artifact's "
        "type and storage.")
    parts: dict[str, str] | None = Field(
        None, max_length=MAX_LIST + 3,
        description="The digest of each part (container/NAME, runtime, type, storage), so "
        "the operator can say what changed since the approval.")
    elevated: list[str] | None = Field(
        None, max_length=MAX_LIST * 3,
        description="The elevated fields approved (for people reading it; the digest "
        "covers them).")


class ArtifactApprovalSpec(Model):
    artifact: ApprovedArtifact
    groups: list[ApprovedGroup] = Field(
        max_length=MAX_LIST, json_schema_extra=UNIQUE_BY_NAME,
        description="The approved container groups (names unique).")


class ArtifactApproval(Model):
    api_version: Literal["workload.dev/v1alpha1"] = "workload.dev/v1alpha1"
    kind: Literal["ArtifactApproval"] = "ArtifactApproval"
    metadata: ObjectMeta
    spec: ArtifactApprovalSpec
