"""The admission decisions, pure: what a request breaks, and what becomes of an approval.

`review` says which rules a CREATE, UPDATE or DELETE of an Artifact breaks: `violations` for
anyone (every rule of the spec, all at once; a locked spec never changes or goes back to
draft) and `admin_only` (deleting a locked artifact, setting elevated fields),
which stand unless the requester is an admin. `approval_decision` says what the mutating
webhook does with the `workload.dev/elevated-approval` annotation; only `ask` needs to know
whether the requester is an admin, and `annotation_after` finishes the decision with that.
The webhook server (`webhook/server.py`) asks the API server the questions these cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from artifact_operator.api.models import API_GROUP, PLURAL
from artifact_operator.api.raw import as_dict
from artifact_operator.api.rules import Violation, order
from artifact_operator.api.validation import format_violations, validate
from artifact_operator.logic.approval import ANNOTATION
from artifact_operator.logic.elevated import elevated_content, elevated_paths

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


class Approval(Enum):
    keep = "keep"  # leave the annotation as the request has it
    clear = "clear"  # remove it: nothing elevated is left to approve
    ask = "ask"  # elevated fields or the annotation changed: only an admin decides


@dataclass(frozen=True)
class ApprovalDecision:
    action: Approval
    given: str | None = None  # the annotation in the request
    previous: str | None = None  # the annotation stored before it


def approval_decision(operation: str, old: Mapping[str, Any] | None,
                      new: Mapping[str, Any]) -> ApprovalDecision:
    given = as_dict(as_dict(new.get("metadata")).get("annotations")).get(ANNOTATION)
    previous = as_dict(as_dict((old or {}).get("metadata")).get("annotations")).get(ANNOTATION)
    content = elevated_content(as_dict(new.get("spec")))
    if not content:
        return ApprovalDecision(Approval.clear if given is not None else Approval.keep,
                                given, previous)
    # Re-decide only when the elevated fields or the annotation change: a metadata write by
    # anyone else (the operator labelling the artifact) keeps the standing approval.
    asked = (operation == "CREATE" or old is None or given != previous
             or content != elevated_content(as_dict(old.get("spec"))))
    return ApprovalDecision(Approval.ask if asked else Approval.keep, given, previous)


def annotation_after(decision: ApprovalDecision, *, admin: bool,
                     signature: str | None) -> str | None:
    """The annotation to store after an `ask`: an admin's request gets the signature of what
    it asks for; anyone else's keeps what was stored (nobody else sets or changes it)."""
    return signature if admin else decision.previous
