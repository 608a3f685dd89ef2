"""One validation path for the CLI, the webhook and the operator.

`validate(doc)` returns every violation of an Artifact document at once, schema errors from the
pydantic models and cross-field errors from `rules.py`, each with its field path, like the
workload API's 422 `detail` list. `parse(doc)` returns the model or raises `InvalidArtifact`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    LABEL_VALUE,
    PVC_SIZE,
    SECRET_KEY,
)
from artifact_operator.api.rules import Violation, check_spec, order

# Discriminated-union tags pydantic puts in error locations; they are not field names.
_UNION_TAGS = {"string", "dr-credential", "dr-api-token", "provided", "generated", "datarobot",
               "git", "oci"}
_PLATFORM_FIELDS = {"runAsUser", "runAsNonRoot", "runAsGroup", "fsGroup"}

# Plain words for the patterns of models.py, instead of the regular expression.
_PATTERN_MESSAGES = {
    DNS_LABEL: "must consist of lowercase letters, digits and '-', start with a letter and end "
               "with a letter or digit",
    DNS_SUBDOMAIN: "must be a Secret name: lowercase letters, digits, '-' and '.', starting and "
                   "ending with a letter or digit",
    ENV_NAME: "must be an environment variable name: letters, digits, '_', '-' and '.', not "
              "starting with a digit or '..'",
    SECRET_KEY: "must be a Secret key: letters, digits, '_', '-' and '.', not '.' and not "
                "starting with '..'",
    LABEL_VALUE: "must be a label value: letters, digits, '-', '_' and '.', starting and ending "
                 "with a letter or digit",
    PVC_SIZE: "must be a size such as 150Gi: a number followed by Mi, Gi or Ti",
}


class InvalidArtifact(ValueError):
    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        super().__init__(format_violations(self.violations))


def format_violations(violations: Sequence[Violation]) -> str:
    return "; ".join(str(v) for v in violations)


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in _UNION_TAGS and (isinstance(previous, int)
                                      or previous in ("dockerfile", "codeRef")):
            pass
        elif item in ("int", "str") and previous is not None and not isinstance(previous, int):
            pass  # a member of the int-or-string quantity union
        else:
            parts.append(("." if parts else "") + str(item))
        previous = item
    return "".join(parts)


def _message(error: dict[str, Any]) -> str:
    field = error["loc"][-1] if error["loc"] else ""
    if error["type"] == "extra_forbidden" and field in _PLATFORM_FIELDS:
        return f"{field} is set by the platform and cannot be set in an Artifact"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "literal_error" and field in ("apiVersion", "kind"):
        return f"must be {error['ctx']['expected']}"
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] in _PATTERN_MESSAGES:
        return _PATTERN_MESSAGES[error["ctx"]["pattern"]]
    if error["type"] == "union_tag_invalid":
        return f"Input should be one of {error['ctx']['expected_tags']}"
    return str(error["msg"])


def schema_violations(error: ValidationError) -> list[Violation]:
    seen: dict[str, Violation] = {}
    for e in error.errors(include_url=False):
        loc = tuple(e["loc"])
        if e["type"] == "union_tag_invalid":
            loc += ("source",)  # the discriminator is the field in error
        v = Violation(_path(loc), _message(dict(e)))
        seen.setdefault(str(v), v)
    return list(seen.values())


def validate(doc: Any) -> list[Violation]:
    """Every violation of an Artifact document (a dict as read from YAML or the API)."""
    return _validated(doc)[1]


def _validated(doc: Any) -> tuple[Artifact | None, list[Violation]]:
    """The model (when the schema holds) and every violation, from one schema pass."""
    if not isinstance(doc, dict):
        return None, [Violation("", "an Artifact must be a mapping")]
    violations: list[Violation] = []
    artifact: Artifact | None = None
    try:
        artifact = Artifact.model_validate(doc)
    except ValidationError as exc:
        violations.extend(schema_violations(exc))
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and not re.match(DNS_LABEL, name) and not any(
        v.path == "metadata.name" for v in violations
    ):
        violations.append(Violation("metadata.name", "must be a DNS label"))
    violations.extend(check_spec(doc.get("spec")))
    return artifact, _ordered(violations)


def _ordered(violations: list[Violation]) -> list[Violation]:
    unique = {str(v): v for v in violations}
    return sorted(unique.values(), key=order)


def parse(doc: dict[str, Any]) -> Artifact:
    """The validated model of an Artifact document, or `InvalidArtifact` with every violation."""
    artifact, violations = _validated(doc)
    if violations or artifact is None:
        raise InvalidArtifact(violations)
    return artifact
