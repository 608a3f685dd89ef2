"""A range of valid service Artifacts that exercise every part of the renderer: two groups,
probes, the three env kinds, securityContext tightening, runtime overrides and names long
enough to hit the 63-character rule. Used by the schema contract tests and by the write
counting tests (an operator that mis-compares any of these would write on every resync)."""

from __future__ import annotations

from typing import Any

LONG_GROUP = "a-container-group-name-that-is-long-enough-to-overflow-the-limit"[:63]


def two_groups(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [
        {"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
             "entrypoint": ["nginx", "-g", "daemon off;"],
             "readinessProbe": {"path": "/ready"},
             "livenessProbe": {"path": "/live", "port": 9000, "scheme": "HTTPS",
                               "periodSeconds": 10, "httpHeaders": {"X-Probe": "1"}},
             "startupProbe": {"path": "/start",
                              "initialDelaySeconds": 0, "failureThreshold": 30}},
            {"name": "sidecar", "imageUri": "busybox:1.36", "entrypoint": ["sleep", "1d"],
             "livenessProbe": {"path": "/health"}}]},
        {"name": "worker", "containers": [{"name": "queue", "imageUri": "redis:7"}]},
    ]}}


def env_kinds(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [
        {"name": "api", "containers": [
            {"name": "app", "imageUri": "ghcr.io/acme/app:2", "primary": True, "port": 3000,
             "environmentVars": [
                 {"name": "MODE", "value": "prod"},
                 {"name": "EMPTY", "value": "x"},
                 {"name": "DB_PASSWORD", "source": "dr-credential",
                  "drCredentialId": "db.creds", "key": "password"},
                 {"name": "API_TOKEN", "source": "dr-api-token"}]}]}]}}


def tightened(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [
        {"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
             "securityContext": {"readOnlyRootFilesystem": True,
                                 "capabilities": {"drop": ["NET_RAW", "ALL"]},
                                 "seccompProfile": {"type": "Localhost",
                                                    "localhostProfile": "profiles/app.json"}}},
            {"name": "helper", "imageUri": "busybox:1.36",
             "securityContext": {"seccompProfile": {"type": "RuntimeDefault"},
                                 "allowPrivilegeEscalation": False}}]}]}}


def runtime_overrides(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "containerGroups": [
            {"name": "infer", "containers": [
                {"name": "server", "imageUri": "nvcr.io/nim/llm:1", "primary": True,
                 "port": 8000}]},
            {"name": "batch", "containers": [{"name": "job", "imageUri": "busybox:1.36"}]}],
        "runtime": {
            "infer": {"replicas": 2,
                      "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"},
                                    "limits": {"cpu": 2, "memory": "1024Mi",
                                               "nvidia.com/gpu": 1}},
                      "nodeSelector": {"gpu": "a100"},
                      "tolerations": [
                          {"key": "nvidia.com/gpu", "operator": "Exists",
                           "effect": "NoSchedule"},
                          {"key": "dedicated", "operator": "Equal", "value": "ml",
                           "effect": "NoExecute", "tolerationSeconds": 300}]},
            "batch": {"replicas": 0}}}}


def long_names(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [
        {"name": LONG_GROUP, "containers": [
            {"name": "c" * 63, "imageUri": "nginx:1.27", "primary": True, "port": 65535,
             "environmentVars": [{"name": "TOKEN", "source": "dr-api-token"}]}]}]}}


VARIANTS = (two_groups, env_kinds, tightened, runtime_overrides, long_names)


def sample(index: int, name: str | None = None) -> dict[str, Any]:
    """The index-th sample, cycling through the variants; named `name` or `art-<index>`."""
    variant = VARIANTS[index % len(VARIANTS)]
    return variant(name or f"art-{index:02d}")


def elevated(name: str) -> dict[str, Any]:
    """Elevated securityContext fields: rendered only with an admin's approval (and so with
    an image pinned by digest)."""
    return {"metadata": {"name": name}, "spec": {"containerGroups": [
        {"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx@sha256:" + "0" * 64, "primary": True, "port": 8080,
             "securityContext": {"allowPrivilegeEscalation": True,
                                 "capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW"]},
                                 "seccompProfile": {"type": "Unconfined"}}}]}]}}


def opted_in_secret(core: Any, namespace: str, name: str) -> None:
    """A credential Secret that artifacts may read (labelled usable-by-artifacts), with the
    key the samples read."""
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": name, "labels": {"workload.dev/usable-by-artifacts": "true"}},
        "stringData": {"password": "not-a-real-password"}})
