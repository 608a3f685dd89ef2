"""Cross-field rules: `artifact-operator validate` reports each with its field path, and the
CRD's CEL twin of each rule (evaluated as a 1.25+ API server would, after defaulting) refuses
the same document."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml

from artifact_operator.api.crd import build_crd
from artifact_operator.api.validation import validate

from .artifact_cases import CROSS_FIELD, VALID, Case, artifact

CLI = str(Path(sys.executable).parent / "artifact-operator")


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def report(stdout: str) -> dict[str, list[str]]:
    """`validate` output as {artifact name: [violation lines]}."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in stdout.splitlines():
        if line.startswith("Artifact "):
            current = line.split()[1].rstrip(":")
            out[current] = []
        elif line.startswith("  "):
            out[current].append(line.strip())
    return out


@pytest.fixture(scope="module")
def cross_field_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One run of the real CLI over a file holding every case as its own document."""
    path = tmp_path_factory.mktemp("cases") / "cases.yaml"
    path.write_text(yaml.safe_dump_all([artifact(c.spec, c.id) for c in CROSS_FIELD]))
    result = run_cli("validate", "-f", str(path))
    assert result.returncode == 1, result.stderr
    return report(result.stdout)


@pytest.mark.parametrize("case", CROSS_FIELD, ids=lambda c: c.id)
def test_validate_reports_the_rule_with_its_field_path(
        case: Case, cross_field_report: dict[str, list[str]]) -> None:
    lines = cross_field_report[case.id]
    assert len(lines) == 1, lines
    path, message = lines[0].split(": ", 1)
    assert path == case.path
    assert case.message in message


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_specs_have_no_violations(name: str) -> None:
    assert validate(artifact(VALID[name])) == []


# -- the CEL twins -------------------------------------------------------------------------

def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _default(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting, as the API server does before it evaluates CEL."""
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _default(value[key], sub)
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in value:
            value[key] = _default(value[key], schema["additionalProperties"])
    elif isinstance(value, list) and "items" in schema:
        return [_default(v, schema["items"]) for v in value]
    return value


def _cel_failures(value: Any, schema: dict[str, Any], path: str) -> list[tuple[str, str]]:
    # As on a create: the API server skips transition rules (those reading oldSelf).
    failures = [(path, rule["message"]) for rule in schema.get("x-kubernetes-validations", [])
                if "oldSelf" not in rule["rule"]
                and cel.evaluate(rule["rule"], {"self": value}) is not True]
    if isinstance(value, list) and schema.get("x-kubernetes-list-type") == "map":
        # The API server's structural check of list-map keys (duplicates are refused).
        keys = [tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"])
                for item in value]
        failures += [(f"{path}[{i}]", "duplicate list-map key") for i, key in enumerate(keys)
                     if key in keys[:i]]
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key in value:
                failures += _cel_failures(value[key], sub, f"{path}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            failures += _cel_failures(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            failures += _cel_failures(item, schema["items"], f"{path}[{i}]")
    return failures


def cel_failures(spec: dict[str, Any]) -> list[tuple[str, str]]:
    schema = _schema()
    doc = _default({"spec": copy.deepcopy(spec)}, schema)
    return _cel_failures(doc["spec"], schema["properties"]["spec"], "spec")


@pytest.mark.parametrize("case", CROSS_FIELD, ids=lambda c: c.id)
def test_each_rule_has_a_cel_twin_in_the_crd(case: Case) -> None:
    failures = cel_failures(case.spec)
    assert failures, f"no CEL rule of the CRD refuses {case.id}"
    # The failing rule sits on the object that holds the field validate names.
    assert any(case.path == node or case.path.startswith((node + ".", node + "["))
               for node, _ in failures), failures


@pytest.mark.parametrize("name", sorted(VALID))
def test_cel_rules_accept_valid_specs(name: str) -> None:
    assert cel_failures(VALID[name]) == []


def test_every_cel_rule_is_exercised() -> None:
    """No CEL rule without a case: each one refuses at least one case of CROSS_FIELD (the
    transition rule has its cases in test_lock.py)."""
    seen = {message for case in CROSS_FIELD for _, message in cel_failures(case.spec)}
    all_rules = {rule["message"] for rules in _all_validations(_schema()) for rule in rules
                 if "oldSelf" not in rule["rule"]}
    assert all_rules - seen == set()


def _all_validations(node: Any) -> list[list[dict[str, str]]]:
    out: list[list[dict[str, str]]] = []
    if isinstance(node, dict):
        if "x-kubernetes-validations" in node:
            out.append(node["x-kubernetes-validations"])
        for value in node.values():
            out += _all_validations(value)
    return out


def test_cli_module_entry_point_runs_validate(tmp_path: Path) -> None:
    """`python -m artifact_operator validate` behaves like the console script."""
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(artifact(CROSS_FIELD[0].spec, "m")))
    result = subprocess.run([sys.executable, "-m", "artifact_operator", "validate", "-f",
                             str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"  {CROSS_FIELD[0].path}: " in result.stdout


def test_a_pvc_size_takes_ascii_digits_only_as_the_api_server_does() -> None:
    """Go's `\\d` (the CRD pattern on the server) is ASCII; Python's is any Unicode digit.
    Found by the fuzz sample on the cluster: `validate` passed what the server refused."""
    from artifact_operator.api.validation import InvalidArtifact, parse

    from ..support.builders import in_namespace, nim_artifact

    with pytest.raises(InvalidArtifact, match=r"spec\.storage\.pvcSize"):
        parse(in_namespace(nim_artifact("x", size="\u17e4Gi"), "ns"))
    parse(in_namespace(nim_artifact("x", size="150Gi"), "ns"))
