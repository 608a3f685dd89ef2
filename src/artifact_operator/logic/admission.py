"""The admission decisions, pure: what a request breaks, and what becomes of an approval.

`review` says which rules a CREATE, UPDATE or DELETE of an Artifact breaks: `violations` for
anyone (every rule of the spec, all at once; a locked spec never changes or goes back to
draft) and `admin_only` (deleting a locked artifact, setting elevated securityContext fields),
which stand unless the requester is an admin. The webhook server (`webhook/server.py`) asks
the API server the questions these cannot.

None of this grants anything: elevated fields run only under an ArtifactApproval, which the
API server's RBAC lets only admins write (logic/approval.py). The webhook refuses early and
with every reason at once; a caller that fools it gains no more than the RBAC still allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artifact_operator.api.base import API_GROUP, PLURAL
from artifact_operator.api.elevated import elevated_content, elevated_paths
from artifact_operator.api.raw import as_dict
from artifact_operator.api.rules import Violation, order
from artifact_operator.api.validation import format_violations, validate

ELEVATE_VERB = "elevate"
ADMIN_HINT = f"only an admin (verb {ELEVATE_VERB} on {PLURAL}.{API_GROUP}) may"


@dataclass
class Review:
    """What a request breaks: `violations` for anyone, `admin_only` unless an admin asks."""

    violations: list[Violation] = field(default_factory=list)
    admin_only: list[Violation] = field(default_factory=list)


def _locked(obj: Mapping[str, Any] | None) -> bool:
    return as_dict((obj or {}).get("spec")).get("lifecycle") == "locked"


def review(operation: str, old: Mapping[str, Any] | None,
           new: Mapping[str, Any] | None) -> Review:
    out = Review()
    if operation == "DELETE":
        if _locked(old):
            out.admin_only.append(Violation(
                "spec.lifecycle", f"the artifact is locked: {ADMIN_HINT} delete it"))
        return out
    if new is None:
        return out
    new_spec = as_dict(new.get("spec"))
    old_spec = as_dict(old.get("spec")) if old is not None else None
    # Metadata-only writes (labels, annotations) of an artifact stored before a rule existed
    # pass, so the operator can still label it; the spec is checked whenever it changes.
    if old_spec is None or new_spec != old_spec:
        out.violations += validate(dict(new))
    if old_spec is not None and _locked(old):
        if new_spec.get("lifecycle") != "locked":
            out.violations.append(Violation(
                "spec.lifecycle", "a locked artifact cannot go back to draft"))
        for key in sorted(set(old_spec) | set(new_spec)):
            if key != "lifecycle" and old_spec.get(key) != new_spec.get(key):
                out.violations.append(Violation(
                    f"spec.{key}", "the spec of a locked artifact cannot change"))
        out.violations.sort(key=order)
    content = elevated_content(new_spec)
    if content and content != elevated_content(old_spec):
        out.admin_only += [Violation(path, f"an elevated field: {ADMIN_HINT} "
                                     "set it") for path in elevated_paths(new_spec)]
    return out


def message(violations: list[Violation]) -> str:
    return f"{len(violations)} violation(s): {format_violations(violations)}"
