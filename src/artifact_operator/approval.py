"""Admin approval of elevated securityContext fields, checkable without the webhook.

An elevated field (`capabilities.add`, `allowPrivilegeEscalation: true`, seccomp `Unconfined`)
runs only when an admin approved it. The mutating webhook records an admin's approval in the
annotation `workload.dev/elevated-approval`: an HMAC-SHA256, under a key only the operator
holds, of the artifact's namespace and name and the canonical JSON of its elevated fields.
The operator renders elevated fields only when the annotation verifies against the spec it
is about to render, so the rule holds even where the webhook is not installed (fail closed):
a user can store elevated fields, but cannot forge the annotation that makes them run.

What is signed, per container with an elevated field: its group, its name, its image and the
elevated values. An approval is therefore for that container running that image; a changed
image, a new capability or a renamed container needs a new approval. The uid is left out so
an artifact restored from a backup or re-applied by GitOps keeps its approval.

Without a configured key nothing is ever approved.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .naming import PREFIX
from .rules import container_name

log = logging.getLogger(__name__)

ANNOTATION = f"{PREFIX}/elevated-approval"
_SCHEME = "hmac-sha256:"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def iter_elevated(spec: Any) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(field paths, signed entry) per container that sets an elevated field.

    Reads the raw spec defensively, so the webhook can use it on a spec that fails validation.
    """
    for gi, group in enumerate(_list(_dict(spec).get("containerGroups"))):
        group = _dict(group)
        for ci, container in enumerate(_list(group.get("containers"))):
            container = _dict(container)
            sc = _dict(container.get("securityContext"))
            base = f"spec.containerGroups[{gi}].containers[{ci}].securityContext"
            paths: list[str] = []
            entry: dict[str, Any] = {}
            add = _list(_dict(sc.get("capabilities")).get("add"))
            if add:
                paths.append(f"{base}.capabilities.add")
                entry["capabilitiesAdd"] = add
            if sc.get("allowPrivilegeEscalation") is True:
                paths.append(f"{base}.allowPrivilegeEscalation")
                entry["allowPrivilegeEscalation"] = True
            if _dict(sc.get("seccompProfile")).get("type") == "Unconfined":
                paths.append(f"{base}.seccompProfile.type")
                entry["seccompProfile"] = "Unconfined"
            if entry:
                entry.update(group=group.get("name", "default"),
                             container=container_name(container, ci),
                             image=container.get("imageUri"))
                yield paths, entry


def elevated_paths(spec: Any) -> list[str]:
    return [path for paths, _ in iter_elevated(spec) for path in paths]


def elevated_content(spec: Any) -> list[dict[str, Any]]:
    """What an approval covers; empty when the spec asks for nothing elevated."""
    return [entry for _, entry in iter_elevated(spec)]


def _message(namespace: str, name: str, content: list[dict[str, Any]]) -> bytes:
    doc = {"namespace": namespace, "name": name, "elevated": content}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class ApprovalSettings(BaseSettings):
    """The approval key: `ARTIFACT_OPERATOR_APPROVAL_KEY`, or a file named by
    `ARTIFACT_OPERATOR_APPROVAL_KEY_FILE` (a mounted Secret, shared by every replica)."""

    model_config = SettingsConfigDict(env_prefix="ARTIFACT_OPERATOR_", frozen=True,
                                      extra="ignore")

    approval_key: SecretStr | None = Field(None, description="HMAC key for approvals.")
    approval_key_file: Path | None = Field(None, description="File holding the HMAC key.")


class Approver:
    """Signs and verifies approvals. Holds the key; never logs it or a signature."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key or None

    @classmethod
    def from_settings(cls, settings: ApprovalSettings | None = None) -> Approver:
        settings = settings or ApprovalSettings()
        key: bytes | None = None
        if settings.approval_key is not None:
            key = settings.approval_key.get_secret_value().encode()
        elif settings.approval_key_file is not None:
            try:
                key = settings.approval_key_file.read_bytes().strip()
            except OSError as exc:
                log.warning("cannot read the approval key file %s: %s",
                            settings.approval_key_file, exc.strerror)
        if not key:
            log.warning("no approval key configured (ARTIFACT_OPERATOR_APPROVAL_KEY or "
                        "ARTIFACT_OPERATOR_APPROVAL_KEY_FILE): elevated securityContext fields "
                        "are never rendered")
        return cls(key)

    @property
    def configured(self) -> bool:
        return self._key is not None

    def sign(self, namespace: str, name: str, spec: Any) -> str | None:
        """The annotation value approving `spec`'s elevated fields, or None when there is
        nothing to approve or no key to approve with."""
        content = elevated_content(spec)
        if not content or self._key is None:
            return None
        digest = hmac.new(self._key, _message(namespace, name, content), hashlib.sha256)
        return _SCHEME + digest.hexdigest()

    def verify(self, body: Mapping[str, Any]) -> bool:
        """Whether the artifact's annotation approves exactly the elevated fields it has now."""
        meta = _dict(body.get("metadata"))
        given = _dict(meta.get("annotations")).get(ANNOTATION)
        if not isinstance(given, str):
            return False
        expected = self.sign(str(meta.get("namespace")), str(meta.get("name")), body.get("spec"))
        return expected is not None and hmac.compare_digest(given, expected)
