"""Model cache warm-ups in the reconcile (controller/warmup.py), against the in-memory FakeKube:
the Job is created once per claim and image, the Deployments wait for it (or not), a claim is
marked warm once, and a warm claim never starts a download again."""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.controller.warmup import WarmUps
from artifact_operator.logic import warmup
from artifact_operator.settings import CacheWarmUp, Settings

from ..support.builders import NIM_IMAGE, nim_artifact
from ..support.fake_kube import Write
from .test_reconcile import NS, Harness, condition, deployment_rolled_out

Obj = dict[str, Any]
CACHE = naming.cache_claim_name(NIM_IMAGE)
JOB = warmup.job_name(CACHE, NIM_IMAGE)


class WarmHarness(Harness):
    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings(status_settle_seconds=0)
        super().__init__(settings=settings)
        self.warmups = WarmUps(self.kube.as_kube(), settings, self.view, self.events, None,
                               self.reconciler.enqueue)
        self.reconciler.warmups = self.warmups
        self.sync_jobs()

    def sync_jobs(self) -> None:
        """The Jobs' watch delivers what is stored (and has listed once)."""
        self.warmups.watch.replace(self.kube.of_kind("Job"))
        self.warmups.watch.synced.set()
        self.catch_up()

    def finish(self, name: str = JOB, failed: bool = False) -> None:
        """The Job controller ends the Job."""
        job = self.kube.stored("Job", NS, name)
        assert job is not None
        kind = "Failed" if failed else "Complete"
        self.kube.update_status(job, {"conditions": [{
            "type": kind, "status": "True", "reason": "BackoffLimitExceeded" if failed else None,
            "message": "Job has reached the specified backoff limit" if failed else None}]})
        self.sync_jobs()


def nim(name: str, mode: str = "nimCache", **storage: Any) -> Obj:
    return nim_artifact(name, storage={"mode": mode, **storage})


async def test_the_cache_warms_before_its_deployment_exists_and_once() -> None:
    h = WarmHarness()
    h.create(nim("web"))
    await h.reconcile()
    assert h.kube.writes_except("Artifact/status") == [
        Write("create", "PersistentVolumeClaim", CACHE), Write("create", "Job", JOB)]
    assert h.kube.stored("Deployment", NS, "web-llm") is None
    status = h.status()
    assert status["storage"]["warmUp"] == {"phase": "Pending", "job": JOB}
    assert condition(status, "Ready")["reason"] == "CacheWarmingUp"
    job, claim = h.kube.stored("Job", NS, JOB), h.kube.stored("PersistentVolumeClaim", NS, CACHE)
    assert job is not None and claim is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == claim["metadata"]["uid"]

    h.sync_jobs()
    await h.reconcile()
    assert h.kube.writes_except("Artifact/status") == []  # no second Job
    h.finish()
    await h.reconcile()
    assert h.kube.writes_except("Artifact/status", "Service") == [
        Write("patch", "PersistentVolumeClaim", CACHE), Write("apply", "Deployment", "web-llm")]
    claim = h.kube.stored("PersistentVolumeClaim", NS, CACHE)
    assert claim is not None and warmup.is_warm(claim, NIM_IMAGE)
    assert h.status()["storage"]["warmUp"]["phase"] == "Ready"

    # The completed Job deleted: the claim says it is warm, nothing is downloaded again.
    await h.kube.delete(job)
    h.sync_jobs()
    await h.reconcile()
    assert h.kube.writes_except("Artifact/status") == []
    assert h.kube.of_kind("Job") == []


async def test_a_second_artifact_on_the_image_reuses_the_download() -> None:
    h = WarmHarness()
    h.create(nim("a"))
    await h.reconcile("a")
    h.create(nim("b"))
    await h.reconcile("b")  # the watch has not shown a's Job yet: the create is a 409
    assert h.kube.writes_except("Artifact/status") == []
    assert len(h.kube.of_kind("Job")) == 1
    h.finish()
    await h.reconcile("b")
    h.catch_up()
    await h.reconcile("a")
    assert h.kube.writes_except("Artifact/status", "Service") == [
        Write("apply", "Deployment", "a-llm")]  # the claim was marked once, by b


async def test_a_failed_download_is_degraded_with_the_last_words_of_its_pod() -> None:
    h = WarmHarness()
    h.create(nim("web"))
    await h.reconcile()
    h.kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{JOB}-x1", "namespace": NS, "labels": {"job-name": JOB}},
        "status": {"containerStatuses": [{"name": "warm-up", "state": {"terminated": {
            "exitCode": 1, "finishedAt": "2026-01-01T00:00:01Z",
            "message": "fetching manifest\nerror: 401 Unauthorized\n"}}}]}})
    h.finish(failed=True)
    await h.reconcile()
    status = h.status()
    assert status["phase"] == "Degraded"
    assert status["storage"]["warmUp"] == {
        "phase": "Failed", "job": JOB, "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit; fetching manifest / error: "
        "401 Unauthorized"}
    assert condition(status, "Degraded")["reason"] == "CacheWarmUpFailed"
    assert h.kube.stored("Deployment", NS, "web-llm") is None


async def test_background_renders_at_once_and_off_creates_no_job() -> None:
    h = WarmHarness(Settings(status_settle_seconds=0, cache_warm_up=CacheWarmUp.background))
    h.create(nim("web"))
    await h.reconcile()
    assert {w.kind for w in h.kube.writes_except("Artifact/status")} == {
        "PersistentVolumeClaim", "Job", "Deployment", "Service"}
    assert h.status()["storage"]["warmUp"]["phase"] == "Pending"

    off = WarmHarness(Settings(status_settle_seconds=0, cache_warm_up=CacheWarmUp.off))
    off.create(nim("web"))
    await off.reconcile()
    assert off.kube.of_kind("Job") == [] and "warmUp" not in off.status()["storage"]


async def test_dedicated_claims_warm_on_request_and_a_new_image_is_a_new_job() -> None:
    h = WarmHarness()
    h.create(nim("web", "dedicatedPvc", warmUp=True))
    await h.reconcile()
    first = warmup.job_name("web-model-store", NIM_IMAGE)
    assert [j["metadata"]["name"] for j in h.kube.of_kind("Job")] == [first]
    h.finish(first)
    await h.reconcile()
    deployment_rolled_out(h, "web-llm")
    claim = h.kube.stored("PersistentVolumeClaim", NS, "web-model-store")
    assert claim is not None
    h.kube.update_status(claim, {"phase": "Bound"})
    h.catch_up()
    await h.reconcile()
    assert condition(h.status(), "Ready")["status"] == "True"

    other = "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.4.0"
    await h.edit({"containerGroups": [{"name": "llm", "containers": [{
        "name": "nim", "imageUri": other, "primary": True, "port": 8000}]}]})
    await h.reconcile()
    second = warmup.job_name("web-model-store", other)
    assert sorted(j["metadata"]["name"] for j in h.kube.of_kind("Job")) == sorted(
        [first, second])
    # The running Deployment is neither changed nor scaled down while the new image warms.
    assert {w.kind for w in h.kube.writes_except("Artifact/status")} == {"Job"}
    deployment = h.kube.stored("Deployment", NS, "web-llm")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == NIM_IMAGE
    assert h.status()["containerGroups"][0]["readyReplicas"] == 1


async def test_a_cache_its_servers_already_run_on_is_marked_warm_without_a_job() -> None:
    """An artifact that ran before warm-ups existed: its ready servers prove the cache."""
    plain = WarmHarness(Settings(status_settle_seconds=0, cache_warm_up=CacheWarmUp.off))
    plain.create(nim("web"))
    await plain.reconcile()
    deployment_rolled_out(plain, "web-llm")
    upgraded = WarmHarness()
    upgraded.kube.objects = plain.kube.objects  # the same cluster, the operator upgraded
    upgraded.sync_jobs()
    await upgraded.reconcile()
    assert upgraded.kube.writes_except("Artifact/status") == [
        Write("patch", "PersistentVolumeClaim", CACHE)]
    assert upgraded.kube.of_kind("Job") == []
    assert upgraded.status()["storage"]["warmUp"]["phase"] == "Ready"
