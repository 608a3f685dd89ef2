"""The layers stay apart: offline commands load no operator machinery, and the import
contracts of `make lint` (import-linter, pyproject.toml) fail on an import that breaks them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "samples"
HEAVY = ("kopf", "aiohttp", "kubernetes", "prometheus_client")


@pytest.mark.parametrize("argv", [
    ["validate", "-f", str(SAMPLES)],
    ["render", "-f", str(SAMPLES / "workload_v1alpha1_artifact_service.yaml")],
    ["crd"],
])
def test_offline_commands_load_neither_kopf_nor_an_http_client(argv: list[str]) -> None:
    probe = (
        "import contextlib, io, json, sys\n"
        "from artifact_operator.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    code, loaded = json.loads(out.splitlines()[-1])
    assert code == 0
    assert loaded == [], f"`artifact-operator {argv[0]}` imported {loaded}"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("logic/render.py", "import kopf", "pure logic use no Kubernetes client, kopf or HTTP"),
    ("api/models.py", "from artifact_operator.controller import view",
     "Layers: cli > app"),
    ("controller/reconcile.py", "import aiohttp", "Only the client package talks HTTP"),
])
def test_the_import_contracts_refuse_a_violating_import(
        tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(REPO / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    assert _lint_imports(tmp_path).returncode == 0, "the tree as it is keeps every contract"
    target = tmp_path / "src" / "artifact_operator" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert contract in done.stdout


def test_the_documented_reconcile_results_are_the_outcomes() -> None:
    from artifact_operator.controller.reconcile import Outcome

    labels = "|".join(o.value for o in Outcome)
    assert f"artifact_operator_reconciles_total{{result={labels}}}" in \
        (REPO / "README.md").read_text()
