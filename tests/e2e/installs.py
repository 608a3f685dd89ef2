"""The two ways README.md says users install the operator, step by step as written there.

- kustomize ("With kustomize", "Admission and security"): `kubectl apply -k` the tree for the
  server's version, `deploy/webhook/selfsigned.sh`, then `kubectl rollout restart` of the
  operator so it loads the certificate; `kubectl delete -k` the same tree to uninstall.
- Helm ("With Helm"): the chart rendered by Helm's own engine with the server's version and API
  versions (what `helm install` sees), webhook on: the namespace (`--create-namespace`), the
  chart's crds/ created, then its templates; `helm uninstall` deletes the templates' objects
  only. There is no helm binary here; the rendering is Helm's, the applying kubectl's.
"""

from __future__ import annotations

import os
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import yaml

from ..contract.test_deploy import DEPLOY, helm_render
from ..support.images import containerd_name
from .support import E2E

NAMESPACE = "artifact-operator-system"
DEPLOYMENT = "artifact-operator"
LEASE = "artifact-operator-leader"
MANAGER = "app.kubernetes.io/name=artifact-operator,app.kubernetes.io/component=manager"
ROLLOUT_TIMEOUT = "240s"


class Install(ABC):
    name: str

    def __init__(self, e2e: E2E, workdir: Path) -> None:
        self.e2e = e2e
        self.workdir = workdir

    @abstractmethod
    def install(self) -> None: ...

    @abstractmethod
    def uninstall(self) -> None: ...

    @abstractmethod
    def cleanup(self) -> None:
        """Remove whatever is left, after a test that failed half way (best effort)."""

    def rollout_status(self) -> None:
        self.e2e.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}",
                         f"--timeout={ROLLOUT_TIMEOUT}", timeout=300)

    @property
    def image(self) -> str:
        """The operator image the pods run, as containerd names it."""
        return containerd_name(self.e2e.refs["operator"])


class KustomizeInstall(Install):
    name = "kustomize"

    @property
    def tree(self) -> Path:
        # README: deploy/k8s-1.20 for a 1.20 server (no policy/v1), deploy/default from 1.21.
        base = DEPLOY / ("k8s-1.20" if self.e2e.minor < 21 else "default")
        ref = self.e2e.refs["operator"]
        if ref == self.e2e.built["operator"].ref:
            return base
        # Another registry: an overlay with `images:`, as README says to choose the image.
        overlay = self.workdir / "overlay"
        overlay.mkdir(exist_ok=True)
        name, _, tag = ref.rpartition(":")
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
            "resources": [os.path.relpath(base, overlay)],
            "images": [{"name": "artifact-operator", "newName": name, "newTag": tag}]}))
        return overlay

    @property
    def apply_flags(self) -> list[str]:
        # README: --server-side from 1.25 (the CRD's CEL rules), --validate=false before.
        return ["--server-side"] if self.e2e.minor >= 25 else ["--validate=false"]

    def install(self) -> None:
        self.e2e.kubectl("apply", "-k", str(self.tree), *self.apply_flags)
        done = subprocess.run([str(DEPLOY / "webhook" / "selfsigned.sh")], env=self.e2e.env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"selfsigned.sh: {done.stdout}{done.stderr}"
        self.e2e.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
        self.rollout_status()

    def uninstall(self) -> None:
        self.e2e.kubectl("delete", "-k", str(self.tree), timeout=300)

    def cleanup(self) -> None:
        self.e2e.kubectl("delete", "-k", str(self.tree), "--ignore-not-found", check=False,
                         timeout=300)


class HelmInstall(Install):
    name = "helm"

    def __init__(self, e2e: E2E, workdir: Path) -> None:
        super().__init__(e2e, workdir)
        values: dict[str, Any] = {"webhook": {"enabled": True}}
        ref = e2e.refs["operator"]
        if ref != e2e.built["operator"].ref:
            repository, _, tag = ref.rpartition(":")
            values["image"] = {"repository": repository, "tag": tag}
        docs = helm_render(values, namespace=NAMESPACE, kube_version=e2e.kube_version,
                           api_versions=e2e.api_versions())
        self.crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        self.templates = [d for d in docs if d["kind"] != "CustomResourceDefinition"]

    def install(self) -> None:
        self.e2e.kubectl("create", "namespace", NAMESPACE)  # helm install --create-namespace
        # Helm creates the chart's crds/ first, and leaves an existing CRD alone. It sends
        # them as they are (no client-side validation, which refuses CEL rules before 1.25).
        done = self.e2e.kubectl("create", "--validate=false", "-f", "-",
                                input=yaml.safe_dump_all(self.crds), check=False)
        assert done.returncode == 0 or "AlreadyExists" in done.stderr, done.stderr
        self.e2e.kubectl("apply", "--validate=false", "-f", "-",
                         input=yaml.safe_dump_all(self.templates))
        self.rollout_status()

    def uninstall(self) -> None:
        # helm uninstall: the release's objects; never crds/, nor the namespace it created.
        self.e2e.kubectl("delete", "-f", "-", input=yaml.safe_dump_all(self.templates),
                         timeout=300)

    def cleanup(self) -> None:
        for docs in (self.templates, self.crds):
            self.e2e.kubectl("delete", "--ignore-not-found", "-f", "-",
                             input=yaml.safe_dump_all(docs), check=False, timeout=300)
        self.e2e.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", check=False,
                         timeout=300)
