"""`artifact-operator validate` and `crd`, run as the installed console script."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from artifact_operator.api.crd import APPROVAL_CRD_FILE, CRD_FILE

from ..support.builders import container, primary
from .artifact_cases import C0, C1, artifact, groups
from .test_validation import report, run_cli

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, *docs: object, name: str = "a.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_valid_file_exits_zero(tmp_path: Path) -> None:
    result = run_cli("validate", "-f", write(tmp_path, artifact(
        {"containerGroups": groups(primary())}, "web")))
    assert (result.returncode, result.stdout) == (0, "Artifact web: valid\n")


def test_every_violation_of_a_file_is_reported_in_one_run(tmp_path: Path) -> None:
    doc = artifact({
        "type": "service", "lifecycle": "sealed", "templateId": "t",
        "runtime": {"batch": {"replicas": 1}},
        "containerGroups": groups(
            container(primary=True, readinessProbe={"port": 8080}),
            container(port=80, environmentVars=[{"name": "A", "value": "1"},
                                                {"name": "A", "source": "dr-api-token"}])),
    }, "web")
    result = run_cli("validate", "-f", write(tmp_path, doc))
    assert result.returncode == 1
    assert report(result.stdout)["web"] == [
        f"{C0}.port: a primary container must set port",
        f"{C0}.readinessProbe.path: field required",
        f"{C1}.environmentVars[1].name: duplicate environment variable name 'A'",
        f"{C1}.name: duplicate container name 'app'",
        f"{C1}.port: Input should be greater than or equal to 1024",
        f"{C1}.port: a non-primary container must not set port",
        "spec.lifecycle: Input should be 'draft' or 'locked'",
        "spec.runtime.batch: runtime key 'batch' does not name a container group",
        "spec.templateId: templateId is only allowed with type nim",
    ]
    assert result.stdout.startswith("Artifact web: 9 violation(s)\n")


def test_multi_document_file_reports_each_artifact(tmp_path: Path) -> None:
    good = artifact({"containerGroups": groups(primary())}, "good")
    bad = artifact({"containerGroups": groups(container(primary=True))}, "bad")
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    worse = artifact({"type": "nim", "containerGroups": groups(container())}, "worse")
    result = run_cli("validate", "-f", write(tmp_path, good, bad, other, worse))
    assert result.returncode == 1
    assert report(result.stdout) == {
        "good": [],
        "bad": [f"{C0}.port: a primary container must set port"],
        "worse": ["spec.containerGroups[0].containers: each container group of a nim "
                  "artifact needs a primary container"],
    }
    assert "cm" not in result.stdout


def test_stdin_and_directories(tmp_path: Path) -> None:
    text = yaml.safe_dump(artifact({}, "piped"))
    result = run_cli("validate", "-f", "-", stdin=text)
    assert (result.returncode, result.stdout) == (0, "Artifact piped: valid\n")
    write(tmp_path, artifact({}, "one"), name="one.yaml")
    write(tmp_path, artifact({"type": "x"}, "two"), name="two.yml")
    result = run_cli("validate", "-f", str(tmp_path))
    assert result.returncode == 1
    assert report(result.stdout) == {"one": [], "two": ["spec.type: Input should be 'service' "
                                                        "or 'nim'"]}


def test_unreadable_or_empty_input_is_an_error(tmp_path: Path) -> None:
    missing = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = run_cli("validate", "-f", str(broken))
    assert result.returncode == 2 and "cannot read" in result.stderr
    none = run_cli("validate", "-f", write(tmp_path, {"kind": "ConfigMap"}, name="cm.yaml"))
    assert none.returncode == 2 and "no Artifact" in none.stderr


def test_crd_command_prints_the_checked_in_crd(tmp_path: Path) -> None:
    checked_in = "---\n".join(
        (REPO / "crds" / name).read_text() for name in (CRD_FILE, APPROVAL_CRD_FILE))
    printed = run_cli("crd")
    assert (printed.returncode, printed.stdout) == (0, checked_in)
    written = run_cli("crd", "-o", str(tmp_path))
    assert written.returncode == 0
    for name in (CRD_FILE, APPROVAL_CRD_FILE):
        assert (tmp_path / name).read_text() == (REPO / "crds" / name).read_text()


def test_readme_validate_example_is_true(tmp_path: Path) -> None:
    """The README's "Validate" section shows a file and the output for it: both must hold."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Validate", 1)[1].split("\n## ", 1)[0]
    manifest = re.search(r"```yaml\n(.*?)```", section, re.S)
    shown = re.search(r"```\n\$ artifact-operator validate -f bad.yaml\n(.*?)\$ echo \$\?\n"
                      r"(\d+)\n```", section, re.S)
    assert manifest and shown, "README's Validate section lost its example"
    (tmp_path / "bad.yaml").write_text(manifest.group(1))
    result = run_cli("validate", "-f", str(tmp_path / "bad.yaml"))
    assert result.stdout == shown.group(1)
    assert result.returncode == int(shown.group(2))
