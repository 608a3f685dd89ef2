"""Hypothesis strategies drawn from the CRD's own OpenAPI schema (the one `crds/` holds, built
from the pydantic model): documents the API server would store, before the operator's own
cross-field rules. Lists and maps are kept short so an example stays cheap; strings keep their
pattern and length bounds, and unpatterned strings range over all of unicode.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

MAX_LIST = 3
MAX_TEXT = 80


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(min_value=0, max_value=65535),
                         st.text(min_size=1, max_size=20))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _object(schema)
    if kind == "array":
        items = from_schema(schema.get("items", {}))
        return st.lists(items, min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", MAX_LIST), MAX_LIST))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**31)),
                           max_value=schema.get("maximum", 2**31 - 1))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"),
                         allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    return st.none()


def _object(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required})
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}", fullmatch=True),
                               from_schema(extra),
                               max_size=min(schema.get("maxProperties", MAX_LIST), MAX_LIST))
    return st.fixed_dictionaries({})


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", MAX_TEXT)
    if "pattern" in schema:
        # Names at their longest are an edge worth reaching: lengths are not capped below
        # the schema's own bound.
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, MAX_TEXT))
