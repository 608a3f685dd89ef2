"""deploy/samples/: every sample passes `artifact-operator validate` and applies to the real API
server without the server refusing or pruning any of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import Cluster, create_artifact, get_artifact
from ..unit.test_validation import run_cli

pytestmark = pytest.mark.cluster

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
FILES = sorted(p.name for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")
# The Artifacts; the rest are what they read (the credential Secrets).
ARTIFACTS = [name for name in FILES if name.startswith("workload_")]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return doc


def test_kustomization_lists_every_sample() -> None:
    kustomization = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == FILES
    assert {"workload_v1alpha1_artifact_service.yaml",
            "workload_v1alpha1_artifact_nim_dedicated.yaml",
            "workload_v1alpha1_artifact_nim_cache.yaml", "v1_secret_credentials.yaml"} \
        <= set(FILES)


@pytest.mark.parametrize("name", ARTIFACTS)
def test_sample_is_valid(name: str) -> None:
    result = run_cli("validate", "-f", str(SAMPLES / name))
    assert result.returncode == 0, result.stdout
    assert result.stdout == f"Artifact {load(name)['metadata']['name']}: valid\n"


def _missing(sent: Any, stored: Any, path: str = "spec") -> list[str]:
    """Paths of what was sent but not stored as sent: what the structural schema pruned."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [m for k, v in sent.items() for m in _missing(v, stored.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [m for i, v in enumerate(sent) for m in _missing(v, stored[i], f"{path}[{i}]")]
    return [] if sent == stored else [path]


@pytest.mark.parametrize("name", ARTIFACTS)
def test_sample_applies_cleanly(cluster: Cluster, namespace: str, name: str) -> None:
    sample = load(name)
    create_artifact(cluster, namespace, sample)
    stored = get_artifact(cluster, namespace, sample["metadata"]["name"])
    assert _missing(sample["spec"], stored["spec"]) == []


def test_samples_show_what_they_are_for() -> None:
    service = load("workload_v1alpha1_artifact_service.yaml")["spec"]
    api, worker = service["containerGroups"]
    primary, sidecar = api["containers"]
    assert primary["primary"] and "port" in primary
    assert {"livenessProbe", "readinessProbe", "startupProbe"} <= set(primary)
    assert not sidecar.get("primary") and "port" not in sidecar
    assert not any(c.get("primary") for c in worker["containers"])
    dedicated = load("workload_v1alpha1_artifact_nim_dedicated.yaml")["spec"]
    assert dedicated["type"] == "nim" and dedicated["storage"]["mode"] == "dedicatedPvc"
    assert "pvcSize" in dedicated["storage"]
    assert any("nvidia.com/gpu" in (r.get("resources", {}).get("limits") or {})
               for r in dedicated["runtime"].values())
    cache = load("workload_v1alpha1_artifact_nim_cache.yaml")["spec"]
    assert cache["type"] == "nim" and cache["storage"]["mode"] == "nimCache"


def test_the_samples_credentials_opt_in_and_are_what_the_samples_read() -> None:
    secrets = [d for d in yaml.safe_load_all((SAMPLES / "v1_secret_credentials.yaml").read_text())
               if d]
    assert all(s["metadata"]["labels"]["workload.dev/usable-by-artifacts"] == "true"
               for s in secrets)
    have = {(s["metadata"]["name"], key) for s in secrets for key in s["stringData"]}
    read = {(env["drCredentialId"], env["key"]) for name in ARTIFACTS
            for group in load(name)["spec"]["containerGroups"]
            for container in group["containers"]
            for env in container.get("environmentVars", [])
            if env.get("source") == "dr-credential"}
    assert read and read <= have
