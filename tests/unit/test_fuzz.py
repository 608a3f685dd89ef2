"""Property-based: Artifacts drawn from the CRD's own schema (what an API server without CEL,
such as 1.20, stores), and documents broken at random places. Each is either refused by
`validate` with a field path and a rule, or rendered into objects the Kubernetes schemas of
the oldest and newest supported versions accept; nothing else ever happens (no other
exception, from validation or from rendering)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_operator.api.crd import build_crd
from artifact_operator.api.validation import InvalidArtifact, parse
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..support.k8s_schemas import validate_all
from ..support.schema_strategy import from_schema

SPEC = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
NAMES = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


def document(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name, "namespace": "team-a", "uid": "u-1", "generation": 1},
            "spec": spec}


def refused_or_rendered(doc: dict[str, Any]) -> str:
    try:
        artifact = parse(doc)
    except InvalidArtifact as exc:
        assert exc.violations, "refused without saying why"
        for v in exc.violations:
            assert v.path.startswith(("spec", "metadata")), f"no field path: {v}"
            assert v.message.strip(), f"no rule: {v}"
        return "refused"
    validate_all(render(artifact, Settings()).objects, context=f"\nspec: {doc['spec']}")
    return "rendered"


@FUZZ
@given(name=NAMES, spec=from_schema(SPEC))
def test_what_the_schema_admits_is_refused_with_a_path_or_renders_valid_objects(
        name: str, spec: dict[str, Any]) -> None:
    refused_or_rendered(document(name, spec))


@FUZZ
@given(name=NAMES, spec=from_schema(SPEC), data=st.data())
def test_a_document_broken_anywhere_is_refused_with_a_path_or_still_valid(
        name: str, spec: dict[str, Any], data: st.DataObject) -> None:
    """One value anywhere in the spec replaced by arbitrary JSON (a wrong type, an unknown
    shape): never a crash."""
    broken = copy.deepcopy(spec)
    slots: list[tuple[Any, Any]] = []

    def collect(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            collect(value)

    collect(broken)
    if slots:
        parent, key = data.draw(st.sampled_from(slots))
        parent[key] = data.draw(JSON)
    else:
        broken[data.draw(st.text(min_size=1, max_size=8))] = data.draw(JSON)
    refused_or_rendered(document(name, broken))


def test_the_schema_strategy_reaches_both_outcomes() -> None:
    """The properties above would hold vacuously if every draw were refused (or none)."""
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(name=NAMES, spec=from_schema(SPEC))
    def draw(name: str, spec: dict[str, Any]) -> None:
        seen.add(refused_or_rendered(document(name, spec)))

    draw()
    assert seen == {"refused", "rendered"}
