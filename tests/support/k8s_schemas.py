"""Objects checked, strictly, against the Kubernetes OpenAPI schemas that `kubernetes-validate`
ships: those of the oldest and the newest version it has (strict: an unknown field is an
error too, so a typo in a field name cannot hide)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

VERSIONS = [all_versions()[0], all_versions()[-1]]


def validate_all(objects: Iterable[dict[str, Any]], *, skip_kinds: Collection[str] = (),
                 context: str = "") -> None:
    """Fail the test at the first object (of a kind not in `skip_kinds`) that a schema of
    VERSIONS refuses, naming the object, the version and the field; `context` is added to
    the message (e.g. the input the objects came from)."""
    for obj in objects:
        if obj["kind"] in skip_kinds:
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for "
                            f"Kubernetes {version}: {path}: {exc.message}{context}")
