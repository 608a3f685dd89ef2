"""Image builds against the real control plane: the operator's side for real, the engines'
controllers played by the test.

Shipwright: a stand-in for its BuildRun CRD (tests/integration/crds/, written for these tests;
Shipwright's own with ARTIFACT_TEST_UPSTREAM_CRDS, tests/support/optional_crds.py); the test
moves BuildRun status the way
Shipwright's controller does (Succeeded: Unknown/Pending, Unknown/Running, then True with
status.output.digest, or False with failureDetails, or BuildRunCanceled).

Job: the test control plane runs no Job controller and no kubelet (no node): the test plays
both, finishing the build pod with the digest as the builder's termination message and
marking the Job Complete (or Failed with DeadlineExceeded, after a cancel).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact
from ..support import optional_crds
from ..support.kubelet import ensure_node, make_pods_ready
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from .test_plugin import user

pytestmark = pytest.mark.cluster

REPO = "registry.example:5000/builds"
SW = ("shipwright.io", "v1beta1", "buildruns")
PLUGIN = str(Path(sys.executable).parent / "kubectl-artifact")
GIT = {"provider": "git", "git": {"url": "https://git.example/shop.git", "revision": "v1"}}


def plugin(cluster: Cluster, namespace: str, *args: str, kubeconfig: Path | None = None,
           ok: bool = True) -> str:
    """`kubectl artifact ...` as its own process, as users run it; its stdout (its stderr
    when it is expected to fail)."""
    config = kubeconfig or cluster.kubeconfig
    done = subprocess.run([PLUGIN, "--kubeconfig", str(config), "-n", namespace, *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode == 0) == ok, done.stderr
    return done.stdout if ok else done.stderr


def install_shipwright(cluster: Cluster) -> None:
    optional_crds.install(cluster.api, "BuildRun")


def digest() -> str:
    return "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def built_artifact(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [{"name": "api",
            "containers": [{"name": "app", "primary": True, "port": 8080,
                            "imageBuildConfig": {"codeRef": GIT}}]}]}}


def status_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_artifact(cluster, namespace, name).get("status") or {})


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    st = status_of(cluster, namespace, name)
    return next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})


def build_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    builds = status_of(cluster, namespace, name).get("builds") or [{}]
    return dict(builds[0])


def runs(cluster: Cluster, namespace: str, artifact: str) -> list[dict[str, Any]]:
    out = cluster.custom.list_namespaced_custom_object(
        *SW[:2], namespace, SW[2], label_selector=f"workload.dev/artifact={artifact}")
    return list(out["items"])


def set_run_status(cluster: Cluster, namespace: str, run: str, status: str, reason: str,
                   **extra: Any) -> None:
    """What Shipwright's controller writes (its Succeeded condition, and more at the end)."""
    cluster.custom.patch_namespaced_custom_object_status(*SW[:2], namespace, SW[2], run, {
        "status": {"conditions": [{"type": "Succeeded", "status": status, "reason": reason,
                                   "message": f"the BuildRun is {reason}",
                                   "lastTransitionTime": now()}], **extra}})


def event_reasons(cluster: Cluster, namespace: str) -> set[str]:
    return {e.reason for e in cluster.core.list_namespaced_event(namespace).items}


def deployment_image(cluster: Cluster, namespace: str, name: str) -> str | None:
    d = found(cluster.apps.read_namespaced_deployment, name, namespace)
    return d.spec.template.spec.containers[0].image if d else None


def running(cluster: Cluster, namespace: str, name: str) -> bool:
    """Play the kubelet for the artifact's Deployment pods; True once it is Ready."""
    make_pods_ready(cluster.core, namespace,
                    f"workload.dev/artifact={name},workload.dev/container-group=api")
    return status_of(cluster, namespace, name).get("phase") == "Ready"


shipwright = optional_crds.served("BuildRun")


def test_shipwright_build_goes_to_ready_on_the_digest_and_fails_and_cancels(
        cluster: Cluster, namespace: str, shipwright: None, tmp_path: Path) -> None:
    env = {"ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO,
           "ARTIFACT_OPERATOR_BUILD_PUSH_SECRET": "push-creds"}
    log = tmp_path / "operator.log"
    proc = OperatorProcess(cluster.kubeconfig, [namespace], log, env=env)
    with proc:  # engine auto: the BuildRun API is served, so Shipwright
        create_artifact(cluster, namespace, built_artifact("shop"))
        (run,) = wait_for(lambda: runs(cluster, namespace, "shop"), timeout=30,
                          what="a BuildRun")
        name = run["metadata"]["name"]
        spec = run["spec"]["build"]["spec"]
        assert spec["source"] == {"type": "Git", "git": GIT["git"]}
        assert spec["strategy"] == {"name": "buildkit", "kind": "ClusterBuildStrategy"}
        assert spec["paramValues"] == [{"name": "dockerfile", "value": "./Dockerfile"}]
        assert spec["output"]["pushSecret"] == "push-creds"
        assert spec["output"]["image"].startswith(f"{REPO}/{namespace}/shop:")
        (owner,) = run["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("Artifact", "shop")
        labels = run["metadata"]["labels"]
        assert (labels["workload.dev/build-group"], labels["workload.dev/build-container"]) == (
            "api", "app")
        assert "workload.dev/container-group" not in labels  # no Service selects its pods
        # Not built yet: nothing rendered, the artifact says why and where the logs are.
        wait_for(lambda: ready(cluster, namespace, "shop").get("reason") == "Building",
                 timeout=30, what="Ready=False Building")
        assert name in ready(cluster, namespace, "shop")["message"]
        assert build_of(cluster, namespace, "shop")["build"]["artifactImageBuildId"] == name
        assert build_of(cluster, namespace, "shop")["build"]["status"] == "PENDING"
        assert found(cluster.apps.read_namespaced_deployment, "shop-api", namespace) is None

        set_run_status(cluster, namespace, name, "Unknown", "Pending")
        set_run_status(cluster, namespace, name, "Unknown", "Running")
        wait_for(lambda: build_of(cluster, namespace, "shop")["build"]["status"] ==
                 "IN_PROGRESS", timeout=30, what="IN_PROGRESS")
        sha = digest()
        set_run_status(cluster, namespace, name, "True", "Succeeded",
                       output={"digest": sha, "size": 1234})
        image = f"{REPO}/{namespace}/shop@{sha}"
        wait_for(lambda: deployment_image(cluster, namespace, "shop-api") == image,
                 timeout=30, what="the Deployment on the built digest")
        wait_for(lambda: running(cluster, namespace, "shop"), timeout=60, what="shop Ready")
        build = build_of(cluster, namespace, "shop")
        assert (build["image"], build["build"]["status"]) == (image, "BUILT")
        # The built image is status, never spec (GitOps tools would fight it).
        stored = get_artifact(cluster, namespace, "shop")
        assert "imageUri" not in stored["spec"]["containerGroups"][0]["containers"][0]
        wait_for(lambda: {"BuildStarted", "BuildSucceeded"} <= event_reasons(cluster, namespace),
                 timeout=30, what="the build's Events")

    # A restart (or another leader) makes no second build for the same source.
    with OperatorProcess(cluster.kubeconfig, [namespace], log, env=env):
        patch_artifact(cluster, namespace, "shop", {"metadata": {"labels": {"touch": "1"}}})
        wait_for(lambda: status_of(cluster, namespace, "shop").get("phase") == "Ready",
                 timeout=30, what="still Ready")
        assert len(runs(cluster, namespace, "shop")) == 1

        # A rebuild request: a new run; it fails, and what runs stays on the last image.
        patch_artifact(cluster, namespace, "shop", {"metadata": {"annotations": {
            "workload.dev/build-request": "r1"}}})
        second = wait_for(lambda: [r for r in runs(cluster, namespace, "shop")
                                   if r["metadata"]["name"] != name], timeout=30,
                          what="a second BuildRun")[0]["metadata"]["name"]
        set_run_status(cluster, namespace, second, "False", "Failed",
                       failureDetails={"reason": "PushFailed", "message": "denied"})
        wait_for(lambda: ready(cluster, namespace, "shop").get("reason") == "BuildFailed",
                 timeout=30, what="BuildFailed")
        assert build_of(cluster, namespace, "shop")["build"]["status"] == "FAILED"
        assert "PushFailed: denied" in ready(cluster, namespace, "shop")["message"]
        assert status_of(cluster, namespace, "shop")["phase"] == "Degraded"
        wait_for(lambda: "BuildFailed" in event_reasons(cluster, namespace), timeout=30,
                 what="a BuildFailed Event")
        assert deployment_image(cluster, namespace, "shop-api") == image

        # Cancel, as `kubectl artifact build cancel` asks and Shipwright then reports.
        patch_artifact(cluster, namespace, "shop", {"metadata": {"annotations": {
            "workload.dev/build-request": "r2"}}})
        third = wait_for(lambda: [r for r in runs(cluster, namespace, "shop")
                                  if r["metadata"]["name"] not in (name, second)],
                         timeout=30, what="a third BuildRun")[0]["metadata"]["name"]
        cluster.custom.patch_namespaced_custom_object(
            *SW[:2], namespace, SW[2], third, {"spec": {"state": "BuildRunCanceled"}})
        set_run_status(cluster, namespace, third, "False", "BuildRunCanceled")
        wait_for(lambda: build_of(cluster, namespace, "shop").get("build", {}).get("status")
                 == "CANCELLED", timeout=30, what="CANCELLED")
        assert len(runs(cluster, namespace, "shop")) == 3


def test_without_an_output_repository_nothing_is_built(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, built_artifact("nobuild"))
    wait_for(lambda: ready(cluster, namespace, "nobuild").get("reason") == "ImageNotBuilt",
             timeout=30, what="ImageNotBuilt")
    assert "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY" in ready(
        cluster, namespace, "nobuild")["message"]
    assert client.BatchV1Api(cluster.api).list_namespaced_job(namespace).items == []


def finish_build(cluster: Cluster, namespace: str, job: Any, sha: str) -> None:
    """The Job controller's and the kubelet's part (neither runs on a control plane without
    a node): the Job's pod ran the builder, which wrote the digest and exited 0, and the Job
    is Complete."""
    core, batch = cluster.core, client.BatchV1Api(cluster.api)
    name = job.metadata.name
    template = cluster.api.sanitize_for_serialization(job.spec.template)
    pod = core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-x1", "labels": {**template["metadata"]["labels"],
                                                      "job-name": name}},
        "spec": template["spec"]})
    ensure_node(core)
    core.create_namespaced_binding(namespace, {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod.metadata.name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "fake-node"}},
        _preload_content=False)
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
        "phase": "Succeeded", "startTime": now(),
        "containerStatuses": [{
            "name": "buildkit", "ready": False, "restartCount": 0,
            "image": pod.spec.containers[0].image, "imageID": "docker://buildkit",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": sha,
                                     "startedAt": now(), "finishedAt": now()}}}]}})
    batch.patch_namespaced_job_status(name, namespace, {"status": {
        "startTime": now(), "completionTime": now(), "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now(),
                        "lastTransitionTime": now()}]}})


def job_built(cluster: Cluster, namespace: str, job: Any, where: str | None = None) -> str:
    """Finish the build Job (in `where`, else the artifact's namespace) with a new digest;
    the image, once the artifact's Deployment runs it."""
    sha = digest()
    finish_build(cluster, where or namespace, job, sha)
    image = f"{REPO}/{namespace}/shop@{sha}"
    wait_for(lambda: deployment_image(cluster, namespace, "shop-api") == image,
             timeout=60, what="the Deployment on the built digest")
    return image


def test_job_engine_builds_with_rootless_buildkit_and_runs_the_digest(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    env = {"ARTIFACT_OPERATOR_BUILD_ENGINE": "job",
           "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO}
    batch = client.BatchV1Api(cluster.api)
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log", env=env):
        create_artifact(cluster, namespace, built_artifact("shop"))
        jobs = wait_for(lambda: batch.list_namespaced_job(
            namespace, label_selector="workload.dev/artifact=shop").items, timeout=30,
            what="a build Job")
        (job,) = jobs
        name = job.metadata.name
        assert job.spec.backoff_limit == 0 and job.spec.active_deadline_seconds == 1800
        pod = job.spec.template.spec
        assert pod.automount_service_account_token is False
        (builder,) = pod.containers
        assert "@sha256:" in builder.image and "buildctl-daemonless.sh" in builder.command[2]
        assert "context=https://git.example/shop.git#v1" in builder.args
        assert job.metadata.owner_references[0].name == "shop"
        wait_for(lambda: ready(cluster, namespace, "shop").get("reason") == "Building",
                 timeout=30, what="Building")
        assert f"kubectl logs job/{name}" in ready(cluster, namespace, "shop")["message"]

        image = job_built(cluster, namespace, job)
        # Status follows once the Deployment has taken its first step (the settle hold).
        wait_for(lambda: running(cluster, namespace, "shop"), timeout=60, what="shop Ready")
        build = build_of(cluster, namespace, "shop")
        assert (build["image"], build["build"]["status"]) == (image, "BUILT")

        # Cancel with `kubectl artifact build cancel`: for a Job, its deadline, now.
        patch_artifact(cluster, namespace, "shop", {"metadata": {"annotations": {
            "workload.dev/build-request": "again"}}})
        second = wait_for(lambda: [j for j in batch.list_namespaced_job(
            namespace, label_selector="workload.dev/artifact=shop").items
            if j.metadata.name != name], timeout=30, what="a second Job")[0].metadata.name
        assert "jobs.batch/" in plugin(cluster, namespace, "build", "cancel", second)
        cancelled = batch.read_namespaced_job(second, namespace)
        assert cancelled.spec.active_deadline_seconds == 1
        assert cancelled.metadata.annotations["workload.dev/build-cancelled"] == "true"
        # The Job controller's answer to a passed deadline.
        batch.patch_namespaced_job_status(second, namespace, {"status": {
            "startTime": now(), "conditions": [{
                "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
                "lastProbeTime": now(), "lastTransitionTime": now()}]}})
        wait_for(lambda: build_of(cluster, namespace, "shop").get("build", {}).get("status")
                 == "CANCELLED", timeout=60, what="CANCELLED")
        assert deployment_image(cluster, namespace, "shop-api") == image


no_shipwright = optional_crds.not_served("BuildRun")


def test_shipwright_installed_after_start_takes_the_new_builds_without_a_restart(
        cluster: Cluster, namespace: str, no_shipwright: None, tmp_path: Path) -> None:
    """Engine auto, started without Shipwright: a Job builds. Shipwright's CRD installed
    later: the Job in flight is followed to its end (no BuildRun beside it), and the next
    build (a rebuild request, a new artifact) is a BuildRun, by the same process."""
    env = {"ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO,
           "ARTIFACT_OPERATOR_API_DISCOVERY_SECONDS": "1"}
    batch = client.BatchV1Api(cluster.api)

    def jobs() -> list[Any]:
        return list(batch.list_namespaced_job(
            namespace, label_selector="workload.dev/artifact=shop").items)

    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                         env=env) as proc:
        assert "image builds: job engine" in proc.logs()
        create_artifact(cluster, namespace, built_artifact("shop"))
        (job,) = wait_for(jobs, timeout=30, what="a build Job")
        wait_for(lambda: ready(cluster, namespace, "shop").get("reason") == "Building",
                 timeout=30, what="Building")

        install_shipwright(cluster)
        wait_for(lambda: "the shipwright engine is served now" in proc.logs(), timeout=30,
                 what="the switch to Shipwright")
        assert proc.proc is not None and proc.proc.poll() is None  # the same process
        # The Job in flight is still the build: still Building on it, its digest read.
        assert f"kubectl logs job/{job.metadata.name}" in ready(
            cluster, namespace, "shop")["message"]
        job_built(cluster, namespace, job)
        assert runs(cluster, namespace, "shop") == []

        # A rebuild request: a BuildRun, not a Job.
        patch_artifact(cluster, namespace, "shop", {"metadata": {"annotations": {
            "workload.dev/build-request": "after-shipwright"}}})
        (run,) = wait_for(lambda: runs(cluster, namespace, "shop"), timeout=30,
                          what="a BuildRun for the rebuild")
        assert len(jobs()) == 1
        set_run_status(cluster, namespace, run["metadata"]["name"], "True", "Succeeded",
                       output={"digest": (second := digest())})
        wait_for(lambda: deployment_image(cluster, namespace, "shop-api")
                 == f"{REPO}/{namespace}/shop@{second}", timeout=60,
                 what="the Deployment on the BuildRun's digest")
        # A new artifact: a BuildRun too.
        create_artifact(cluster, namespace, built_artifact("cart"))
        wait_for(lambda: runs(cluster, namespace, "cart"), timeout=30, what="cart's BuildRun")
        assert not batch.list_namespaced_job(
            namespace, label_selector="workload.dev/artifact=cart").items
        assert proc.logs().count("the shipwright engine is served now") == 1


def test_kubectl_artifact_builds_build_and_cancel(
        cluster: Cluster, namespace: str, shipwright: None, tmp_path: Path) -> None:
    env = {"ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO}
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log", env=env):
        create_artifact(cluster, namespace, built_artifact("shop"))
        (run,) = wait_for(lambda: runs(cluster, namespace, "shop"), timeout=30,
                          what="a BuildRun")
        first = run["metadata"]["name"]
        # As users with the shipped roles: viewers list, editors request and cancel.
        editor = user(cluster, namespace, tmp_path, "erin", "artifact-editor")
        viewer = user(cluster, namespace, tmp_path, "vic", "artifact-viewer")
        listed = json.loads(plugin(cluster, namespace, "builds", "shop", "-o", "json",
                                   kubeconfig=viewer))
        assert listed["totalCount"] == 1
        assert (listed["data"][0]["id"], listed["data"][0]["status"]) == (first, "PENDING")
        assert first in plugin(cluster, namespace, "builds", "shop")

        # POST .../builds: a new request token, so a new build of the same source.
        assert "Forbidden" in plugin(cluster, namespace, "build", "shop", kubeconfig=viewer,
                                     ok=False)
        assert "build requested" in plugin(cluster, namespace, "build", "shop",
                                           kubeconfig=editor)
        second = wait_for(lambda: [r for r in runs(cluster, namespace, "shop")
                                   if r["metadata"]["name"] != first], timeout=30,
                          what="the requested BuildRun")[0]["metadata"]["name"]
        # DELETE .../builds/{id}: Shipwright's cancel, which its controller then reports.
        assert "Forbidden" in plugin(cluster, namespace, "build", "cancel", second,
                                     kubeconfig=viewer, ok=False)
        assert f"buildruns.shipwright.io/{second} cancel requested" in plugin(
            cluster, namespace, "build", "cancel", second, kubeconfig=editor)
        got = cluster.custom.get_namespaced_custom_object(*SW[:2], namespace, SW[2], second)
        assert got["spec"]["state"] == "BuildRunCanceled"
        set_run_status(cluster, namespace, second, "False", "BuildRunCanceled")
        rows = wait_for(lambda: [r for r in json.loads(plugin(
            cluster, namespace, "builds", "shop", "-o", "json"))["data"]
            if r["status"] == "CANCELLED"], timeout=30, what="CANCELLED in the list")
        assert rows[0]["id"] == second


def test_datarobot_catalog_items_build_from_their_configured_source(
        cluster: Cluster, namespace: str, shipwright: None, tmp_path: Path) -> None:
    env = {"ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO,
           "ARTIFACT_OPERATOR_BUILD_CATALOG_SOURCES": json.dumps({"cat-1/ver-1": GIT})}
    mapped, unmapped = built_artifact("mapped"), built_artifact("unmapped")
    for doc, version in ((mapped, "ver-1"), (unmapped, "ver-2")):
        doc["spec"]["containerGroups"][0]["containers"][0]["imageBuildConfig"] = {
            "codeRef": {"datarobot": {"catalogId": "cat-1", "catalogVersionId": version}}}
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log", env=env):
        create_artifact(cluster, namespace, mapped)
        create_artifact(cluster, namespace, unmapped)
        (run,) = wait_for(lambda: runs(cluster, namespace, "mapped"), timeout=30,
                          what="the mapped item's BuildRun")
        assert run["spec"]["build"]["spec"]["source"] == {"type": "Git", "git": GIT["git"]}
        cond = wait_for(lambda: (c := ready(cluster, namespace, "unmapped")).get("reason") ==
                        "SourceUnresolved" and c, timeout=30, what="SourceUnresolved")
        assert "catalog item cat-1/ver-2" in cond["message"]
        assert runs(cluster, namespace, "unmapped") == []


def test_a_build_namespace_runs_the_builds_apart_and_deletes_them_with_their_artifact(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """With ARTIFACT_OPERATOR_BUILD_NAMESPACE the build Jobs run there (a namespace whose
    Pod Security level may be privileged), not owned by the artifact (no owner reference
    crosses namespaces): the operator deletes them when their artifact goes, also those left
    while it was down, and never a live artifact's."""
    builds = f"builds-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": builds}})
    batch = client.BatchV1Api(cluster.api)
    try:
        # Left while the operator was down: the build of an artifact that is gone.
        batch.create_namespaced_job(builds, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {
                "name": "ghost-build-0123456789ab", "labels": {
                    "app.kubernetes.io/managed-by": "artifact-operator",
                    "app.kubernetes.io/component": "image-build",
                    "workload.dev/artifact": "ghost",
                    "workload.dev/artifact-namespace": namespace,
                    "workload.dev/artifact-uid": str(uuid.uuid4())}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "buildkit", "image": "busybox"}]}}}})
        env = {"ARTIFACT_OPERATOR_BUILD_ENGINE": "job",
               "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO,
               "ARTIFACT_OPERATOR_BUILD_NAMESPACE": builds}
        with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                             env=env):
            wait_for(lambda: not batch.list_namespaced_job(
                builds, label_selector="workload.dev/artifact=ghost").items, timeout=30,
                what="the orphaned build deleted")
            uid = create_artifact(cluster, namespace, built_artifact("shop"))["metadata"]["uid"]
            (job,) = wait_for(lambda: batch.list_namespaced_job(
                builds, label_selector="workload.dev/artifact=shop").items, timeout=30,
                what="a build Job in the build namespace")
            assert batch.list_namespaced_job(namespace).items == []
            labels = job.metadata.labels
            assert (labels["workload.dev/artifact-namespace"],
                    labels["workload.dev/artifact-uid"]) == (namespace, uid)
            assert not job.metadata.owner_references
            name = job.metadata.name
            wait_for(lambda: ready(cluster, namespace, "shop").get("reason") == "Building",
                     timeout=30, what="Building")
            assert f"kubectl logs -n {builds} job/{name}" in ready(
                cluster, namespace, "shop")["message"]

            job_built(cluster, namespace, job, builds)
            wait_for(lambda: build_of(cluster, namespace, "shop").get("buildNamespace")
                     == builds, timeout=60, what="status naming the build namespace")
            listed = json.loads(plugin(cluster, namespace, "builds", "shop", "-o", "json"))
            assert [(r["id"], r["status"]) for r in listed["data"]] == [(name, "BUILT")]

            cluster.custom.delete_namespaced_custom_object(
                "workload.dev", "v1alpha1", namespace, "artifacts", "shop")
            wait_for(lambda: not batch.list_namespaced_job(
                builds, label_selector="workload.dev/artifact=shop").items, timeout=30,
                what="the build deleted with its artifact")
    finally:
        cluster.core.delete_namespace(builds)
