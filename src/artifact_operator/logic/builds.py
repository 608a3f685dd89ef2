"""Image builds: what to build and how far it got. Pure. The engine objects that build it
are `build_objects.py`.

A container with `imageBuildConfig` and no `imageUri` needs an image. Its build is named by a
digest of what decides the image (code reference, Dockerfile, the rebuild request token), so
one digest is one engine object whatever replica, restart or resync creates it: creating it
again is a 409, never a second build. A new digest (another revision, a rebuild request) is a
new object; old ones stay, owned by the artifact, as its build history.

Two engines, both existing Kubernetes APIs: a Shipwright `BuildRun` (v1beta1, the build spec
embedded), or a `batch/v1` Job running rootless BuildKit that writes the pushed digest to its
termination message. Either's state is read into the seed's build status enum.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.build_config import (
    CodeRef,
    DataRobotSource,
    GeneratedDockerfile,
    GitSource,
    OciSource,
)
from artifact_operator.api.status import BuildStatus
from artifact_operator.settings import BuildEngine, Settings

Manifest = dict[str, Any]

SHIPWRIGHT_API = "shipwright.io/v1beta1"
COMPONENT = "image-build"
# Not the Deployments' `container-group` label: Services select artifact + container-group,
# and a build pod (Shipwright copies a BuildRun's labels to its pods) must never get traffic.
LABEL_GROUP = f"{naming.PREFIX}/build-group"
LABEL_CONTAINER = f"{naming.PREFIX}/build-container"
# In a separate build namespace (no owner reference can cross namespaces): whose build it is.
LABEL_ARTIFACT_NAMESPACE = f"{naming.PREFIX}/artifact-namespace"
LABEL_ARTIFACT_UID = f"{naming.PREFIX}/artifact-uid"
# `kubectl artifact build NAME` sets this to a new token: a new digest, so a new build.
ANNOTATION_BUILD_REQUEST = f"{naming.PREFIX}/build-request"
# A Job stopped through activeDeadlineSeconds on request, not by running out of time.
ANNOTATION_CANCELLED = f"{naming.PREFIX}/build-cancelled"
# Shipwright's label on the pods of a BuildRun (where its logs are).
SHIPWRIGHT_RUN_LABEL = "buildrun.shipwright.io/name"
BUILDER_CONTAINER = "buildkit"
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")

@dataclass(frozen=True)
class BuildPlan:
    """One container's need for an image."""

    group: str
    container: str
    digest: str  # sha256 hex of what decides the image
    run: str  # name of the BuildRun or Job
    namespace: str  # where it runs: the artifact's, or the build namespace
    output: str  # where the engine pushes, repo:tag
    repository: str  # the same repository, for repo@sha256:...
    source: GitSource | OciSource | None
    dockerfile: str  # its path in the source, or "Dockerfile" when generated
    # Why this container cannot be built here; then nothing is created for it.
    unresolved: str | None = None
    generated: str | None = None  # the text of a generated Dockerfile


@dataclass(frozen=True)
class BuildState:
    status: BuildStatus
    digest: str | None = None  # sha256:..., once built
    message: str | None = None


def needs_build(spec: Mapping[str, Any] | None) -> bool:
    """Whether a raw spec has a container waiting for a built image (cheap, before parsing)."""
    for group in (spec or {}).get("containerGroups") or []:
        for c in (group or {}).get("containers") or []:
            if isinstance(c, dict) and not c.get("imageUri") \
                    and c.get("imageBuildConfig") is not None:
                return True
    return False


def source_digest(code_ref: Mapping[str, Any] | None, dockerfile: Mapping[str, Any],
                  request: str | None, resolved: Mapping[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"codeRef": code_ref, "dockerfile": dockerfile, "request": request}
    if resolved is not None and resolved != code_ref:
        doc["resolved"] = resolved
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


_CODE_REF: TypeAdapter[DataRobotSource | GitSource | OciSource] = TypeAdapter(CodeRef)


def resolve_source(code: object, settings: Settings
                   ) -> tuple[GitSource | OciSource | None, str | None]:
    """(the source a cluster can fetch, why there is none). A datarobot catalog item is
    looked up in the configured catalog sources."""
    if isinstance(code, GitSource | OciSource):
        return code, None
    if not isinstance(code, DataRobotSource):
        return None, "imageBuildConfig has no codeRef: nothing to build from"
    key = f"{code.datarobot.catalog_id}/{code.datarobot.catalog_version_id}"
    mapped = settings.build_catalog_sources.get(key)
    if mapped is None:
        return None, (f"codeRef provider datarobot: catalog item {key} has no source in "
                      "ARTIFACT_OPERATOR_BUILD_CATALOG_SOURCES; map it to a git or oci "
                      "source there, or use provider git or oci")
    try:
        source = _CODE_REF.validate_python(mapped)
    except ValidationError as exc:
        return None, f"the catalog source of {key} is not a valid codeRef: {exc.errors()[0]}"
    if isinstance(source, DataRobotSource):
        return None, f"the catalog source of {key} must be a git or oci codeRef"
    return source, None


def plan_builds(artifact: Artifact, settings: Settings, engine: BuildEngine) -> list[BuildPlan]:
    """A plan per container that has imageBuildConfig and no imageUri, in spec order. Two
    containers with the same source and Dockerfile share one build."""
    request = artifact.metadata.annotations.get(ANNOTATION_BUILD_REQUEST)
    where = settings.build_namespace or artifact.namespace
    repo_base = settings.build_output_repositories.get(artifact.namespace,
                                                       settings.build_output_repository)
    repository = f"{repo_base}/{artifact.namespace}/{artifact.name}" if repo_base else ""
    out = []
    for group in artifact.spec.container_groups:
        for index, c in enumerate(group.containers):
            config = c.image_build_config
            if c.image_uri or config is None:
                continue
            code = config.code_ref
            source, unresolved = resolve_source(code, settings)
            generated, no_base = generate_dockerfile(config.dockerfile, settings)
            # What was resolved is part of the digest: a catalog item mapped elsewhere, or an
            # execution environment with another base image, is another build.
            resolved = source.dump() if source else None
            if generated is not None:
                resolved = {"source": resolved, "dockerfile": generated}
            digest = source_digest(code.dump() if code else None, config.dockerfile.dump(),
                                   request, resolved)
            dockerfile = getattr(config.dockerfile, "path", "Dockerfile")
            unresolved = unresolved or no_base or _unresolved(source, config.dockerfile,
                                                              engine, repo_base)
            out.append(BuildPlan(
                group=group.name, container=naming.container_name(c.name, index),
                digest=digest, run=_run_name(artifact, digest, settings), namespace=where,
                output=f"{repository}:{digest[:20]}", repository=repository, source=source,
                dockerfile=dockerfile, unresolved=unresolved, generated=generated))
    return out


def _run_name(artifact: Artifact, digest: str, settings: Settings) -> str:
    """Named by the digest; in a build namespace shared by many namespaces also by the
    artifact's namespace, so that two namespaces' artifacts of one name and source (whose
    outputs differ) never share a build."""
    if settings.build_namespace is None:
        return naming.fit(f"{artifact.name}-build-{digest[:12]}")
    scoped = hashlib.sha256(f"{artifact.namespace}/{digest}".encode()).hexdigest()
    return naming.fit(f"{artifact.name}-build-{scoped[:12]}")


def generate_dockerfile(dockerfile: object, settings: Settings) -> tuple[str | None, str | None]:
    """(the Dockerfile a `generated` dockerfile stands for, why there is none): the execution
    environment's base image (from the configured table, pinned by digest), the source as
    the working directory, the entrypoint as CMD (exec form)."""
    if not isinstance(dockerfile, GeneratedDockerfile):
        return None, None
    key = f"{dockerfile.execution_environment_id}/{dockerfile.execution_environment_version_id}"
    base = settings.build_execution_environments.get(key)
    if base is None:
        return None, (f"execution environment {key} has no base image in "
                      "ARTIFACT_OPERATOR_BUILD_EXECUTION_ENVIRONMENTS; map it to an image "
                      "pinned by digest there, or provide a Dockerfile in the source")
    return (f"# Generated by {naming.MANAGER} from execution environment {key}\n"
            f"FROM {base}\n"
            "WORKDIR /opt/code\n"
            "COPY . /opt/code\n"
            f"CMD {json.dumps(dockerfile.entrypoint)}\n"), None


def _unresolved(code: GitSource | OciSource | None, dockerfile: object, engine: BuildEngine,
                repository: str | None) -> str | None:
    if isinstance(dockerfile, GeneratedDockerfile) and engine == BuildEngine.shipwright:
        return ("a generated Dockerfile is built by the Job engine only (a Shipwright build "
                "strategy reads its Dockerfile from the source): set "
                "ARTIFACT_OPERATOR_BUILD_ENGINE=job, or provide a Dockerfile in the source")
    if not repository:
        return ("no build output repository is configured "
                "(ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY)")
    if engine == BuildEngine.job and isinstance(code, OciSource):
        return "oci sources are built by the Shipwright engine only; the Job engine takes git"
    if engine == BuildEngine.job and isinstance(code, GitSource) and code.git.clone_secret:
        return ("git cloneSecret is supported by the Shipwright engine only; the Job engine "
                "clones public repositories")
    return None


def image_of(plan: BuildPlan, digest: str) -> str:
    return f"{plan.repository}@{digest}"


def build_selector() -> str:
    """What the operator's watch of BuildRuns or Jobs selects: only its own builds."""
    return f"{naming.LABEL_MANAGED_BY}={naming.MANAGER},app.kubernetes.io/component={COMPONENT}"


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def buildrun_state(run: Mapping[str, Any]) -> BuildState:
    """Shipwright's condition Succeeded (reasons as its controller sets them), the digest of
    status.output, failureDetails."""
    status = run.get("status") or {}
    cond = _condition(run, "Succeeded")
    if cond is None:
        return BuildState(BuildStatus.pending)
    reason, message = str(cond.get("reason") or ""), cond.get("message")
    if cond.get("status") == "True":
        digest = str((status.get("output") or {}).get("digest") or "")
        if DIGEST.match(digest):
            return BuildState(BuildStatus.built, digest)
        return BuildState(BuildStatus.failed,
                          message="the BuildRun succeeded without an image digest in "
                          "status.output.digest")
    if cond.get("status") == "False":
        if reason == "BuildRunCanceled":
            return BuildState(BuildStatus.cancelled, message=f"{reason}: {message or ''}")
        failure = status.get("failureDetails") or {}
        detail = failure.get("message") or message or ""
        return BuildState(BuildStatus.failed,
                          message=f"{failure.get('reason') or reason}: {detail}".strip(": "))
    if reason == "Pending" or not reason:
        return BuildState(BuildStatus.pending, message=message)
    return BuildState(BuildStatus.in_progress, message=message)


def job_state(job: Mapping[str, Any], termination_message: str | None,
              pod_found: bool = True) -> BuildState:
    """A build Job's conditions; the digest from its pod's termination message. A complete
    Job whose pod is gone (deleted, or garbage collected) leaves its digest unknowable."""
    meta = job.get("metadata") or {}
    failed = _condition(job, "Failed")
    if failed is not None and failed.get("status") == "True":
        reason = str(failed.get("reason") or "")
        if reason == "DeadlineExceeded" and \
                (meta.get("annotations") or {}).get(ANNOTATION_CANCELLED) == "true":
            return BuildState(BuildStatus.cancelled, message="cancelled on request")
        return BuildState(BuildStatus.failed,
                          message=f"{reason}: {failed.get('message') or ''}".strip(": "))
    complete = _condition(job, "Complete")
    if complete is not None and complete.get("status") == "True":
        digest = (termination_message or "").strip()
        if DIGEST.match(digest):
            return BuildState(BuildStatus.built, digest)
        if not pod_found:
            return BuildState(BuildStatus.unknown,
                              message="the build Job completed, but its pod is gone, so the "
                              "pushed digest cannot be read; kubectl artifact build NAME "
                              "builds again")
        return BuildState(BuildStatus.failed,
                          message="the build Job completed without an image digest in its "
                          "termination message")
    if int((job.get("status") or {}).get("active") or 0) > 0:
        return BuildState(BuildStatus.in_progress)
    return BuildState(BuildStatus.pending)


def termination_message(pod: Mapping[str, Any]) -> str | None:
    """What the builder container of a finished build pod wrote to its termination message."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == BUILDER_CONTAINER:
            terminated = (cs.get("state") or {}).get("terminated") or {}
            message = terminated.get("message")
            return str(message) if message is not None else None
    return None


def logs_hint(engine: BuildEngine, plan: BuildPlan, artifact_namespace: str) -> str:
    """Where a build's logs are, for condition messages."""
    where = f" -n {plan.namespace}" if plan.namespace != artifact_namespace else ""
    if engine == BuildEngine.shipwright:
        return (f"logs: kubectl logs{where} -l {SHIPWRIGHT_RUN_LABEL}={plan.run} "
                "--all-containers")
    return f"logs: kubectl logs{where} job/{plan.run}"
