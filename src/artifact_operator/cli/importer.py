"""A workload API artifact (its JSON, as `GET /artifacts/{id}` returns it) as an Artifact
manifest. Pure: no cluster, no I/O.

Fields map as SPEC section 2's table says. What only the workload API's server sets (`id`,
timestamps, `creator`, `version`, `permissions`, `tags`, a container's `build`) has no place in
a spec and is dropped, each with a note; so are nulls, which the API writes for every unset
optional field and which mean "unset" in a manifest too.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from slugify import slugify

from artifact_operator.api.base import API_GROUP, API_VERSION, KIND
from artifact_operator.api.naming import PREFIX, fit

# Where an imported artifact came from, since its workload API id is not its name here.
ANNOTATION_IMPORTED_ID = f"{PREFIX}/imported-id"

# Set by the workload API's server; not part of what a user writes.
SERVER_FIELDS = ("id", "createdAt", "updatedAt", "creator", "version", "permissions", "tags")
_KNOWN = {"name", "description", "type", "status", "artifactRepositoryId", "spec",
          *SERVER_FIELDS}

_NOT_LABEL_CHARS = r"[^-A-Za-z0-9_.]+"


class NotAnArtifact(ValueError):
    """The JSON is not a workload API artifact at all (as opposed to an invalid one)."""


@dataclass
class Imported:
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def object_name(text: str) -> str:
    """`text` as an Artifact name (a DNS label starting with a letter, at most 63), or "".

    Transliterated to ASCII, lowercased, runs of anything else turned into '-'. A name that
    would start with a digit gets an `artifact-` prefix; one that is too long is cut and ends
    in a stable hash (as child names are), so two long names stay distinct.
    """
    slug = slugify(text)
    if not slug:
        return ""
    if not slug[0].isalpha():
        slug = f"artifact-{slug}"
    return fit(slug)


def label_value(text: str) -> str:
    """`text` as a Kubernetes label value (at most 63 of letters, digits, '-', '_', '.',
    starting and ending with a letter or digit), or "" when nothing of it is left."""
    slug = slugify(text, lowercase=False, regex_pattern=_NOT_LABEL_CHARS)
    slug = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", slug)
    return fit(slug) if slug else ""


def to_manifest(doc: Any, name: str | None = None, namespace: str | None = None) -> Imported:
    """The Artifact manifest of one workload API artifact, with notes on what was changed or
    dropped. The manifest is not validated here; `validation.validate` says what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        raise NotAnArtifact("not a workload API artifact: expected a JSON object with 'name' and "
                           "'spec' (the shape of ArtifactFormatted or InputArtifact)")
    doc = _without_nulls(doc)
    notes: list[str] = []
    dropped = [f for f in SERVER_FIELDS if f in doc and f not in ("id", "version")]
    if dropped:
        notes.append(f"dropped fields set by the workload API's server: {', '.join(dropped)}")
    if "id" in doc:
        notes.append(f"id {doc['id']} is kept in annotation {ANNOTATION_IMPORTED_ID}")
    if "version" in doc:
        notes.append(f"version {doc['version']} is not carried over: the operator numbers "
                     "locked artifacts itself (status.version)")
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        notes.append(f"dropped fields an Artifact has no place for: {', '.join(unknown)}")

    display_name = doc.get("name")
    meta_name = name or _name_from(doc)
    metadata: dict[str, Any] = {"name": meta_name}
    if namespace:
        metadata["namespace"] = namespace
    if doc.get("id"):
        metadata["annotations"] = {ANNOTATION_IMPORTED_ID: str(doc["id"])}

    api_spec = copy.deepcopy(doc["spec"])
    # The API's spec repeats the top-level type as its union discriminator.
    inner_type = api_spec.pop("type", None)
    spec: dict[str, Any] = {}
    if isinstance(display_name, str) and display_name:
        spec["displayName"] = display_name
    if doc.get("description"):
        spec["description"] = doc["description"]
    spec["type"] = doc.get("type") or inner_type or "service"
    spec["lifecycle"] = doc.get("status", "draft")
    if "artifactRepositoryId" in doc:
        repository = label_value(str(doc["artifactRepositoryId"]))
        if repository != doc["artifactRepositoryId"]:
            notes.append(f"artifactRepositoryId {doc['artifactRepositoryId']!r} became "
                         f"repository {repository!r} (a label value)")
        if repository:
            spec["repository"] = repository
    builds = 0
    for group in api_spec.get("containerGroups") or []:
        for container in (group.get("containers") or []) if isinstance(group, dict) else []:
            if isinstance(container, dict) and container.pop("build", None) is not None:
                builds += 1
    if builds:
        notes.append(f"dropped the image build record of {builds} container(s) (build)")
    spec.update(api_spec)
    manifest = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                "metadata": metadata, "spec": spec}
    return Imported(manifest, notes)


def _name_from(doc: dict[str, Any]) -> str:
    """A readable name: the display name, plus the version for a locked one (versions of one
    repository share a display name); the id when the display name has no usable letters."""
    base = object_name(str(doc.get("name") or ""))
    if base and isinstance(doc.get("version"), int):
        return fit(f"{base}-v{doc['version']}")
    return base or object_name(str(doc.get("id") or ""))
