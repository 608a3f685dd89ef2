"""Model cache warm-up on a real node: the warm-up Job's pod really runs the image's
`download-to-cache` into the claim before any server starts, a second artifact on the same
image reuses the download, and a download that fails leaves the artifact Degraded with the
Job's reason and the pod's own last words.

The operator runs as users run it, with its defaults (Deployments wait for the warm-up):
`artifact-operator run --all-namespaces` as a process with the admin kubeconfig. The image is
a stand-in for a NIM (tests/support/images.py NIM_WARM): its `download-to-cache` writes the
"weights" (naming its pod and the sha256 of the NGC_API_KEY it was given) and refuses a key
NGC would refuse; its server exits when the weights are not there. So a Ready artifact proves
the order, and what the server serves proves who downloaded it and with which credential.
Claims bind to hostPath volumes on the node, owned by uid 1000 (the pods' user).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from artifact_operator.api import naming
from artifact_operator.logic import warmup

from ..conftest import get_artifact, install_crd
from ..support.images import NIM_PORT
from ..support.operator import OperatorProcess
from ..support.wait import wait_for
from .support import E2E
from .test_pods import _crd_terminating

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def operator(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    extensions = client.ApiextensionsV1Api(e2e.cluster.api)
    wait_for(lambda: not _crd_terminating(extensions), timeout=120,
             what="an uninstalled CRD gone")
    install_crd(e2e.cluster.api)
    proc = OperatorProcess(e2e.cluster.kubeconfig, None,
                           tmp_path_factory.mktemp("warmup") / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print("---- operator log ----\n" + proc.logs()[-12000:])


@pytest.fixture
def volume(e2e: E2E, namespace: str) -> Iterator[Callable[[str], None]]:
    """volume(claim): a hostPath PersistentVolume bound in advance to that claim."""
    if e2e.node is None:
        pytest.fail("hostPath volumes need the local node", pytrace=False)
    root = Path("/tmp") / f"artifact-e2e-{namespace}"
    root.mkdir()
    root.chmod(0o755)
    made: list[str] = []

    def make(claim: str) -> None:
        path = root / claim
        path.mkdir()
        shutil.chown(path, 1000, 1000)
        path.chmod(0o755)
        name = f"{namespace}-{claim}"
        e2e.cluster.core.create_persistent_volume({"metadata": {"name": name}, "spec": {
            "capacity": {"storage": "200Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": claim},
            "hostPath": {"path": str(path), "type": "Directory"}}})
        made.append(name)

    yield make
    for name in made:
        e2e.cluster.core.delete_persistent_volume(name)
    shutil.rmtree(root, ignore_errors=True)


def credential(e2e: E2E, namespace: str, name: str, key: str) -> None:
    e2e.cluster.core.create_namespaced_secret(namespace, {"metadata": {
        "name": name, "labels": {naming.LABEL_USABLE: "true"}},
        "stringData": {"NGC_API_KEY": key}})


def model_artifact(e2e: E2E, name: str, mode: str, secret: str) -> dict[str, Any]:
    storage: dict[str, Any] = {"mode": mode}
    if mode == "dedicatedPvc":
        storage["warmUp"] = True
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name},
            "spec": {"type": "nim", "storage": storage, "containerGroups": [{
                "name": "llm", "containers": [{
                    "name": "nim", "imageUri": e2e.refs["nim-warm"], "primary": True,
                    "port": NIM_PORT,
                    "environmentVars": [{"name": "NGC_API_KEY", "source": "dr-credential",
                                         "drCredentialId": secret, "key": "NGC_API_KEY"}],
                    "readinessProbe": {"path": "/v1/health/ready", "initialDelaySeconds": 0,
                                       "periodSeconds": 1}}]}]}}


def apply(e2e: E2E, namespace: str, manifest: dict[str, Any]) -> None:
    e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))


def status(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_artifact(e2e.cluster, namespace, name).get("status") or {})


def ready(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    st = status(e2e, namespace, name)
    assert (st.get("phase"), st.get("ready")) == ("Ready", "1/1"), st
    return st


def pods(e2e: E2E, namespace: str, selector: str) -> list[Any]:
    return [p for p in e2e.cluster.core.list_namespaced_pod(
        namespace, label_selector=selector).items if p.metadata.deletion_timestamp is None]


def warm_up_jobs(e2e: E2E, namespace: str) -> list[Any]:
    return list(client.BatchV1Api(e2e.cluster.api).list_namespaced_job(
        namespace, label_selector=warmup.selector()).items)


def test_the_model_is_downloaded_once_before_any_server_and_shared(
        e2e: E2E, operator: OperatorProcess, namespace: str,
        volume: Callable[[str], None]) -> None:
    key = secrets.token_urlsafe(24)
    credential(e2e, namespace, "ngc-api", key)
    image = e2e.refs["nim-warm"]
    cache, job_name = naming.cache_claim_name(image), warmup.job_name(
        naming.cache_claim_name(image), image)
    volume(cache)
    apply(e2e, namespace, model_artifact(e2e, "first", "nimCache", "ngc-api"))

    st = wait_for(lambda: ready(e2e, namespace, "first"), timeout=180, interval=1,
                  what="first Ready on the warm cache")
    assert st["storage"] == {"mode": "nimCache", "claimName": cache, "phase": "Bound",
                             "warmUp": {"phase": "Ready", "job": job_name}}
    job = client.BatchV1Api(e2e.cluster.api).read_namespaced_job(job_name, namespace)
    assert job.status.succeeded == 1
    (downloader,) = pods(e2e, namespace, f"job-name={job_name}")
    assert downloader.spec.automount_service_account_token is False
    assert downloader.spec.containers[0].command == ["download-to-cache"]
    assert downloader.status.container_statuses[0].state.terminated.exit_code == 0
    log = e2e.cluster.core.read_namespaced_pod_log(downloader.metadata.name, namespace)
    assert f"{downloader.metadata.name} uid=1000 into /opt/nim/.cache" in log, log

    # The server started after the download ended, and serves what the Job's pod wrote,
    # with the credential the artifact's primary container names.
    (server,) = pods(e2e, namespace, f"{naming.LABEL_ARTIFACT}=first")
    assert server.metadata.creation_timestamp >= job.status.completion_time
    model = e2e.pod_get(server, NIM_PORT, "/model").body
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert model == f"weights fetched by {downloader.metadata.name} with key sha256:{digest}\n"

    # A second artifact on the image: the same cache, no second download.
    apply(e2e, namespace, model_artifact(e2e, "second", "nimCache", "ngc-api"))
    st = wait_for(lambda: ready(e2e, namespace, "second"), timeout=120, interval=1,
                  what="second Ready")
    assert st["storage"]["warmUp"] == {"phase": "Ready", "job": job_name}
    assert [j.metadata.name for j in warm_up_jobs(e2e, namespace)] == [job_name]
    assert len(pods(e2e, namespace, f"job-name={job_name}")) == 1
    (other,) = pods(e2e, namespace, f"{naming.LABEL_ARTIFACT}=second")
    assert e2e.pod_get(other, NIM_PORT, "/model").body == model
    assert e2e.pod_get(other, NIM_PORT, "/downloads").body == f"{downloader.metadata.name}\n"


def test_a_failing_download_is_degraded_with_the_jobs_reason_and_no_server_starts(
        e2e: E2E, operator: OperatorProcess, namespace: str,
        volume: Callable[[str], None]) -> None:
    credential(e2e, namespace, "ngc-expired", "invalid-key")
    claim = naming.dedicated_claim_name("refused")
    volume(claim)
    apply(e2e, namespace, model_artifact(e2e, "refused", "dedicatedPvc", "ngc-expired"))
    job_name = warmup.job_name(claim, e2e.refs["nim-warm"])

    def failed() -> dict[str, Any]:
        got = dict(status(e2e, namespace, "refused").get("storage", {}).get("warmUp") or {})
        assert got.get("phase") == "Failed", got
        return got

    # The Job controller retries twice (backoffLimit 2), 10 s and 20 s apart.
    got = wait_for(failed, timeout=240, interval=2, what="the warm-up Failed")
    assert got["job"] == job_name and got["reason"] == "BackoffLimitExceeded"
    assert "error: 401 Unauthorized: NGC_API_KEY was rejected" in got["message"], got
    st = status(e2e, namespace, "refused")
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert (st["phase"], degraded["reason"]) == ("Degraded", "CacheWarmUpFailed")
    attempts = pods(e2e, namespace, f"job-name={job_name}")
    assert len(attempts) == 3 and all(p.status.phase == "Failed" for p in attempts)
    assert not e2e.cluster.apps.list_namespaced_deployment(
        namespace, label_selector=f"{naming.LABEL_ARTIFACT}=refused").items
