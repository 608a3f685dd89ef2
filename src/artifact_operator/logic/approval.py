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
from collections.abc import Mapping
from typing import Any

from artifact_operator.api.naming import PREFIX
from artifact_operator.api.raw import as_dict
from artifact_operator.logic.elevated import elevated_content

log = logging.getLogger(__name__)

ANNOTATION = f"{PREFIX}/elevated-approval"
_SCHEME = "hmac-sha256:"


def _message(namespace: str, name: str, content: list[dict[str, Any]]) -> bytes:
    doc = {"namespace": namespace, "name": name, "elevated": content}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Approver:
    """Signs and verifies approvals. Holds the key; never logs it or a signature."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key or None

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
        meta = as_dict(body.get("metadata"))
        given = as_dict(meta.get("annotations")).get(ANNOTATION)
        if not isinstance(given, str):
            return False
        expected = self.sign(str(meta.get("namespace")), str(meta.get("name")), body.get("spec"))
        return expected is not None and hmac.compare_digest(given, expected)
