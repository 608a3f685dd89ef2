"""What `kubectl apply -k` and `helm install` send is accepted by a real 1.20 API server.

The trees are rendered as users render them (kubectl's kustomize; Helm's engine with the
server's version and API versions, as `helm install` sees them) and applied with a server-side
dry run, so every object passes the server's own schema and admission without changing the
cluster. Running them for real, on a real node, is the job of the e2e tier.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..conftest import Cluster
from ..contract.test_deploy import DEPLOY, helm_render, kubectl

pytestmark = pytest.mark.cluster


def _dry_run(cluster: Cluster, docs: list[dict[str, Any]]) -> str:
    done = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig), "apply", "--dry-run=server",
         "--validate=false", "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _server_kube_version(cluster: Cluster) -> str:
    return str(client.VersionApi(cluster.api).get_code().git_version)


def _server_api_versions(cluster: Cluster) -> list[str]:
    out = subprocess.run([kubectl(), "--kubeconfig", str(cluster.kubeconfig), "api-versions"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def _kustomize_into(path: Path, base: Path, namespace: str) -> list[dict[str, Any]]:
    """`base` with everything moved into `namespace` (a namespace the test owns)."""
    path.mkdir()
    (path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"namespace": namespace, "resources": [os.path.relpath(base, path)]}))
    out = subprocess.run([kubectl(), "kustomize", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_kustomize_tree_for_1_20_is_accepted(cluster: Cluster, namespace: str,
                                                 tmp_path: Path) -> None:
    version = _server_kube_version(cluster)
    if not version.startswith("v1.20."):
        pytest.skip(f"deploy/k8s-1.20 is for 1.20 servers; this one is {version}")
    docs = _kustomize_into(tmp_path / "overlay", DEPLOY / "k8s-1.20", namespace)
    out = _dry_run(cluster, docs)
    assert "poddisruptionbudget.policy/artifact-operator" in out, out
    assert "deployment.apps/artifact-operator" in out, out


def test_the_default_kustomize_tree_is_refused_by_1_20_only_for_its_pdb(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """Why deploy/k8s-1.20 exists: on a 1.20 server deploy/default's policy/v1 budget fails."""
    version = _server_kube_version(cluster)
    if not version.startswith("v1.20."):
        pytest.skip("shows a 1.20 limitation")
    docs = _kustomize_into(tmp_path / "overlay", DEPLOY / "default", namespace)
    done = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig), "apply", "--dry-run=server",
         "--validate=false", "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True)
    assert done.returncode != 0
    assert 'no matches for kind "PodDisruptionBudget" in version "policy/v1"' in done.stderr
    _dry_run(cluster, [d for d in docs if d["kind"] != "PodDisruptionBudget"])


@pytest.mark.parametrize("values", [{}, {"webhook": {"enabled": True}}],
                         ids=["default", "webhook"])
def test_the_helm_chart_as_helm_install_renders_it_is_accepted(
        cluster: Cluster, namespace: str, values: dict[str, Any]) -> None:
    docs = helm_render(values, namespace=namespace, kube_version=_server_kube_version(cluster),
                       api_versions=_server_api_versions(cluster))
    out = _dry_run(cluster, docs)
    assert "poddisruptionbudget.policy/artifact-operator" in out, out
