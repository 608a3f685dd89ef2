"""The engine objects that build an image: a Shipwright BuildRun with its build spec
embedded, or a Job running rootless BuildKit. Pure: a `BuildPlan` (`builds.py`) in, a
manifest out."""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.build_config import GitSource, OciSource
from artifact_operator.logic.builds import (
    BUILDER_CONTAINER,
    COMPONENT,
    LABEL_ARTIFACT_NAMESPACE,
    LABEL_ARTIFACT_UID,
    LABEL_CONTAINER,
    LABEL_GROUP,
    SHIPWRIGHT_API,
    BuildPlan,
)
from artifact_operator.settings import Settings

Manifest = dict[str, Any]

# Runs in the builder image: BuildKit without a daemon of its own and without privileges
# (--oci-worker-no-process-sandbox), then the pushed digest into the termination message,
# where the operator reads it from the pod's status. buildctl's arguments come as "$@", never
# spliced into the script. A generated Dockerfile arrives in $ARTIFACT_DOCKERFILE and goes to
# the directory BuildKit reads the Dockerfile from.
JOB_SCRIPT = """set -eu
if [ -n "${ARTIFACT_DOCKERFILE:-}" ]; then
  printf '%s' "$ARTIFACT_DOCKERFILE" > /tmp/dockerfile/Dockerfile
  set -- "$@" --local dockerfile=/tmp/dockerfile
fi
buildctl-daemonless.sh "$@" --metadata-file /tmp/metadata.json
grep -o '"containerimage.digest": *"sha256:[a-f0-9]*"' /tmp/metadata.json \\
  | grep -o 'sha256:[a-f0-9]*' | head -n 1 | tr -d '\\n' > /dev/termination-log
"""


def _meta(artifact: Artifact, plan: BuildPlan, owner: Manifest | None) -> Manifest:
    labels = {
        "app.kubernetes.io/name": artifact.name,
        "app.kubernetes.io/component": COMPONENT,
        naming.LABEL_MANAGED_BY: naming.MANAGER,
        naming.LABEL_ARTIFACT: artifact.name,
        LABEL_GROUP: plan.group,
        LABEL_CONTAINER: plan.container,
    }
    meta: Manifest = {"name": plan.run, "namespace": plan.namespace, "labels": labels}
    if plan.namespace != artifact.namespace:
        # No owner reference crosses namespaces: the operator deletes these itself.
        labels[LABEL_ARTIFACT_NAMESPACE] = artifact.namespace
        labels[LABEL_ARTIFACT_UID] = artifact.metadata.uid or ""
    elif owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def render_buildrun(artifact: Artifact, plan: BuildPlan, settings: Settings,
                    owner: Manifest | None) -> Manifest:
    """A Shipwright BuildRun with its build spec embedded (no Build object to keep in sync)."""
    source: Manifest
    if isinstance(plan.source, OciSource):
        oci: Manifest = {"image": plan.source.oci.image}
        if plan.source.oci.pull_secret:
            oci["pullSecret"] = plan.source.oci.pull_secret
        source = {"type": "OCI", "ociArtifact": oci}
        context = plan.source.oci.context_dir
    else:
        assert isinstance(plan.source, GitSource), "only resolved plans are rendered"
        git: Manifest = {"url": plan.source.git.url}
        if plan.source.git.revision:
            git["revision"] = plan.source.git.revision
        if plan.source.git.clone_secret:
            git["cloneSecret"] = plan.source.git.clone_secret
        source = {"type": "Git", "git": git}
        context = plan.source.git.context_dir
    if context:
        source["contextDir"] = context
    output: Manifest = {"image": plan.output}
    if settings.build_push_secret:
        output["pushSecret"] = settings.build_push_secret
    spec: Manifest = {
        "source": source,
        "strategy": {"name": settings.build_strategy, "kind": "ClusterBuildStrategy"},
        "paramValues": [{"name": "dockerfile", "value": plan.dockerfile}],
        "output": output,
        "timeout": f"{settings.build_timeout_seconds}s",
    }
    return {"apiVersion": SHIPWRIGHT_API, "kind": "BuildRun",
            "metadata": _meta(artifact, plan, owner), "spec": {"build": {"spec": spec}}}


def _git_context(source: GitSource) -> str:
    """BuildKit's remote context: url#revision:subdir."""
    ref = source.git.revision or ""
    sub = f":{source.git.context_dir}" if source.git.context_dir else ""
    return f"{source.git.url}#{ref}{sub}" if ref or sub else source.git.url


def render_build_job(artifact: Artifact, plan: BuildPlan, settings: Settings,
                     owner: Manifest | None) -> Manifest:
    """A Job running rootless BuildKit: one try (backoffLimit 0), no service-account token,
    stopped after the build timeout (and on cancel) through activeDeadlineSeconds."""
    assert isinstance(plan.source, GitSource), "the Job engine builds git sources only"
    home = "/home/user"  # the rootless image's user (uid 1000)
    args = ["build", "--frontend", "dockerfile.v0",
            "--opt", f"context={_git_context(plan.source)}",
            "--opt", f"filename={plan.dockerfile}",
            "--output", f"type=image,name={plan.output},push=true"]
    mounts: list[Manifest] = [{"name": "buildkitd", "mountPath": f"{home}/.local/share/buildkit"}]
    volumes: list[Manifest] = [{"name": "buildkitd", "emptyDir": {}}]
    env: list[Manifest] = [{"name": "BUILDKITD_FLAGS",
                            "value": "--oci-worker-no-process-sandbox"}]
    if plan.generated is not None:
        # The generated Dockerfile comes from a directory of its own, the context from git
        # (as `docker build -f - <git url>` does).
        mounts.append({"name": "dockerfile", "mountPath": "/tmp/dockerfile"})
        volumes.append({"name": "dockerfile", "emptyDir": {}})
        env.append({"name": "ARTIFACT_DOCKERFILE", "value": plan.generated})
    if settings.build_push_secret:
        mounts.append({"name": "push-secret", "mountPath": f"{home}/.docker", "readOnly": True})
        volumes.append({"name": "push-secret", "secret": {
            "secretName": settings.build_push_secret,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        env.append({"name": "DOCKER_CONFIG", "value": f"{home}/.docker"})
    container: Manifest = {
        "name": BUILDER_CONTAINER,
        "image": settings.build_builder_image,
        "command": ["sh", "-c", JOB_SCRIPT, "buildctl"],
        "args": args,
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "File",
        # Rootless BuildKit makes its own user namespace: seccomp and AppArmor must allow it
        # (the namespace's Pod Security level must be privileged; see README).
        "securityContext": {"seccompProfile": {"type": "Unconfined"},
                            "runAsUser": 1000, "runAsGroup": 1000},
    }
    meta = _meta(artifact, plan, owner)
    pod_meta: Manifest = {
        "labels": dict(meta["labels"]),
        "annotations": {
            f"container.apparmor.security.beta.kubernetes.io/{BUILDER_CONTAINER}": "unconfined"},
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.build_timeout_seconds,
            "template": {"metadata": pod_meta, "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [container],
                "volumes": volumes,
            }},
        },
    }
