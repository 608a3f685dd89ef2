"""Artifact (+ settings) -> the Kubernetes objects it runs as. Pure: no I/O, no clock, no random.

The same spec always renders the same objects, in a fixed order (claims and secrets before the
Deployments that mount them, Services last), so reconciles are idempotent and `artifact-operator
render` shows exactly what the operator would apply. Empty fields are omitted rather than
rendered empty, because the API server drops them and a rendered `[]` would never compare equal
to the stored object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import (
    ApiTokenEnvVar,
    ArtifactType,
    Container,
    ContainerGroup,
    CredentialEnvVar,
    Probe,
    Resources,
    RuntimeOverride,
    SecurityContext,
    StorageMode,
)
from artifact_operator.logic.elevated import elevated_paths
from artifact_operator.settings import Settings

Manifest = dict[str, Any]

HTTP_PORT_NAME = "http"
DEFAULT_PROBE_PORT = 8080  # the seed's default, for containers without a port
TOKEN_KEY = "token"
MODEL_STORE_VOLUME = "model-store"
SHM_VOLUME = "dshm"


@dataclass
class Rendered:
    """What an Artifact renders to, plus what the renderer held back and why."""

    objects: list[Manifest] = field(default_factory=list)
    # Groups left unrendered because a container waits for an image build: group -> container.
    waiting_for_image: dict[str, str] = field(default_factory=dict)
    # Elevated securityContext fields dropped for lack of admin approval (field paths).
    elevated_dropped: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]


def model_image(group: ContainerGroup) -> str | None:
    """The image of the group's primary container: for nim artifacts, the model it serves."""
    for container in group.containers:
        if container.primary:
            return container.image_uri
    return None


def _shared(artifact: Artifact) -> bool:
    storage = artifact.spec.storage
    return storage is not None and storage.mode == StorageMode.nim_cache


def storage_claim_name(artifact: Artifact, group: ContainerGroup) -> str | None:
    if artifact.spec.type != ArtifactType.nim:
        return None
    if _shared(artifact):
        image = model_image(group)
        return naming.cache_claim_name(image) if image else None
    return naming.dedicated_claim_name(artifact.name)


def render(artifact: Artifact, settings: Settings, *, elevated_approved: bool = False) -> Rendered:
    out = Rendered()
    if not elevated_approved:
        out.elevated_dropped = elevated_paths(artifact.spec.dump())
    # Offline (`artifact-operator render`) there is no uid yet, so no owner to point at.
    uid = artifact.metadata.uid
    owner = naming.owner_reference(artifact.api_version, artifact.kind, artifact.name, uid) \
        if uid else None
    claims: dict[str, Manifest] = {}
    deployments: list[Manifest] = []
    services: list[Manifest] = []
    for group in artifact.spec.container_groups:
        waiting = next((c for i, c in enumerate(group.containers) if not c.image_uri), None)
        if waiting is not None:
            idx = group.containers.index(waiting)
            out.waiting_for_image[group.name] = naming.container_name(waiting.name, idx)
            continue
        claim = storage_claim_name(artifact, group)
        if claim is not None and claim not in claims:
            claims[claim] = _claim(artifact, group, claim, owner, settings)
        deployments.append(_deployment(artifact, group, owner, claim, settings, elevated_approved))
        service = _service(artifact, group, owner)
        if service is not None:
            services.append(service)
    out.objects.extend(claims.values())
    if _uses_api_token(artifact):
        # Rendered even while groups wait for an image, so the token outlives the wait.
        out.objects.append(_token_secret(artifact, owner))
    out.objects.extend(deployments)
    out.objects.extend(services)
    return out


def _meta(artifact: Artifact, name: str, group: str, owner: Manifest | None,
          labels: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": artifact.namespace,
        "labels": labels or naming.labels(artifact.name, group, str(artifact.spec.type)),
    }
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def _artifact_labels(artifact: Artifact, component: str) -> dict[str, str]:
    """Labels of objects that belong to the whole artifact rather than to one group."""
    return {
        "app.kubernetes.io/name": artifact.name,
        "app.kubernetes.io/component": component,
        naming.LABEL_MANAGED_BY: naming.MANAGER,
        naming.LABEL_ARTIFACT: artifact.name,
        naming.LABEL_TYPE: str(artifact.spec.type),
    }


def _uses_api_token(artifact: Artifact) -> bool:
    return any(isinstance(env, ApiTokenEnvVar)
               for group in artifact.spec.container_groups
               for container in group.containers
               for env in container.environment_vars)


def _token_secret(artifact: Artifact, owner: Manifest | None) -> Manifest:
    # No data here: the token is random, so the applier creates it once and never rewrites it.
    name = naming.token_secret_name(artifact.name)
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": _meta(artifact, name, "", owner, _artifact_labels(artifact, "api-token")),
        "type": "Opaque",
    }


def _claim(artifact: Artifact, group: ContainerGroup, name: str, owner: Manifest | None,
           settings: Settings) -> Manifest:
    storage = artifact.spec.storage
    if _shared(artifact):
        image = model_image(group) or ""
        labels = {
            naming.LABEL_MANAGED_BY: naming.MANAGER,
            naming.LABEL_CACHE: naming.cache_hash_of_claim(name),
            "app.kubernetes.io/component": "nim-cache",
        }
        meta: Manifest = {"name": name, "namespace": artifact.namespace, "labels": labels,
                          "annotations": {naming.ANNOTATION_CACHE_IMAGE: image}}
        modes, size = settings.cache_access_modes, settings.cache_size
    else:
        meta = _meta(artifact, name, "", owner, _artifact_labels(artifact, "model-store"))
        modes = settings.dedicated_access_modes
        size = (storage.pvc_size if storage and storage.pvc_size else settings.default_pvc_size)
    spec: Manifest = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def _primary(group: ContainerGroup) -> Container | None:
    return next((c for c in group.containers if c.primary), None)


def _service(artifact: Artifact, group: ContainerGroup,
             owner: Manifest | None) -> Manifest | None:
    primary = _primary(group)
    if primary is None or primary.port is None:
        return None
    name = naming.group_object_name(artifact.name, group.name)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(artifact, name, group.name, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(artifact.name, group.name),
            # protocol is explicit: server-side apply of a Service fails without it on 1.20.
            "ports": [{"name": HTTP_PORT_NAME, "port": primary.port,
                       "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }


def endpoint(artifact: Artifact, group: ContainerGroup, settings: Settings) -> str | None:
    primary = _primary(group)
    if primary is None or primary.port is None:
        return None
    service = naming.group_object_name(artifact.name, group.name)
    return (f"http://{service}.{artifact.namespace}.svc.{settings.cluster_domain}"
            f":{primary.port}")


def _deployment(artifact: Artifact, group: ContainerGroup, owner: Manifest | None,
                claim: str | None,
                settings: Settings, elevated_approved: bool) -> Manifest:
    runtime = (artifact.spec.runtime or {}).get(group.name) or RuntimeOverride()
    nim = artifact.spec.type == ArtifactType.nim
    primary = _primary(group)
    # GPUs and memory go to the container that does the work: the primary one, else the first.
    resources_to = primary or (group.containers[0] if group.containers else None)
    containers = [
        _container(artifact, c, i, settings, elevated_approved,
                   resources=_resources(runtime.resources) if runtime.resources and
                   c is resources_to else None,
                   mount_storage=nim and c is primary and claim is not None)
        for i, c in enumerate(group.containers)
    ]
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.fs_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
    }
    if runtime.node_selector:
        pod_spec["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        pod_spec["tolerations"] = [t.dump() for t in runtime.tolerations]
    if nim and claim is not None:
        shm: Manifest = {"medium": "Memory"}
        if settings.shm_size:
            shm["sizeLimit"] = settings.shm_size
        pod_spec["volumes"] = [
            {"name": MODEL_STORE_VOLUME, "persistentVolumeClaim": {"claimName": claim}},
            {"name": SHM_VOLUME, "emptyDir": shm},
        ]
    name = naming.group_object_name(artifact.name, group.name)
    labels = naming.labels(artifact.name, group.name, str(artifact.spec.type))
    spec: Manifest = {
        "selector": {"matchLabels": naming.selector(artifact.name, group.name)},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if runtime.replicas is not None:
        spec["replicas"] = runtime.replicas
    if nim:
        # Replace pods in place: an update must never need a spare GPU.
        spec["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    meta = _meta(artifact, name, group.name, owner)
    if claim is not None and _shared(artifact):
        # Who uses a shared cache claim is read from the cluster through this label.
        meta["labels"] = {**meta["labels"],
                          naming.LABEL_CACHE: naming.cache_hash_of_claim(claim)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _resources(resources: Resources) -> Manifest:
    # Quantities as strings: server-side apply refuses a bare number (`nvidia.com/gpu: 1`)
    # with a 500 "failed to create typed patch object", though the CRD accepts one.
    return {kind: {name: str(value) for name, value in amounts.items()}
            for kind, amounts in resources.dump().items()}


def _container(artifact: Artifact, c: Container, index: int, settings: Settings,
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
            out[key] = _probe(probe, c)
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


def _probe(probe: Probe, container: Container) -> Manifest:
    port = probe.port or container.port or DEFAULT_PROBE_PORT
    http_get: Manifest = {"path": probe.path, "port": port, "scheme": str(probe.scheme)}
    if probe.host:
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
