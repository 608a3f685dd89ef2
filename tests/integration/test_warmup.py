"""Model cache warm-up against the real control plane, with the operator as its own process
and its default settings (Deployments wait for the warm-up).

This control plane runs no Job controller and no kubelet, so the test plays both where a Job
must move (active, Complete, Failed with a failed pod's log), as tests/integration/test_builds.py
does for the build Jobs; what real pods do is tests/e2e/test_warmup.py's. Claims bind to
hostPath PersistentVolumes of a storage class of the test's own (test_nim_storage.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from artifact_operator.api import naming
from artifact_operator.logic import warmup

from ..conftest import Cluster, create_artifact, patch_artifact
from ..support.builders import NIM_IMAGE, OTHER_NIM_IMAGE, nim_artifact
from ..support.kubelet import ensure_node, make_pods_ready
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from .test_nim_storage import (
    add_volume,
    audit_position,
    claim,
    condition,
    create_all,
    deployment,
    operator_writes,
    status,
    storage_class,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.cluster

CACHE = naming.cache_claim_name(NIM_IMAGE)
JOBS = warmup.selector()
NGC = {"name": "NGC_API_KEY", "source": "dr-credential", "drCredentialId": "ngc-api",
       "key": "NGC_API_KEY"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start(cluster: Cluster, namespace: str, tmp_path: Path, storage: str,
          **env: str) -> OperatorProcess:
    """The operator with its defaults, but for the storage class of the test's volumes."""
    settings = {"ARTIFACT_OPERATOR_STORAGE_CLASS": storage,
                **{f"ARTIFACT_OPERATOR_{k.upper()}": v for k, v in env.items()}}
    log = tmp_path / f"operator-{len(list(tmp_path.glob('operator-*.log')))}.log"
    return OperatorProcess(cluster.kubeconfig, [namespace], log, env=settings).start()


def cached(name: str, image: str = NIM_IMAGE) -> dict[str, Any]:
    return nim_artifact(name, image, env=[NGC], storage={"mode": "nimCache"})


def dedicated(name: str, image: str = NIM_IMAGE, **storage: Any) -> dict[str, Any]:
    return nim_artifact(name, image, env=[NGC],
                        storage={"mode": "dedicatedPvc", "warmUp": True, **storage})


def ngc_secret(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_secret(namespace, {"metadata": {
        "name": "ngc-api", "labels": {naming.LABEL_USABLE: "true"}},
        "stringData": {"NGC_API_KEY": "nvapi-test"}})


def jobs(cluster: Cluster, namespace: str) -> list[Any]:
    return list(client.BatchV1Api(cluster.api).list_namespaced_job(
        namespace, label_selector=JOBS).items)


def warm_up(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict((status(cluster, namespace, name).get("storage") or {}).get("warmUp") or {})


def in_phase(cluster: Cluster, namespace: str, names: list[str], phase: str) -> bool:
    for name in names:
        got = warm_up(cluster, namespace, name)
        assert got.get("phase") == phase, (name, got)
    return True


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    make_pods_ready(cluster.core, namespace, f"{naming.LABEL_ARTIFACT}={name}")
    st = status(cluster, namespace, name)
    assert condition(st, "Ready").get("status") == "True", st
    return st


def job_controller(cluster: Cluster, namespace: str, name: str, state: str) -> None:
    """The Job controller's part (none runs here): the Job `active`, `complete` or `failed`."""
    body: dict[str, Any] = {"startTime": now()}
    if state == "active":
        body["active"] = 1
    elif state == "complete":
        body.update(succeeded=1, completionTime=now(), conditions=[{
            "type": "Complete", "status": "True", "lastProbeTime": now(),
            "lastTransitionTime": now()}])
    else:
        body.update(failed=3, conditions=[{
            "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastProbeTime": now(), "lastTransitionTime": now()}])
    client.BatchV1Api(cluster.api).patch_namespaced_job_status(name, namespace,
                                                               {"status": body})


def failed_pod(cluster: Cluster, namespace: str, job: Any, log: str) -> None:
    """The kubelet's part: a pod of the Job ran the download, which failed; the end of its
    log is its termination message (terminationMessagePolicy FallbackToLogsOnError)."""
    core = cluster.core
    template = cluster.api.sanitize_for_serialization(job.spec.template)
    name = f"{job.metadata.name[:50]}-x1"
    core.create_namespaced_pod(namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {**template["metadata"]["labels"],
                                 "job-name": job.metadata.name}}, "spec": template["spec"]})
    ensure_node(core)
    core.create_namespaced_binding(namespace, {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "fake-node"}},
        _preload_content=False)
    core.patch_namespaced_pod_status(name, namespace, {"status": {
        "phase": "Failed", "startTime": now(), "containerStatuses": [{
            "name": warmup.CONTAINER, "ready": False, "restartCount": 0, "image": NIM_IMAGE,
            "imageID": "docker://nim", "state": {"terminated": {
                "exitCode": 1, "reason": "Error", "message": log, "startedAt": now(),
                "finishedAt": now()}}}]}})


def created_jobs(cluster: Cluster, namespace: str, since: int) -> list[int]:
    """Response codes of the operator's Job creates since audit line `since`."""
    return [e["responseStatus"]["code"]
            for e in operator_writes(cluster, namespace, "jobs", since) if e["verb"] == "create"]


def test_one_download_per_cache_before_any_server_shared_by_every_artifact_on_the_image(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    ngc_secret(cluster, namespace)
    operators.append(start(cluster, namespace, tmp_path, storage_class))
    since = audit_position(cluster)
    create_all(cluster, namespace, [cached("x1"), cached("x2")])

    (job,) = wait_for(lambda: jobs(cluster, namespace), timeout=60, what="the warm-up Job")
    assert job.metadata.name == warmup.job_name(CACHE, NIM_IMAGE)
    pvc = claim(cluster, namespace, CACHE)
    # The claim's, not one artifact's: deleting x1 must not stop the download x2 waits for.
    assert [(r.kind, r.name, r.uid) for r in job.metadata.owner_references] == [
        ("PersistentVolumeClaim", CACHE, pvc.metadata.uid)]
    pod = job.spec.template.spec
    (container,) = pod.containers
    assert (container.image, container.command) == (NIM_IMAGE, ["download-to-cache"])
    assert [(e.name, e.value_from.secret_key_ref.name if e.value_from else e.value)
            for e in container.env] == [("NGC_API_KEY", "ngc-api"),
                                        ("NIM_CACHE_PATH", "/opt/nim/.cache")]
    assert pod.volumes[0].persistent_volume_claim.claim_name == CACHE
    assert pod.automount_service_account_token is False and job.spec.backoff_limit == 2

    # No server before the cache is warm; both artifacts say why.
    wait_for(lambda: in_phase(cluster, namespace, ["x1", "x2"], "Pending"), timeout=60,
             what="both Pending")
    for name in ("x1", "x2"):
        assert condition(status(cluster, namespace, name), "Ready")["reason"] == \
            "CacheWarmingUp"
    assert cluster.apps.list_namespaced_deployment(namespace).items == []
    assert created_jobs(cluster, namespace, since).count(201) == 1

    add_volume(cluster, storage_class, "200Gi")
    job_controller(cluster, namespace, job.metadata.name, "active")
    wait_for(lambda: in_phase(cluster, namespace, ["x1", "x2"], "Downloading"), timeout=60,
             what="both Downloading")
    assert cluster.apps.list_namespaced_deployment(namespace).items == []

    job_controller(cluster, namespace, job.metadata.name, "complete")
    wait_for(lambda: deployment(cluster, namespace, "x1-llm") and
             deployment(cluster, namespace, "x2-llm"), timeout=60, what="both Deployments")
    annotations = claim(cluster, namespace, CACHE).metadata.annotations
    assert annotations[warmup.warm_key(NIM_IMAGE)] == NIM_IMAGE
    for name in ("x1", "x2"):
        st = wait_for(lambda n=name: ready(cluster, namespace, n), timeout=60,
                      what=f"{name} Ready")
        assert st["storage"]["warmUp"] == {"phase": "Ready", "job": job.metadata.name}

    # The completed Job deleted, a third artifact on the image, a change of the first: the
    # claim says it is warm, so nothing downloads again.
    client.BatchV1Api(cluster.api).delete_namespaced_job(job.metadata.name, namespace)
    wait_for(lambda: not jobs(cluster, namespace), timeout=30, what="the Job gone")
    since = audit_position(cluster)
    create_artifact(cluster, namespace, cached("x3"))
    patch_artifact(cluster, namespace, "x1", {"spec": {"displayName": "x1, changed"}})
    wait_for(lambda: ready(cluster, namespace, "x3"), timeout=60, what="x3 Ready")
    wait_for(lambda: status(cluster, namespace, "x1").get("observedGeneration") == 2,
             timeout=30, what="x1's change handled")
    assert jobs(cluster, namespace) == [] and created_jobs(cluster, namespace, since) == []


def test_a_failed_download_is_degraded_with_the_jobs_reason_and_retried_on_request(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    ngc_secret(cluster, namespace)
    operators.append(start(cluster, namespace, tmp_path, storage_class))
    create_artifact(cluster, namespace, dedicated("llm"))
    (job,) = wait_for(lambda: jobs(cluster, namespace), timeout=60, what="the warm-up Job")
    assert job.metadata.name == warmup.job_name("llm-model-store", NIM_IMAGE)
    failed_pod(cluster, namespace, job, "fetching model manifest\n"
               "error: 401 Unauthorized: NGC_API_KEY was rejected\n")
    job_controller(cluster, namespace, job.metadata.name, "failed")

    got = wait_for(lambda: (w := warm_up(cluster, namespace, "llm")).get("phase") == "Failed"
                   and w, timeout=60, what="the warm-up Failed")
    assert got == {"phase": "Failed", "job": job.metadata.name,
                   "reason": "BackoffLimitExceeded",
                   "message": "Job has reached the specified backoff limit; fetching model "
                   "manifest / error: 401 Unauthorized: NGC_API_KEY was rejected"}
    st = status(cluster, namespace, "llm")
    degraded = condition(st, "Degraded")
    assert (st["phase"], degraded["reason"]) == ("Degraded", "CacheWarmUpFailed")
    assert f"kubectl delete job {job.metadata.name}" in degraded["message"]
    assert deployment(cluster, namespace, "llm-llm") is None

    # Deleting the failed Job is how to try again: the operator creates it anew.
    client.BatchV1Api(cluster.api).delete_namespaced_job(job.metadata.name, namespace)
    (again,) = wait_for(lambda: [j for j in jobs(cluster, namespace)
                                 if j.metadata.uid != job.metadata.uid], timeout=60,
                        what="the warm-up Job created again")
    assert again.metadata.name == job.metadata.name
    wait_for(lambda: in_phase(cluster, namespace, ["llm"], "Pending"), timeout=60,
             what="Pending again")


def test_a_new_image_warms_a_new_job_while_the_running_servers_stay_as_they_are(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    ngc_secret(cluster, namespace)
    operators.append(start(cluster, namespace, tmp_path, storage_class))
    create_artifact(cluster, namespace, dedicated("llm", pvcSize="10Gi"))
    add_volume(cluster, storage_class, "100Gi")
    (first,) = wait_for(lambda: jobs(cluster, namespace), timeout=60, what="the first Job")
    job_controller(cluster, namespace, first.metadata.name, "complete")
    wait_for(lambda: ready(cluster, namespace, "llm"), timeout=60, what="llm Ready")

    # The warm record is the operator's own annotation: growing the claim keeps it.
    patch_artifact(cluster, namespace, "llm", {"spec": {"storage": {"pvcSize": "20Gi"}}})
    wait_for(lambda: claim(cluster, namespace, "llm-model-store")
             .spec.resources.requests["storage"] == "20Gi", timeout=30, what="the claim grown")
    annotations = claim(cluster, namespace, "llm-model-store").metadata.annotations
    assert annotations[warmup.warm_key(NIM_IMAGE)] == NIM_IMAGE

    before = deployment(cluster, namespace, "llm-llm")
    patch_artifact(cluster, namespace, "llm", {"spec": {"containerGroups": [{
        "name": "llm", "containers": [{"name": "nim", "imageUri": OTHER_NIM_IMAGE,
                                       "primary": True, "port": 8000,
                                       "environmentVars": [NGC]}]}]}})
    second = wait_for(lambda: [j for j in jobs(cluster, namespace)
                               if j.metadata.name != first.metadata.name], timeout=60,
                      what="the second Job")[0]
    assert second.metadata.name == warmup.job_name("llm-model-store", OTHER_NIM_IMAGE)
    wait_for(lambda: status(cluster, namespace, "llm").get("observedGeneration") == 3,
             timeout=30, what="the image change handled")
    st = status(cluster, namespace, "llm")
    assert condition(st, "Ready")["reason"] == "CacheWarmingUp"
    assert st["containerGroups"][0]["readyReplicas"] == 1  # still serving the old image
    now_running = deployment(cluster, namespace, "llm-llm")
    assert now_running.metadata.generation == before.metadata.generation
    assert now_running.spec.template.spec.containers[0].image == NIM_IMAGE

    job_controller(cluster, namespace, second.metadata.name, "complete")
    wait_for(lambda: deployment(cluster, namespace, "llm-llm").spec.template.spec
             .containers[0].image == OTHER_NIM_IMAGE, timeout=60, what="the new image rolled")


def test_servers_already_running_on_a_cache_are_not_held_for_a_download(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    """Upgrading to an operator with warm-ups: a cache whose servers run ready on it holds
    the model; it is marked warm, no Job runs and nothing that runs is touched."""
    ngc_secret(cluster, namespace)
    old = start(cluster, namespace, tmp_path, storage_class, cache_warm_up="off")
    operators.append(old)
    create_artifact(cluster, namespace, cached("x1"))
    add_volume(cluster, storage_class, "200Gi")
    wait_for(lambda: deployment(cluster, namespace, "x1-llm"), timeout=60, what="x1-llm")
    wait_for(lambda: ready(cluster, namespace, "x1"), timeout=60, what="x1 Ready")
    old.stop()

    since = audit_position(cluster)
    operators.append(start(cluster, namespace, tmp_path, storage_class))
    wait_for(lambda: in_phase(cluster, namespace, ["x1"], "Ready"), timeout=60,
             what="the cache marked warm")
    assert found(cluster.core.read_namespaced_persistent_volume_claim, CACHE, namespace) \
        .metadata.annotations[warmup.warm_key(NIM_IMAGE)] == NIM_IMAGE
    assert condition(status(cluster, namespace, "x1"), "Ready")["status"] == "True"
    assert jobs(cluster, namespace) == []
    assert operator_writes(cluster, namespace, "deployments", since) == []
