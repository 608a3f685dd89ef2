"""Operator settings from the environment (`ARTIFACT_OPERATOR_*`).

Loaded once in the CLI and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CacheRetention(StrEnum):
    keep = "keep"
    delete = "delete"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARTIFACT_OPERATOR_", frozen=True)

    # Pod security defaults for every rendered pod.
    run_as_user: int = Field(1000, ge=1, description="runAsUser of every rendered pod.")
    run_as_group: int = Field(1000, ge=0, description="runAsGroup of every rendered pod.")
    fs_group: int = Field(1000, ge=0, description="fsGroup of every rendered pod.")
    cluster_domain: str = Field("cluster.local", description="DNS domain in Service endpoints.")

    # NIM model-weight storage.
    default_pvc_size: str = Field("100Gi", pattern=r"^\d+(\.\d+)?(Gi|Mi|Ti)$",
                                  description="Size of a dedicated claim without pvcSize.")
    storage_class: str | None = Field(
        None, description="storageClassName of the claims; unset means the cluster default.")
    dedicated_access_modes: list[str] = Field(
        default_factory=lambda: ["ReadWriteOnce"],
        description="accessModes of a dedicated model-weight claim (JSON list).")
    cache_access_modes: list[str] = Field(
        default_factory=lambda: ["ReadWriteMany"],
        description="accessModes of a shared nimCache claim (JSON list).")
    cache_size: str = Field("200Gi", pattern=r"^\d+(\.\d+)?(Gi|Mi|Ti)$",
                            description="Size of a shared nimCache claim.")
    nim_cache_path: str = Field("/opt/nim/.cache", description="Where NIM weights are mounted.")
    cache_retention: CacheRetention = Field(
        CacheRetention.keep, description="What happens to a cache claim when its last user goes.")
    shm_size: str | None = Field(None, description="sizeLimit of the /dev/shm emptyDir.")

    # Operator behaviour.
    resync_seconds: float = Field(600.0, gt=0, description="Full resync interval.")
    events: bool = Field(True, description="Post Events on Artifacts for child changes.")
    max_backoff_seconds: float = Field(
        300.0, gt=0, description="Longest wait between retries of a failing reconcile.")
    client_login: bool = Field(
        False, description="Log in through an installed Kubernetes client library (needed "
        "for kubeconfigs with exec or auth-provider plugins) instead of kopf's own login; "
        "costs ~40 MB of memory.")
    status_settle_seconds: float = Field(
        2.0, ge=0, description="How long status waits for the Deployment controller to "
        "observe a Deployment the operator just wrote, to spare a status write.")
