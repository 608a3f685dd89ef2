from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from artifact_operator.api.crd import CRD_FILE, build_crd, crd_files, render_crd_yaml

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_crd_matches_the_models() -> None:
    checked_in = (REPO / "crds" / CRD_FILE).read_text()
    assert checked_in == render_crd_yaml(), "crds/ is stale: run `make crd`"
    for name, text in crd_files().items():
        assert (REPO / "crds" / name).read_text() == text, "crds/ is stale: run `make crd`"


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


def _spec_schema() -> dict[str, Any]:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec: dict[str, Any] = schema["properties"]["spec"]
    return spec


def _at(node: dict[str, Any], path: str) -> dict[str, Any]:
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def _has(node: dict[str, Any], **expected: Any) -> bool:
    return node.items() >= expected.items()


# Where the seed's schemas have a default, the CRD has the same one (the server applies it).
SEED_DEFAULTS = {
    "type": "service",
    "lifecycle": "draft",
    "containerGroups": [],
    "containerGroups.[].name": "default",
    "containerGroups.[].containers": [],
    "containerGroups.[].containers.[].primary": False,
    "containerGroups.[].containers.[].environmentVars": [],
    "containerGroups.[].containers.[].environmentVars.[].source": "string",
    "containerGroups.[].containers.[].imageBuildConfig.codeRef.provider": "datarobot",
    "containerGroups.[].containers.[].imageBuildConfig.dockerfile.source": "provided",
    "storage.mode": "dedicatedPvc",
    **{f"containerGroups.[].containers.[].{probe}.{field}": value
       for probe in ("livenessProbe", "readinessProbe", "startupProbe")
       for field, value in (("scheme", "HTTP"), ("initialDelaySeconds", 30),
                            ("periodSeconds", 30), ("timeoutSeconds", 30),
                            ("failureThreshold", 3))},
}


def test_crd_has_the_seed_defaults() -> None:
    spec = _spec_schema()
    for path, value in SEED_DEFAULTS.items():
        assert _at(spec, path).get("default") == value, path


def test_crd_leaves_out_defaults_that_depend_on_other_fields() -> None:
    spec = _spec_schema()
    container = "containerGroups.[].containers.[]"
    # The probe port defaults to the container's port (else 8080) when rendered; a fixed 8080
    # from the server would hide the container's port.
    assert "default" not in _at(spec, f"{container}.livenessProbe.port")
    # The seed's codeRef.type default ("datarobot") holds for the datarobot provider only: from
    # the server it would land on git and oci references too (the model still supplies it).
    assert "default" not in _at(spec, f"{container}.imageBuildConfig.codeRef.type")
    # "" defaults are left to the model: a 1.20 server reads "" in a custom resource as null.
    assert "default" not in _at(spec, "description")


def test_crd_schema_constraints_match_the_seed() -> None:
    spec = _spec_schema()
    container = "containerGroups.[].containers.[]"
    assert _has(_at(spec, f"{container}.port"), minimum=1024, maximum=65535)
    assert _has(_at(spec, f"{container}.readinessProbe.port"), minimum=1, maximum=65535)
    assert _at(spec, f"{container}.readinessProbe")["required"] == ["path"]
    # The seed's `^\d+(\.\d+)?(Gi|Mi|Ti)$` as the API server (Go, ASCII `\d`) reads it,
    # spelled so that Python's Unicode `\d` reads it the same (`validate`, the webhook).
    assert _at(spec, "storage.pvcSize")["pattern"] == r"^[0-9]+(\.[0-9]+)?(Gi|Mi|Ti)$"
    assert _has(_at(spec, "displayName"), minLength=1, maxLength=5000)
    for name in ("containerGroups.[].name", f"{container}.name"):
        assert _has(_at(spec, name), maxLength=63, pattern="^[a-z]([-a-z0-9]*[a-z0-9])?$")
    assert _at(spec, f"{container}.environmentVars.[]")["required"] == ["name"]
    assert _at(spec, f"{container}.securityContext.seccompProfile")["required"] == ["type"]
    enums = {
        "type": ["service", "nim"], "lifecycle": ["draft", "locked"],
        "storage.mode": ["dedicatedPvc", "nimCache"],
        f"{container}.readinessProbe.scheme": ["HTTP", "HTTPS"],
        f"{container}.securityContext.seccompProfile.type": ["RuntimeDefault", "Unconfined",
                                                               "Localhost"],
        f"{container}.environmentVars.[].source": ["string", "dr-credential", "dr-api-token"],
        f"{container}.imageBuildConfig.dockerfile.source": ["provided", "generated"],
    }
    for path, values in enums.items():
        assert _at(spec, path)["enum"] == values, path


def test_every_cel_rule_compiles() -> None:
    import cel

    rules = [r["rule"] for _, node in _walk(build_crd())
             for r in node.get("x-kubernetes-validations", [])]  # type: ignore[union-attr]
    assert rules
    for rule in rules:
        cel.compile(rule)
