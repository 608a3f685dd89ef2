from __future__ import annotations

from pathlib import Path

import yaml

from artifact_operator.crd import CRD_FILE, build_crd, render_crd_yaml

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_crd_matches_the_models() -> None:
    checked_in = (REPO / "crds" / CRD_FILE).read_text()
    assert checked_in == render_crd_yaml(), "crds/ is stale: run `make crd`"


def _walk(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _walk(value, f"{path}[{i}]")
    return out


def test_crd_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "const", "title", "$defs"}
    for path, node in _walk(schema["properties"]["spec"]):
        if ".properties" in path and path.endswith(tuple(["properties"])):
            continue
        assert not (forbidden & set(node)) or path.endswith(".properties"), path
        if "properties" in node:
            assert node.get("type") == "object", f"{path} has properties but no type object"
            assert "additionalProperties" not in node, path


def test_crd_names_columns_and_status() -> None:
    crd = build_crd()
    assert crd["spec"]["group"] == "workload.dev"
    assert crd["spec"]["names"]["shortNames"] == ["art"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Type", "Lifecycle", "Version", "Phase", "Ready", "Endpoint", "Age"]


def test_cross_field_rules_are_in_the_crd() -> None:
    text = render_crd_yaml()
    doc = yaml.safe_load(text)
    rules = [node["x-kubernetes-validations"] for _, node in _walk(doc)
             if "x-kubernetes-validations" in node]
    assert sum(len(r) for r in rules) >= 10
