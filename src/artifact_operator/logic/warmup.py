"""Model cache warm-up, pure: which claims of an artifact get a warm-up Job, the Job, what its
status says, and which groups wait for it. The I/O is controller/warmup.py.

A warm-up downloads the model into a claim before a server starts on it, the way NVIDIA's
NIMCache does: a Job running the model image itself with its own download command (NIM
images ship `download-to-cache`), the primary container's credentials and the claim mounted
at the NIM cache path. One Job per claim and image, named from both, so a second artifact
on the same image (a shared nimCache claim) finds the same Job (creating it again is a 409)
and never starts a second download. It belongs to the claim, not to an artifact: it goes
with the claim, and deleting one artifact never stops a download another waits for.

Once a Job succeeded the claim records it (annotation `workload.dev/warm-<hash of the
image>: <image>`), so the claim stays warm for that image whatever happens to the Job; a
new image (a new claim in nimCache mode, or the same dedicated claim) is a new Job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.models import ArtifactType, ContainerGroup
from artifact_operator.api.status import CachePhase, Reason, WarmUpStatus
from artifact_operator.logic.containers import MODEL_STORE_VOLUME, pod_container
from artifact_operator.logic.model_store import shared
from artifact_operator.logic.render import Rendered
from artifact_operator.logic.rollout import deployment_state
from artifact_operator.settings import CacheWarmUp, Settings

Manifest = dict[str, Any]

COMPONENT = "model-warm-up"
# On the Job and its pods: the claim it warms (a claim name is a valid label value).
LABEL_CLAIM = f"{naming.PREFIX}/model-claim"
ANNOTATION_IMAGE = f"{naming.PREFIX}/model-image"
CONTAINER = "warm-up"
BACKOFF_LIMIT = 2
# The severity order of phases, for a claim warmed for several images.
_ORDER = (CachePhase.failed, CachePhase.pending, CachePhase.downloading, CachePhase.ready)


@dataclass(frozen=True)
class WarmUpPlan:
    """One claim and image to warm, and the groups that wait for it."""

    claim: str
    image: str
    job: str
    groups: tuple[str, ...]
    group: ContainerGroup  # the first of them, whose primary container the Job runs as
    deployment: Manifest = field(compare=False)  # that group's, as rendered


def job_name(claim: str, image: str) -> str:
    return naming.fit(f"{claim}-warmup-{naming.cache_hash(image)}")


def warm_key(image: str) -> str:
    """The claim's annotation that says it holds the model of `image`."""
    return f"{naming.PREFIX}/warm-{naming.cache_hash(image)}"


def selector() -> str:
    """What the operator's watch of warm-up Jobs selects."""
    return f"{naming.LABEL_MANAGED_BY}={naming.MANAGER},app.kubernetes.io/component={COMPONENT}"


def enabled(artifact: Artifact, settings: Settings) -> bool:
    if settings.cache_warm_up == CacheWarmUp.off or artifact.spec.type != ArtifactType.nim:
        return False
    storage = artifact.spec.storage
    if storage is not None and storage.warm_up is not None:
        return storage.warm_up
    return shared(artifact)


def _model_of(deployment: Manifest) -> tuple[str | None, str | None]:
    """(claim, image) of a rendered Deployment: the claim of its model-store volume and the
    image of the container that mounts it."""
    spec = deployment["spec"]["template"]["spec"]
    claim = next((v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])
                  if v["name"] == MODEL_STORE_VOLUME and "persistentVolumeClaim" in v), None)
    image = next((c.get("image") for c in spec["containers"]
                  if any(m["name"] == MODEL_STORE_VOLUME for m in c.get("volumeMounts", []))),
                 None)
    return claim, image


def plans(artifact: Artifact, rendered: Rendered, settings: Settings) -> list[WarmUpPlan]:
    """The warm-ups the rendered groups need, in group order: groups held for another
    reason (an image build, an approval, a Secret) are not warmed for yet."""
    if not enabled(artifact, settings):
        return []
    deployments = {d["metadata"]["name"]: d for d in rendered.of_kind("Deployment")}
    found: dict[tuple[str, str], list[tuple[ContainerGroup, Manifest]]] = {}
    for group in artifact.spec.container_groups:
        deployment = deployments.get(naming.group_object_name(artifact.name, group.name))
        if deployment is None:
            continue
        claim, image = _model_of(deployment)
        if claim and image:
            found.setdefault((claim, image), []).append((group, deployment))
    return [WarmUpPlan(claim, image, job_name(claim, image), tuple(g.name for g, _ in groups),
                       groups[0][0], groups[0][1])
            for (claim, image), groups in found.items()]


def render_job(artifact: Artifact, plan: WarmUpPlan, settings: Settings,
               claim_uid: str) -> Manifest:
    """The warm-up Job: the model image with the download command, the primary container's
    env (its credentials, as references: never a value) but not the artifact's own API
    token, the claim at the NIM cache path, the pod security of the workload (restricted:
    non-root, no capability, RuntimeDefault or the user's tighter seccomp; elevated fields
    are the server's, never the download's), no service-account token, no GPU; the group's
    nodeSelector and tolerations, so it runs where the model will be served. Owned by the
    claim (garbage collected with it), by no artifact."""
    index, primary = next((i, c) for i, c in enumerate(plan.group.containers) if c.primary)
    rendered = pod_container(artifact, primary, index, settings, False, resources=None,
                             mount_storage=True)
    token = naming.token_secret_name(artifact.name)
    env = [e for e in rendered.get("env", [])
           if ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") != token]
    container: Manifest = {
        "name": CONTAINER, "image": plan.image,
        "command": list(settings.cache_warm_up_command),
        "securityContext": rendered["securityContext"],
        "volumeMounts": [m for m in rendered["volumeMounts"] if m["name"] == MODEL_STORE_VOLUME],
        # The end of its log becomes the failed pod's termination message (status says why).
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env:
        container["env"] = env
    template = plan.deployment["spec"]["template"]["spec"]
    pod: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": dict(template["securityContext"]),
        "containers": [container],
        "volumes": [{"name": MODEL_STORE_VOLUME,
                     "persistentVolumeClaim": {"claimName": plan.claim}}],
    }
    for key in ("nodeSelector", "tolerations"):
        if key in template:
            pod[key] = template[key]
    labels = {"app.kubernetes.io/name": plan.claim, "app.kubernetes.io/component": COMPONENT,
              naming.LABEL_MANAGED_BY: naming.MANAGER, LABEL_CLAIM: plan.claim}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": plan.job, "namespace": artifact.namespace, "labels": labels,
                     "annotations": {ANNOTATION_IMAGE: plan.image},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                          "name": plan.claim, "uid": claim_uid}]},
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": settings.cache_warm_up_timeout_seconds,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def job_phase(job: Mapping[str, Any]) -> tuple[CachePhase, str | None, str | None]:
    """(phase, reason, message) from a Job's status, as its controller sets it."""
    failed = _condition(job, "Failed")
    if failed is not None:
        return CachePhase.failed, failed.get("reason"), failed.get("message")
    if _condition(job, "Complete") is not None:
        return CachePhase.ready, None, None
    if int((job.get("status") or {}).get("active") or 0) > 0:
        return CachePhase.downloading, None, None
    return CachePhase.pending, None, None


def is_warm(claim: Mapping[str, Any] | None, image: str) -> bool:
    """The claim records that it holds the model of `image`."""
    annotations = ((claim or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(warm_key(image)) == image


def proven_warm(deployment: Mapping[str, Any] | None, claim: str, image: str) -> bool:
    """A Deployment rolled out on this claim and image with ready pods: its servers loaded
    the model from the claim, so it holds it (an artifact that ran before warm-ups existed
    is not held back for a download it does not need)."""
    if deployment is None:
        return False
    _, ready, _, state = deployment_state(dict(deployment))
    if state != Reason.ready or ready < 1:
        return False
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    mounted = any(v.get("name") == MODEL_STORE_VOLUME and
                  (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                  for v in spec.get("volumes", []))
    return mounted and any(c.get("image") == image for c in spec.get("containers", []))


def waiting_message(group: str, plan: WarmUpPlan, status: WarmUpStatus) -> str:
    head = f"group {group}: model cache {plan.claim}"
    logs = f"logs: kubectl logs job/{plan.job}"
    if status.phase == CachePhase.failed:
        why = ": ".join(p for p in (status.reason, status.message) if p) or "the Job failed"
        return (f"{head}: the warm-up of {plan.image} failed: {why} ({logs}; to try again: "
                f"kubectl delete job {plan.job})")
    if status.phase == CachePhase.downloading:
        return f"{head} is downloading {plan.image} (Job {plan.job}; {logs})"
    return f"{head} waits for its warm-up Job {plan.job}: {status.message or 'not started yet'}"


def hold(rendered: Rendered, outcomes: Iterable[tuple[WarmUpPlan, WarmUpStatus]],
         wait: bool) -> Rendered:
    """The rendering with each claim's warm-up status and, when Deployments wait, the groups
    of every claim not warm yet held back: not rendered (what runs keeps running, and is
    never scaled down for a warm-up) until their Job succeeded. A copy: the cached render
    stays as it was."""
    warm_ups: dict[str, WarmUpStatus] = {}
    warming: dict[str, tuple[Reason, str]] = {}
    for plan, status in outcomes:
        before = warm_ups.get(plan.claim)
        if before is None or _ORDER.index(status.phase) < _ORDER.index(before.phase):
            warm_ups[plan.claim] = status
        if wait and status.phase != CachePhase.ready:
            reason = (Reason.cache_warm_up_failed if status.phase == CachePhase.failed
                      else Reason.cache_warming_up)
            for group in plan.groups:
                warming[group] = (reason, waiting_message(group, plan, status))
    if not warm_ups:
        return rendered
    return dataclasses.replace(
        rendered,
        objects=[o for o in rendered.objects
                 if o["metadata"].get("labels", {}).get(naming.LABEL_GROUP) not in warming],
        warming={**rendered.warming, **warming}, warm_ups={**rendered.warm_ups, **warm_ups})
