"""Approval of elevated container groups: what an approval covers, and whether one holds. Pure.

An elevated field (`capabilities.add`, `allowPrivilegeEscalation: true`, seccomp `Unconfined`)
runs only while an `ArtifactApproval` (api/approval.py), which only admin roles may write,
names this artifact's uid and holds the group's current digest. The digest covers everything
that decides what the group's pods run, so any later change, by anyone, makes the approval
stale:

- every container of the group, as the spec has it after defaults (image, entrypoint, env,
  port, primary, probes, securityContext, build config); not its `description`;
- the group's runtime overrides (resources, nodeSelector, tolerations), but not `replicas`:
  scaling runs more of the same pods;
- the artifact's `type` and `storage` (they decide mounts, volumes and the rollout).

Left out: the display name, description, lifecycle, repository and templateId (they change no
pod), other groups (each group is approved on its own), labels and annotations.

`decide` turns the approvals found for an artifact into one `Grant` per elevated group.
`LegacyApprover` verifies the HMAC annotation of the previous scheme, so artifacts approved
that way keep running until their next change (the reconciler enforces "until").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.elevated import elevated_content, elevated_groups
from artifact_operator.api.models import ContainerGroup
from artifact_operator.api.naming import PREFIX, container_name
from artifact_operator.api.raw import as_dict, as_list

# The annotation of the previous, HMAC-based scheme: only verified, never written any more.
LEGACY_ANNOTATION = f"{PREFIX}/elevated-approval"
_LEGACY_SCHEME = "hmac-sha256:"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sha(doc: Any) -> str:
    return "sha256:" + hashlib.sha256(_canonical(doc)).hexdigest()


def group_parts(artifact: Artifact, group: ContainerGroup) -> dict[str, Any]:
    """What the digest of `group` covers, by part name (see the module)."""
    parts: dict[str, Any] = {}
    for i, container in enumerate(group.containers):
        doc = container.dump()
        doc.pop("description", None)
        parts[f"container/{container_name(container.name, i)}"] = {"index": i, **doc}
    runtime = (artifact.spec.runtime or {}).get(group.name)
    runtime_doc = runtime.dump() if runtime is not None else {}
    runtime_doc.pop("replicas", None)
    parts["runtime"] = runtime_doc
    parts["type"] = str(artifact.spec.type)
    parts["storage"] = artifact.spec.storage.dump() if artifact.spec.storage else None
    return parts


@dataclass(frozen=True)
class GroupDigest:
    digest: str
    parts: dict[str, str]  # part name -> its own digest, to say what changed


def group_digest(artifact: Artifact, group: ContainerGroup) -> GroupDigest:
    parts = group_parts(artifact, group)
    return GroupDigest(_sha({"group": group.name, "parts": parts}),
                       {name: _sha(value) for name, value in parts.items()})


def approval_spec(artifact: Artifact) -> dict[str, Any]:
    """The ArtifactApproval spec approving every elevated group of `artifact` as it is now
    (what `kubectl artifact approve` writes). Empty `groups` when nothing is elevated."""
    elevated = elevated_groups(artifact.spec.dump())
    groups = []
    for group in artifact.spec.container_groups:
        if group.name not in elevated:
            continue
        found = group_digest(artifact, group)
        groups.append({"name": group.name, "digest": found.digest, "parts": found.parts,
                       "elevated": elevated[group.name]})
    return {"artifact": {"name": artifact.name, "uid": artifact.metadata.uid},
            "groups": groups}


class Grant(StrEnum):
    approved = "approved"  # an approval for this uid holds the group's current digest
    legacy = "legacy"  # approved by the old HMAC annotation: only what runs now is covered
    stale = "stale"  # an approval exists but no longer matches: keep what runs
    missing = "missing"  # never approved: not rendered


@dataclass(frozen=True)
class Decision:
    grant: Grant
    message: str  # for status: what is missing or what changed

    @property
    def renders_elevated(self) -> bool:
        return self.grant in (Grant.approved, Grant.legacy)


def _changed(approved: Mapping[str, Any], now: GroupDigest) -> list[str]:
    before = {str(k): str(v) for k, v in as_dict(approved).items()}
    if not before:
        return []
    names = sorted(set(before) | set(now.parts))
    return [n for n in names if before.get(n) != now.parts.get(n)]


def decide(artifact: Artifact, approvals: Sequence[Mapping[str, Any]],
           legacy: bool = False) -> dict[str, Decision]:
    """One decision per container group with elevated fields (groups without are not in it).

    `approvals`: the ArtifactApprovals of the artifact's namespace that name it (raw bodies).
    `legacy`: whether the old HMAC annotation verifies; it counts only for groups no
    ArtifactApproval mentions.
    """
    elevated = elevated_groups(artifact.spec.dump())
    uid = artifact.metadata.uid
    out: dict[str, Decision] = {}
    for group in artifact.spec.container_groups:
        if group.name not in elevated:
            continue
        fields = ", ".join(elevated[group.name])
        now = group_digest(artifact, group)
        entries = []  # (approval's uid, group entry) for this group, in every approval
        for body in approvals:
            spec = as_dict(body.get("spec"))
            for entry in as_list(spec.get("groups")):
                entry = as_dict(entry)
                if entry.get("name") == group.name:
                    entries.append((as_dict(spec.get("artifact")).get("uid"), entry))
        if any(u == uid and e.get("digest") == now.digest for u, e in entries):
            out[group.name] = Decision(Grant.approved, "")
            continue
        if entries:
            same_uid = [e for u, e in entries if u == uid]
            if not same_uid:
                what = ("the approval is for another artifact of the same name (uid "
                        "differs); this one was never approved")
            else:
                changed = _changed(as_dict(same_uid[-1].get("parts")), now)
                what = ("changed since the approval: " + ", ".join(changed)) if changed \
                    else "the group changed since the approval"
            out[group.name] = Decision(
                Grant.stale, f"group {group.name}: approval is stale ({what}); what runs is "
                "kept until an admin approves again (kubectl artifact approve "
                f"{artifact.name})")
            continue
        if legacy:
            out[group.name] = Decision(Grant.legacy, "")
            continue
        out[group.name] = Decision(
            Grant.missing, f"group {group.name}: elevated fields need an admin's approval "
            f"({fields}); the group is not rendered until an admin approves it "
            f"(kubectl artifact approve {artifact.name})")
    return out


class LegacyApprover:
    """Verifies the HMAC annotation of the previous scheme. Holds the key; never logs it or
    a signature. Without a key nothing verifies."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key or None

    @property
    def configured(self) -> bool:
        return self._key is not None

    def _signature(self, namespace: str, name: str, spec: Any) -> str | None:
        content = elevated_content(spec)
        if not content or self._key is None:
            return None
        doc = {"namespace": namespace, "name": name, "elevated": content}
        return _LEGACY_SCHEME + hmac.new(self._key, _canonical(doc), hashlib.sha256).hexdigest()

    def verify(self, body: Mapping[str, Any]) -> bool:
        """Whether the artifact's annotation approves exactly the elevated fields it has now."""
        meta = as_dict(body.get("metadata"))
        given = as_dict(meta.get("annotations")).get(LEGACY_ANNOTATION)
        if not isinstance(given, str):
            return False
        expected = self._signature(str(meta.get("namespace")), str(meta.get("name")),
                                   body.get("spec"))
        return expected is not None and hmac.compare_digest(given, expected)
