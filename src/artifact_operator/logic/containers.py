"""A container of an Artifact -> the container of its pod: command, port, env, probes,
resources, volume mounts, and the security context (platform defaults with the user's
tightening on top; elevated fields only with an admin's approval). Pure.
"""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import (
    ApiTokenEnvVar,
    Container,
    CredentialEnvVar,
    Probe,
    SecurityContext,
)
from artifact_operator.api.runtime import Resources
from artifact_operator.settings import Settings

Manifest = dict[str, Any]

HTTP_PORT_NAME = "http"
DEFAULT_PROBE_PORT = 8080  # the seed's default, for containers without a port
TOKEN_KEY = "token"
MODEL_STORE_VOLUME = "model-store"
SHM_VOLUME = "dshm"


def resources_of(resources: Resources) -> Manifest:
    # Quantities as strings: server-side apply refuses a bare number (`nvidia.com/gpu: 1`)
    # with a 500 "failed to create typed patch object", though the CRD accepts one.
    return {kind: {name: str(value) for name, value in amounts.items()}
            for kind, amounts in resources.dump().items()}


def pod_container(artifact: Artifact, c: Container, index: int, settings: Settings,
               elevated_approved: bool, *, resources: Manifest | None,
               mount_storage: bool) -> Manifest:
    out: Manifest = {"name": naming.container_name(c.name, index), "image": c.image_uri}
    if c.entrypoint:
        out["command"] = list(c.entrypoint)
    if c.primary and c.port is not None:
        out["ports"] = [{"name": HTTP_PORT_NAME, "containerPort": c.port, "protocol": "TCP"}]
    env = [_env(artifact, e) for e in c.environment_vars]
    if mount_storage and not any(e["name"] == "NIM_CACHE_PATH" for e in env):
        env.append({"name": "NIM_CACHE_PATH", "value": settings.nim_cache_path})
    if env:
        out["env"] = env
    if resources:
        out["resources"] = resources
    for attr, key in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
                      ("startup_probe", "startupProbe")):
        probe = getattr(c, attr)
        if probe is not None:
            out[key] = _probe(probe, c, elevated_approved)
    out["securityContext"] = _security_context(c.security_context, elevated_approved)
    if mount_storage:
        out["volumeMounts"] = [
            {"name": MODEL_STORE_VOLUME, "mountPath": settings.nim_cache_path},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ]
    return out


def _env(artifact: Artifact, env: Any) -> Manifest:
    if isinstance(env, CredentialEnvVar):
        return {"name": env.name, "valueFrom": {"secretKeyRef": {
            "name": env.dr_credential_id, "key": env.key}}}
    if isinstance(env, ApiTokenEnvVar):
        return {"name": env.name, "valueFrom": {"secretKeyRef": {
            "name": naming.token_secret_name(artifact.name), "key": TOKEN_KEY}}}
    return {"name": env.name, "value": env.value}


def _probe(probe: Probe, container: Container, elevated_approved: bool) -> Manifest:
    port = probe.port or container.port or DEFAULT_PROBE_PORT
    http_get: Manifest = {"path": probe.path, "port": port, "scheme": str(probe.scheme)}
    # An elevated field (logic/elevated.py): without an approval the kubelet probes the pod IP.
    if probe.host and elevated_approved:
        http_get["host"] = probe.host
    if probe.http_headers:
        http_get["httpHeaders"] = [{"name": k, "value": v}
                                   for k, v in sorted(probe.http_headers.items())]
    return {
        "httpGet": http_get,
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "failureThreshold": probe.failure_threshold,
    }


def _security_context(user: SecurityContext | None, elevated_approved: bool) -> Manifest:
    """Platform defaults with the user's settings merged on top.

    Tightening is open to everyone; elevated fields are kept only with admin approval.
    """
    drop = ["ALL"]
    add: list[str] = []
    allow_escalation = False
    seccomp: Manifest = {"type": "RuntimeDefault"}
    read_only: bool | None = None
    if user is not None:
        if user.capabilities:
            drop += [c for c in user.capabilities.drop or [] if c not in drop]
            if elevated_approved:
                add = list(user.capabilities.add or [])
        if user.allow_privilege_escalation is True and elevated_approved:
            allow_escalation = True
        profile = user.seccomp_profile
        if profile is not None and (profile.type != "Unconfined" or elevated_approved):
            seccomp = {"type": str(profile.type)}
            if profile.localhost_profile:
                seccomp["localhostProfile"] = profile.localhost_profile
        read_only = user.read_only_root_filesystem
    caps: Manifest = {"drop": drop}
    if add:
        caps["add"] = add
    out: Manifest = {
        "allowPrivilegeEscalation": allow_escalation,
        "capabilities": caps,
        "runAsNonRoot": True,
        "seccompProfile": seccomp,
    }
    if read_only is not None:
        out["readOnlyRootFilesystem"] = read_only
    return out
