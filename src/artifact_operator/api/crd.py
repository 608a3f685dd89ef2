"""The Artifact CRD, generated from the pydantic models.

pydantic emits JSON Schema; Kubernetes wants a structural OpenAPI v3 subset. The conversion
inlines `$ref`s, drops titles, turns `Optional[X]` into X (the API server prunes nulls),
`Literal` into `enum`, int-or-string unions into `x-kubernetes-int-or-string`, and merges the
discriminated unions (env vars, dockerfiles) into one object whose per-kind rules are CEL rules.
`additionalProperties: false` is dropped: a structural schema prunes unknown fields instead.
"""

from __future__ import annotations

import copy
from typing import Any

from artifact_operator.api.approval import (
    APPROVAL_KIND,
    APPROVAL_PLURAL,
    APPROVAL_SINGULAR,
    ArtifactApprovalSpec,
)
from artifact_operator.api.base import API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAMES, SINGULAR
from artifact_operator.api.models import ArtifactSpec
from artifact_operator.api.rules import CEL_RULES
from artifact_operator.api.status import ArtifactStatus

Schema = dict[str, Any]

PRINTER_COLUMNS = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Lifecycle", "type": "string", "jsonPath": ".spec.lifecycle"},
    {"name": "Version", "type": "integer", "jsonPath": ".status.version"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Union members whose defaults must not be applied by the server to the merged schema
# (a `path` default would land on generated dockerfiles too).
_KEEP_KEYS = {"type", "description", "properties", "items", "required", "enum", "default",
              "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern",
              "format", "additionalProperties", "maxProperties", "x-kubernetes-int-or-string",
              "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
              "x-kubernetes-preserve-unknown-fields"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _resolve(target, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _tag_of(members: list[Schema]) -> str:
    """The discriminator of a tagged union: the property every member has with one value
    (`source` of env vars and dockerfiles, `provider` of code references)."""
    for name in ("source", "provider"):
        if all(len(m.get("properties", {}).get(name, {}).get("enum", [])) == 1
               for m in members):
            return name
    raise ValueError("a tagged union without a single-valued `source` or `provider`")


def _merge_union(members: list[Schema], default: Any) -> Schema:
    """One object schema for a tagged union: all properties, only the common required ones."""
    tag = _tag_of(members)
    props: dict[str, Schema] = {}
    required: set[str] | None = None
    tags: list[str] = []
    for member in members:
        for name, prop in member.get("properties", {}).items():
            if name == tag:
                tags.extend(prop["enum"])
                continue
            # A member's own defaults (the datarobot `type`) would be applied to the others.
            prop = {k: v for k, v in prop.items() if k != "default"}
            props.setdefault(name, prop)
        req = set(member.get("required", [])) - {tag}
        required = req if required is None else required & req
    source: Schema = {"type": "string", "enum": tags}
    if default is not None:
        source["default"] = default
    merged: Schema = {"type": "object", "properties": {tag: source, **props}}
    if required:
        merged["required"] = sorted(required)
    return merged


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    node.pop("title", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "anyOf" in node or "oneOf" in node:
        members = node.pop("anyOf", None) or node.pop("oneOf")
        node.pop("discriminator", None)
        non_null = [m for m in members if m.get("type") != "null"]
        types = sorted(m.get("type", "") for m in non_null)
        if types == ["integer", "string"]:
            node["x-kubernetes-int-or-string"] = True
        elif len(non_null) == 1:
            inner = _structural(non_null[0])
            node = {**inner, **{k: v for k, v in node.items() if k not in ("default",)},
                    **({"default": node["default"]} if node.get("default") is not None else {})}
        else:
            merged = _merge_union([_structural(m) for m in non_null], _union_default(non_null))
            node = {**merged, **{k: v for k, v in node.items() if k == "description"}}
    if node.get("default", 0) in (None, ""):
        # A 1.20 API server reads an empty-string default as null and refuses the CRD; the
        # model supplies "" anyway.
        node.pop("default")
    if node.get("additionalProperties") is False or \
            node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)  # pruned (or kept whole) by the server
    if "properties" in node:
        node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
    if "items" in node:
        node["items"] = _structural(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"])
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    return {k: v for k, v in node.items() if k in _KEEP_KEYS}


def _union_default(members: list[Schema]) -> Any:
    # An untagged value means the first member whose discriminator has a default (the
    # models' Discriminator functions say the same).
    tag = _tag_of([_structural(m) for m in members])
    for member in members:
        source = member.get("properties", {}).get(tag, {})
        if "default" in source:
            return source["default"]
    return None


def _schema_of(model: type[Any]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: Schema = _structural(_resolve(raw, defs))
    return schema


def _node(schema: Schema, path: tuple[str, ...]) -> Schema:
    node = schema
    for part in path:
        if part == "[]":
            node = node["items"]
        elif part == "{}":
            node = node["additionalProperties"]
        else:
            node = node["properties"][part]
    return node


def openapi_schema() -> Schema:
    spec = _schema_of(ArtifactSpec)
    # Variants whose discriminator has no default in the seed still need one for CEL to read.
    spec_root: Schema = {
        "type": "object",
        "description": "An Artifact: container groups the operator runs as Deployments and "
        "Services, with model-weight storage for NIM artifacts.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {**spec, "default": {}},
            "status": _schema_of(ArtifactStatus),
        },
    }
    conditions = spec_root["properties"]["status"]["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    for rule in CEL_RULES:
        _node(spec_root, rule.node).setdefault("x-kubernetes-validations", []).append(
            {"rule": rule.rule, "message": rule.message})
    return spec_root


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": SINGULAR, "shortNames": SHORT_NAMES,
                      "categories": ["all", "workload"]},
            "scope": "Namespaced",
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": openapi_schema()},
            }],
        },
    }


APPROVAL_PRINTER_COLUMNS = [
    {"name": "Artifact", "type": "string", "jsonPath": ".spec.artifact.name"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_approval_crd() -> dict[str, Any]:
    """The ArtifactApproval CRD: no status, no CEL; who may write one is RBAC's business."""
    schema: Schema = {
        "type": "object",
        "description": "An admin's approval of an Artifact's elevated container groups, bound "
        "to the artifact's uid and to a digest of what each group runs.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _schema_of(ArtifactApprovalSpec),
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{APPROVAL_PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {"kind": APPROVAL_KIND, "listKind": f"{APPROVAL_KIND}List",
                      "plural": APPROVAL_PLURAL, "singular": APPROVAL_SINGULAR,
                      "categories": ["workload"]},
            "scope": "Namespaced",
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "additionalPrinterColumns": APPROVAL_PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }


CRD_FILE = f"{API_GROUP}_{PLURAL}.yaml"
APPROVAL_CRD_FILE = f"{API_GROUP}_{APPROVAL_PLURAL}.yaml"


def _yaml(crd: dict[str, Any]) -> str:
    import yaml

    header = "# Generated by `artifact-operator crd` from src/artifact_operator/api/.\n" \
             "# Do not edit: run `make crd`.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100)


def render_crd_yaml() -> str:
    return _yaml(build_crd())


def render_approval_crd_yaml() -> str:
    return _yaml(build_approval_crd())


def crd_files() -> dict[str, str]:
    """Every CRD the operator needs, by file name under crds/."""
    return {CRD_FILE: render_crd_yaml(), APPROVAL_CRD_FILE: render_approval_crd_yaml()}
