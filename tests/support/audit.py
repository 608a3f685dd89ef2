"""Counting write requests from the API server's audit log (JSON lines, writes only).

The test control plane logs every create/update/patch/delete at Metadata level. Requests made by
the operator process carry its user agents: `artifact-operator/<version>` for its own client and
`kopf/<version>` for kopf's (which should write nothing at all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPERATOR_AGENTS = ("artifact-operator/", "kopf/")


@dataclass(frozen=True)
class Write:
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str
    code: int

    @property
    def by_operator(self) -> bool:
        return self.user_agent.startswith(OPERATOR_AGENTS)

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub} {self.namespace}/{self.name} -> {self.code}"


def _write(entry: dict[str, Any]) -> Write:
    ref = entry.get("objectRef") or {}
    return Write(
        verb=entry.get("verb", ""), resource=ref.get("resource", ""),
        subresource=ref.get("subresource", ""), namespace=ref.get("namespace", ""),
        name=ref.get("name", ""), user_agent=entry.get("userAgent", ""),
        code=int((entry.get("responseStatus") or {}).get("code", 0)))


class AuditLog:
    """Reads the audit log from a mark onwards, so a test sees only what happened since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> AuditLog:
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        return self

    def writes(self, namespace: str, *, operator_only: bool = True) -> list[Write]:
        out: list[Write] = []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                entry = json.loads(line)
                if entry.get("stage") != "ResponseComplete":
                    continue
                w = _write(entry)
                if w.namespace == namespace and (w.by_operator or not operator_only):
                    out.append(w)
        return out
