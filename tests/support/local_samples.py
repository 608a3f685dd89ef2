"""deploy/samples/ on a local node: the samples as they are, but for their images, plus what
the samples take from the cluster (the dr-credential Secrets they name, volumes for their NIM
claims, a node that offers the GPUs and the node label they ask for). Used by the e2e tier
(tests/e2e/test_pods.py) and by `make demo` (tests/support/demo.py).

- Images: each registry image of the samples is replaced by a test-time image
  (tests/support/images.py) that runs the sample's own entrypoints: `sample` for the service
  sample, `nim` for the two NIM samples. A sample with an image not listed here fails loudly.
- GPUs: the NIM samples ask for `nvidia.com/gpu: 1` and a node labelled
  `nvidia.com/gpu.present=true`. The node advertises exactly as many `nvidia.com/gpu` as the
  samples need, as an extended resource (PATCH of the Node's status, the documented way to
  advertise one); the scheduler accounts for them like real GPUs, nothing else uses them. With
  exactly enough, a rollout that needed a spare GPU would stay Pending.
- Storage: a hostPath PersistentVolume for each NIM claim, bound to it in advance (claimRef),
  on a directory owned by uid 1000 (the kubelet applies no fsGroup to hostPath).
- Credentials: the Secrets the samples' `dr-credential` variables name, with random values,
  labelled as usable by artifacts.
"""

from __future__ import annotations

import copy
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from artifact_operator.api import naming
from artifact_operator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO / "deploy" / "samples"

# The samples' images -> the name (images.IMAGES) of the test-time image standing in for it.
STAND_INS = {
    "ghcr.io/example/web-shop:1.4.2": "sample",
    "ghcr.io/example/log-shipper:2.0": "sample",
    "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3": "nim",
}
GPU = "nvidia.com/gpu"
GPU_NODE_LABEL = "nvidia.com/gpu.present"
# A Secret opts in to dr-credential references with this label (the opt-in being added in
# parallel; harmless before).
USABLE_LABEL = "workload.dev/usable-by-artifacts"
PV_LABEL = "artifact-e2e/sample-volume"


def load() -> list[dict[str, Any]]:
    """The sample Artifacts, in the order of deploy/samples/kustomization.yaml (its credential
    Secrets hold placeholders: `credential_secrets` makes them with random values)."""
    kustomization = yaml.safe_load((SAMPLES_DIR / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((SAMPLES_DIR / name).read_text())
            if doc and doc.get("kind") == "Artifact"]


def localized(sample: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    """The sample with each image replaced by its stand-in's reference (refs: image name ->
    reference, as the e2e tier's images are named on the node)."""
    out = copy.deepcopy(sample)
    for group in out["spec"].get("containerGroups", []):
        for container in group["containers"]:
            image = container.get("imageUri")
            if image not in STAND_INS:
                raise KeyError(f"sample {out['metadata']['name']}: no local stand-in for image "
                               f"{image}; add one to STAND_INS (tests/support/local_samples.py)")
            container["imageUri"] = refs[STAND_INS[image]]
    return out


def containers(sample: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for g in sample["spec"].get("containerGroups", []) for c in g["containers"]]


def credential_secrets(samples: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """A Secret for every (drCredentialId, key) the samples read, with a random value."""
    keys: dict[str, set[str]] = {}
    for sample in samples:
        for container in containers(sample):
            for env in container.get("environmentVars", []):
                if env.get("source") == "dr-credential":
                    keys.setdefault(env["drCredentialId"], set()).add(env["key"])
    return [{"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": name, "namespace": namespace,
                          "labels": {USABLE_LABEL: "true"}},
             "type": "Opaque",
             "stringData": {key: secrets.token_urlsafe(24) for key in sorted(names)}}
            for name, names in sorted(keys.items())]


def gpus_needed(samples: list[dict[str, Any]]) -> int:
    total = 0
    for sample in samples:
        runtime = sample["spec"].get("runtime") or {}
        for group in sample["spec"].get("containerGroups", []):
            override = runtime.get(group["name"]) or {}
            limits = (override.get("resources") or {}).get("limits") or {}
            total += int(limits.get(GPU, 0)) * int(override.get("replicas", 1))
    return total


def advertise_gpus(core: Any, node: str, count: int) -> None:
    """The node offers `count` nvidia.com/gpu (extended resource) and carries the GPU label."""
    # Allocatable too: the kubelet derives it from capacity only at its next status update.
    core.patch_node_status(node, {"status": {"capacity": {GPU: str(count)},
                                             "allocatable": {GPU: str(count)}}})
    core.patch_node(node, {"metadata": {"labels": {GPU_NODE_LABEL: "true"}}})


def nim_claims(samples: list[dict[str, Any]], namespace: str,
               settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """Claim name -> (size, access modes) of every claim the NIM samples render."""
    settings = settings or Settings()
    claims: dict[str, dict[str, Any]] = {}
    for sample in samples:
        spec = sample["spec"]
        if spec.get("type") != "nim":
            continue
        storage = spec.get("storage") or {}
        if storage.get("mode") == "nimCache":
            for group in spec["containerGroups"]:
                (primary,) = [c for c in group["containers"] if c.get("primary")]
                claims[naming.cache_claim_name(primary["imageUri"])] = {
                    "size": settings.cache_size, "modes": list(settings.cache_access_modes)}
        else:
            claims[naming.dedicated_claim_name(sample["metadata"]["name"])] = {
                "size": storage.get("pvcSize") or settings.default_pvc_size,
                "modes": list(settings.dedicated_access_modes)}
    return claims


def claim_volumes(samples: list[dict[str, Any]], namespace: str,
                  root: Path) -> list[dict[str, Any]]:
    """A hostPath PersistentVolume under `root` for each NIM claim, bound to it in advance;
    each directory owned by uid/gid 1000 (the rendered pods' user), mode 0755."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    volumes = []
    for claim, want in nim_claims(samples, namespace).items():
        path = root / claim
        path.mkdir(exist_ok=True)
        os.chown(path, 1000, 1000)
        path.chmod(0o755)
        volumes.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{claim}",
                         "labels": {PV_LABEL: namespace}},
            "spec": {"capacity": {"storage": want["size"]},
                     "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "storageClassName": "",
                     "claimRef": {"namespace": namespace, "name": claim},
                     "hostPath": {"path": str(path), "type": "Directory"}}})
    return volumes


def manifests(refs: dict[str, str], namespace: str, volume_root: Path | None,
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the samples need first: Secrets and volumes; the localized samples)."""
    samples = [localized(s, refs) for s in load()]
    needs = credential_secrets(samples, namespace)
    if volume_root is not None:
        needs += claim_volumes(samples, namespace, volume_root)
    return needs, samples
