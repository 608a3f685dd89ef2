"""Artifact (+ settings) -> the Kubernetes objects it runs as. Pure: no I/O, no clock, no random.

The same spec always renders the same objects, in a fixed order (claims and secrets before the
Deployments that mount them, Services last), so reconciles are idempotent and `artifact-operator
render` shows exactly what the operator would apply. Empty fields are omitted rather than
rendered empty, because the API server drops them and a rendered `[]` would never compare equal
to the stored object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.elevated import container_elevated
from artifact_operator.api.models import (
    ApiTokenEnvVar,
    ArtifactType,
    Container,
    ContainerGroup,
)
from artifact_operator.api.runtime import RuntimeOverride
from artifact_operator.api.status import Reason, WarmUpStatus
from artifact_operator.logic import model_store, monitoring
from artifact_operator.logic.approval import Decision, Grant
from artifact_operator.logic.autoscaling import hpa
from artifact_operator.logic.containers import (
    HTTP_PORT_NAME,
    MODEL_STORE_VOLUME,
    SHM_VOLUME,
    pod_container,
    resources_of,
)
from artifact_operator.logic.credentials import (
    SecretFacts,
    credential_refs,
    not_usable,
)
from artifact_operator.logic.metadata import artifact_labels, meta
from artifact_operator.logic.model_store import storage_claim_name
from artifact_operator.logic.reach import reach_objects
from artifact_operator.logic.served import ServedApis
from artifact_operator.settings import Settings

Manifest = dict[str, Any]

# Kubernetes' default progressDeadlineSeconds: a rollout with no progress this long is stuck.
PROGRESS_DEADLINE_SECONDS = 600


@dataclass
class Rendered:
    """What an Artifact renders to, plus what the renderer held back and why."""

    objects: list[Manifest] = field(default_factory=list)
    # Groups left unrendered because a container waits for an image build: group -> container.
    waiting_for_image: dict[str, str] = field(default_factory=dict)
    # Groups with elevated fields and no current approval, left unrendered (their running
    # Deployment, if any, is kept, like a group waiting for an image): group -> decision.
    held: dict[str, Decision] = field(default_factory=dict)
    # Groups rendered on the old HMAC annotation's word: applied only while that changes
    # nothing that runs (the reconciler checks against the live Deployment).
    legacy: list[str] = field(default_factory=list)
    # Groups left unrendered because a credential Secret they read is not usable
    # (logic/credentials.py): group -> one sentence per reference.
    secrets_not_usable: dict[str, list[str]] = field(default_factory=dict)
    # The token Secret name when it exists and is not this artifact's, and the groups that
    # use it, left unrendered.
    token_conflict: str | None = None
    token_held: list[str] = field(default_factory=list)
    # Set after rendering by logic/warmup.py: groups held until their model cache is warm
    # (group -> reason and sentence), and the warm-up of each claim that has one.
    warming: dict[str, tuple[Reason, str]] = field(default_factory=dict)
    warm_ups: dict[str, WarmUpStatus] = field(default_factory=dict)
    # Group -> kinds it asks for that the cluster does not serve, left out (logic/served.py).
    unserved: dict[str, list[str]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    @property
    def held_groups(self) -> set[str]:
        """Groups not rendered this time: whatever of them runs keeps running."""
        return {*self.waiting_for_image, *self.held, *self.secrets_not_usable,
                *self.token_held, *self.warming}


def group_elevated(group: ContainerGroup) -> bool:
    """Whether the group asks for elevated fields (rendered only once they are approved)."""
    return any(container_elevated(c.dump()) for c in group.containers)


def with_built_images(group: ContainerGroup,
                      images: Mapping[tuple[str, str], str]) -> ContainerGroup:
    """The group with each container that has no imageUri running its built image (by
    digest), where one is known. Only what is rendered changes: the spec keeps no imageUri."""
    if all(c.image_uri for c in group.containers):
        return group
    containers = [
        c.model_copy(update={"image_uri": images[(group.name, naming.container_name(c.name, i))]})
        if not c.image_uri and (group.name, naming.container_name(c.name, i)) in images else c
        for i, c in enumerate(group.containers)]
    return group.model_copy(update={"containers": containers})


def render(artifact: Artifact, settings: Settings,
           decisions: Mapping[str, Decision] | None = None, *,
           secrets: SecretFacts | None = None,
           images: Mapping[tuple[str, str], str] | None = None,
           apis: ServedApis | None = None) -> Rendered:
    """`decisions`: one per group with elevated fields (`logic.approval.decide`); a group with
    elevated fields and no decision that renders them is held back, never rendered without
    them (its pods would run other than what was asked and approved). `secrets` None: nothing
    is known of the namespace's Secrets (offline rendering), so every referenced Secret is
    taken as usable. `images`: the built image (repo@sha256:...) of containers without
    imageUri, by (group, container name). `apis`: what the cluster serves (None: all)."""
    decisions = decisions or {}
    out = Rendered()
    facts = secrets or SecretFacts()
    token_name = naming.token_secret_name(artifact.name)
    refs = list(credential_refs(artifact.spec.dump()))
    # Offline (`artifact-operator render`) there is no uid yet, so no owner to point at.
    uid = artifact.metadata.uid
    owner = naming.owner_reference(artifact.api_version, artifact.kind, artifact.name, uid) \
        if uid else None
    claims: dict[str, Manifest] = {}
    deployments: list[Manifest] = []
    services: list[Manifest] = []
    scalers: list[Manifest] = []
    reach: list[Manifest] = []  # Ingresses, HTTPRoutes, ServiceMonitors
    for group in artifact.spec.container_groups:
        group = with_built_images(group, images or {})
        waiting = next((c for i, c in enumerate(group.containers) if not c.image_uri), None)
        if waiting is not None:
            idx = group.containers.index(waiting)
            out.waiting_for_image[group.name] = naming.container_name(waiting.name, idx)
            continue
        decision = decisions.get(group.name)
        elevated = group_elevated(group)
        if elevated and (decision is None or not decision.renders_elevated):
            out.held[group.name] = decision or Decision(
                Grant.missing, f"group {group.name}: elevated fields need an admin's approval")
            continue
        blocked = [f"{ref.user()}: {not_usable(ref.secret)}" for ref in refs
                   if ref.group == group.name and ref.secret in facts.not_usable]
        if blocked:
            out.secrets_not_usable[group.name] = blocked
            continue
        if facts.token_conflict and _group_uses_api_token(group):
            out.token_conflict = token_name
            out.token_held.append(group.name)
            continue
        if decision is not None and decision.grant == Grant.legacy:
            out.legacy.append(group.name)
        claim_name = storage_claim_name(artifact, group)
        if claim_name is not None and claim_name not in claims:
            claims[claim_name] = model_store.claim(artifact, group, claim_name, owner, settings)
        deployments.append(_deployment(artifact, group, owner, claim_name, settings, elevated))
        service = _service(artifact, group, owner)
        if service is not None:
            services.append(service)
            reach += reach_objects(artifact, group.name, service, owner, apis or ServedApis(),
                                   out.unserved)
        scaling = _runtime(artifact, group).autoscaling
        if scaling is not None:
            name = naming.group_object_name(artifact.name, group.name)
            scalers.append(hpa(artifact, group, scaling, meta(artifact, name, group.name, owner),
                               settings.hpa_api_version or "autoscaling/v2"))
    out.objects.extend(claims.values())
    uses_token = any(_group_uses_api_token(g) for g in artifact.spec.container_groups)
    if uses_token and not facts.token_conflict:
        # Rendered even while groups wait for an image, so the token outlives the wait.
        out.objects.append(_token_secret(artifact, owner))
    out.objects.extend(deployments)
    out.objects.extend(services)
    out.objects.extend(scalers)
    out.objects.extend(reach)
    return out


def _runtime(artifact: Artifact, group: ContainerGroup) -> RuntimeOverride:
    return (artifact.spec.runtime or {}).get(group.name) or RuntimeOverride()


def _group_uses_api_token(group: ContainerGroup) -> bool:
    return any(isinstance(env, ApiTokenEnvVar)
               for container in group.containers for env in container.environment_vars)


def _token_secret(artifact: Artifact, owner: Manifest | None) -> Manifest:
    # No data here: the token is random, so the applier creates it once and never rewrites it.
    name = naming.token_secret_name(artifact.name)
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(artifact, name, "", owner, artifact_labels(artifact, "api-token")),
        "type": "Opaque",
    }


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
        "metadata": meta(artifact, name, group.name, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(artifact.name, group.name),
            # protocol is explicit: server-side apply of a Service fails without it on 1.20.
            "ports": [{"name": HTTP_PORT_NAME, "port": primary.port,
                       "targetPort": HTTP_PORT_NAME, "protocol": "TCP"},
                      *monitoring.service_ports(_runtime(artifact, group).metrics,
                                                primary.port)],
        },
    }


def endpoint(artifact: Artifact, group: ContainerGroup, settings: Settings) -> str | None:
    primary = _primary(group)
    if primary is None or primary.port is None:
        return None
    service = naming.group_object_name(artifact.name, group.name)
    return (f"http://{service}.{artifact.namespace}.svc.{settings.cluster_domain}"
            f":{primary.port}")


def _progress_deadline(group: ContainerGroup) -> int | None:
    """The Deployment's progress deadline when a startup probe lets a container take its time:
    Kubernetes' default counted from the end of the longest startup allowance (initial delay +
    period x failure threshold), so a pod the kubelet still lets start (a NIM fetching its
    weights for 30 minutes) does not turn the artifact Degraded. None: the default applies."""
    allowance = max((p.initial_delay_seconds + p.period_seconds * p.failure_threshold
                     for c in group.containers if (p := c.startup_probe) is not None), default=0)
    return PROGRESS_DEADLINE_SECONDS + allowance if allowance else None


def _deployment(artifact: Artifact, group: ContainerGroup, owner: Manifest | None,
                claim: str | None,
                settings: Settings, elevated_approved: bool) -> Manifest:
    runtime = _runtime(artifact, group)
    nim = artifact.spec.type == ArtifactType.nim
    primary = _primary(group)
    # GPUs and memory go to the container that does the work: the primary one, else the first.
    resources_to = primary or (group.containers[0] if group.containers else None)
    containers = [
        pod_container(artifact, c, i, settings, elevated_approved,
                      resources=resources_of(runtime.resources) if runtime.resources and
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
    deadline = _progress_deadline(group)
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    if nim:
        # Replace pods in place: an update must never need a spare GPU.
        spec["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    metadata = meta(artifact, name, group.name, owner)
    if claim is not None and model_store.shared(artifact):
        # Who uses a shared cache claim is read from the cluster through this label.
        metadata["labels"] = {**metadata["labels"],
                              naming.LABEL_CACHE: naming.cache_hash_of_claim(claim)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}
