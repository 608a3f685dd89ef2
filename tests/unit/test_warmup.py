"""Model cache warm-up, the pure part (logic/warmup.py): which claims get a Job, the Job, its
phase from the Job's status, which groups wait, and what status says about it."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.api import naming
from artifact_operator.api.status import CachePhase, WarmUpStatus
from artifact_operator.logic import warmup
from artifact_operator.logic.approval import Decision, Grant
from artifact_operator.logic.render import Rendered, render
from artifact_operator.logic.status import Observed, compute_status
from artifact_operator.settings import CacheWarmUp, Settings

from ..support.builders import NIM_IMAGE, OTHER_NIM_IMAGE, nim_artifact, parsed

Obj = dict[str, Any]
NS = "team-a"
UID = "6f1c1a2e-0000-4000-8000-000000000001"
CLAIM_UID = "c1a1m000-0000-4000-8000-000000000002"
CACHE = naming.cache_claim_name(NIM_IMAGE)
NGC = {"name": "NGC_API_KEY", "source": "dr-credential", "drCredentialId": "ngc-api",
       "key": "NGC_API_KEY"}
TOKEN = {"name": "PLATFORM_TOKEN", "source": "dr-api-token"}


def nim(mode: str = "nimCache", warm_up: bool | None = None, **kw: Any) -> Obj:
    storage: Obj = {"mode": mode}
    if warm_up is not None:
        storage["warmUp"] = warm_up
    return nim_artifact("llm", namespace=NS, uid=UID, generation=1, storage=storage, **kw)


def plans_of(doc: Obj, settings: Settings | None = None) -> list[warmup.WarmUpPlan]:
    artifact = parsed(doc)
    settings = settings or Settings()
    return warmup.plans(artifact, render(artifact, settings), settings)


def job_of(doc: Obj, settings: Settings | None = None, decisions: Any = None) -> Obj:
    artifact = parsed(doc)
    settings = settings or Settings()
    (plan,) = warmup.plans(artifact, render(artifact, settings, decisions), settings)
    return warmup.render_job(artifact, plan, settings, CLAIM_UID)


# -- which claims are warmed --------------------------------------------------------------------

def test_nim_cache_claims_are_warmed_and_dedicated_ones_on_request() -> None:
    (plan,) = plans_of(nim())
    assert (plan.claim, plan.image, plan.groups) == (CACHE, NIM_IMAGE, ("llm",))
    assert plan.job == f"{CACHE}-warmup-{naming.cache_hash(NIM_IMAGE)}"
    assert plans_of(nim("dedicatedPvc")) == []
    (dedicated,) = plans_of(nim("dedicatedPvc", warm_up=True))
    assert dedicated.claim == "llm-model-store"
    assert dedicated.job == f"llm-model-store-warmup-{naming.cache_hash(NIM_IMAGE)}"
    assert plans_of(nim(warm_up=False)) == []
    assert plans_of(nim(), Settings(cache_warm_up=CacheWarmUp.off)) == []
    service = nim()
    service["spec"].update(type="service")
    del service["spec"]["storage"]
    assert plans_of(service) == []


def test_one_plan_per_claim_and_image_naming_every_group_that_waits() -> None:
    (both,) = plans_of(nim(groups=("a", "b")))
    assert both.groups == ("a", "b")
    # A dedicated claim serving two images: one Job per image, named from claim and image.
    doc = nim("dedicatedPvc", warm_up=True, groups=("a", "b"))
    doc["spec"]["containerGroups"][1]["containers"][0]["imageUri"] = OTHER_NIM_IMAGE
    jobs = {p.job for p in plans_of(doc)}
    assert jobs == {warmup.job_name("llm-model-store", NIM_IMAGE),
                    warmup.job_name("llm-model-store", OTHER_NIM_IMAGE)} and len(jobs) == 2


def test_a_group_held_for_another_reason_is_not_warmed_for_yet() -> None:
    doc = nim(groups=("a", "b"))
    doc["spec"]["containerGroups"][0]["containers"][0].update(
        imageUri=NIM_IMAGE.split(":")[0] + "@sha256:" + "0" * 64,
        securityContext={"capabilities": {"add": ["NET_ADMIN"]}})
    (plan,) = plans_of(doc)  # group a waits for an admin's approval first
    assert plan.groups == ("b",)


def test_long_names_are_cut_to_a_label_value() -> None:
    name = warmup.job_name(naming.dedicated_claim_name("a" * 63), NIM_IMAGE)
    assert len(name) <= 63 and name != warmup.job_name(
        naming.dedicated_claim_name("a" * 62 + "b"), NIM_IMAGE)


# -- the Job ------------------------------------------------------------------------------------

def test_the_job_runs_the_model_image_download_with_the_primary_credentials() -> None:
    doc = nim(env=[NGC, TOKEN, {"name": "NIM_LOG_LEVEL", "value": "INFO"}],
              runtime={"llm": {"nodeSelector": {"gpu": "a100"},
                               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                "effect": "NoSchedule"}],
                               "resources": {"limits": {"nvidia.com/gpu": 1}}}})
    job = job_of(doc)
    assert job["metadata"]["name"] == warmup.job_name(CACHE, NIM_IMAGE)
    # The claim's, not an artifact's: it goes with the claim, never with one of its users.
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": CACHE, "uid": CLAIM_UID}]
    assert naming.LABEL_ARTIFACT not in job["metadata"]["labels"]
    assert job["metadata"]["labels"][warmup.LABEL_CLAIM] == CACHE
    assert job["metadata"]["annotations"] == {warmup.ANNOTATION_IMAGE: NIM_IMAGE}
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 21600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000,
                                      "runAsGroup": 1000, "fsGroup": 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["tolerations"][0]["key"] == \
        "nvidia.com/gpu"
    assert pod["volumes"] == [{"name": "model-store",
                               "persistentVolumeClaim": {"claimName": CACHE}}]
    (container,) = pod["containers"]
    assert (container["image"], container["command"]) == (NIM_IMAGE, ["download-to-cache"])
    assert "resources" not in container  # no GPU for a download
    assert container["volumeMounts"] == [{"name": "model-store",
                                          "mountPath": "/opt/nim/.cache"}]
    # The credential as a reference, never its value; the artifact's own token is not passed.
    assert container["env"] == [
        {"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "ngc-api",
                                                               "key": "NGC_API_KEY"}}},
        {"name": "NIM_LOG_LEVEL", "value": "INFO"},
        {"name": "NIM_CACHE_PATH", "value": "/opt/nim/.cache"}]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_the_job_never_gets_the_servers_elevated_fields_and_follows_the_settings() -> None:
    doc = nim(env=[NGC])
    doc["spec"]["containerGroups"][0]["containers"][0].update(
        imageUri="nvcr.io/nim/x@sha256:" + "0" * 64,
        securityContext={"capabilities": {"add": ["NET_ADMIN"]}})
    settings = Settings(cache_warm_up_command=["download-to-cache", "--all"],
                        cache_warm_up_timeout_seconds=600, nim_cache_path="/cache")
    job = job_of(doc, settings, {"llm": Decision(Grant.approved, "")})
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "add" not in container["securityContext"]["capabilities"]
    assert container["command"] == ["download-to-cache", "--all"]
    assert container["volumeMounts"][0]["mountPath"] == "/cache"
    assert job["spec"]["activeDeadlineSeconds"] == 600


# -- phases ---------------------------------------------------------------------------------------

def job_with(status: Obj) -> Obj:
    return {"metadata": {"name": "j"}, "status": status}


@pytest.mark.parametrize(("status", "expected"), [
    ({}, (CachePhase.pending, None, None)),
    ({"active": 1}, (CachePhase.downloading, None, None)),
    ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
     (CachePhase.ready, None, None)),
    ({"failed": 3, "conditions": [{"type": "Failed", "status": "True",
                                   "reason": "BackoffLimitExceeded",
                                   "message": "Job has reached the specified backoff limit"}]},
     (CachePhase.failed, "BackoffLimitExceeded",
      "Job has reached the specified backoff limit")),
    ({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]},
     (CachePhase.downloading, None, None)),
])
def test_the_phase_is_the_jobs(status: Obj, expected: tuple[Any, ...]) -> None:
    assert warmup.job_phase(job_with(status)) == expected


def test_a_claim_is_warm_for_the_images_it_records() -> None:
    claim = {"metadata": {"annotations": {warmup.warm_key(NIM_IMAGE): NIM_IMAGE}}}
    assert warmup.is_warm(claim, NIM_IMAGE)
    assert not warmup.is_warm(claim, OTHER_NIM_IMAGE) and not warmup.is_warm(None, NIM_IMAGE)


def rolled_out(deployment: Obj, ready: int = 1) -> Obj:
    return {**deployment, "metadata": {**deployment["metadata"], "generation": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": ready, "conditions": [
                           {"type": "Progressing", "status": "True",
                            "reason": "NewReplicaSetAvailable"}]}}


def test_servers_ready_on_the_claim_and_image_prove_it_warm() -> None:
    (deployment,) = render(parsed(nim()), Settings()).of_kind("Deployment")
    assert warmup.proven_warm(rolled_out(deployment), CACHE, NIM_IMAGE)
    assert not warmup.proven_warm(rolled_out(deployment, ready=0), CACHE, NIM_IMAGE)
    assert not warmup.proven_warm(deployment, CACHE, NIM_IMAGE)  # not rolled out
    assert not warmup.proven_warm(rolled_out(deployment), CACHE, OTHER_NIM_IMAGE)
    assert not warmup.proven_warm(rolled_out(deployment), "other-claim", NIM_IMAGE)
    assert not warmup.proven_warm(None, CACHE, NIM_IMAGE)


# -- held groups and status -----------------------------------------------------------------------

def held(doc: Obj, phase: CachePhase, wait: bool = True,
         **fields: Any) -> tuple[Rendered, Rendered]:
    artifact = parsed(doc)
    out = render(artifact, Settings())
    outcomes = [(p, WarmUpStatus(phase=phase, job=p.job, **fields))
                for p in warmup.plans(artifact, out, Settings())]
    return out, warmup.hold(out, outcomes, wait)


def test_waiting_groups_keep_their_claim_and_lose_everything_else() -> None:
    before, after = held(nim(), CachePhase.downloading)
    assert {o["kind"] for o in before.objects} == {"PersistentVolumeClaim", "Deployment",
                                                   "Service"}
    assert [o["kind"] for o in after.objects] == ["PersistentVolumeClaim"]
    assert "llm" in after.held_groups and after.warming["llm"][0] == "CacheWarmingUp"
    assert "is downloading" in after.warming["llm"][1]
    assert before.warming == {} and before.objects != after.objects  # the cached render kept
    # Background: everything rendered at once, the phase only reported.
    _, background = held(nim(), CachePhase.downloading, wait=False)
    assert background.objects == before.objects and background.warming == {}
    assert background.warm_ups[CACHE].phase == CachePhase.downloading
    # Ready: nothing held.
    _, ready = held(nim(), CachePhase.ready)
    assert ready.objects == before.objects and ready.warming == {}


def status_of(rendered: Rendered, live: dict[tuple[str, str], Obj] | None = None) -> Obj:
    artifact = parsed(nim())
    claim = {"metadata": {"name": CACHE}, "status": {"phase": "Bound"}}
    obs = Observed(rendered=rendered,
                   live={("PersistentVolumeClaim", CACHE): claim, **(live or {})})
    return compute_status(artifact, obs, Settings(), None, "2026-01-01T00:00:00Z").dump()


def test_status_says_the_cache_warms_up_then_fails_with_the_jobs_reason() -> None:
    _, downloading = held(nim(), CachePhase.downloading)
    st = status_of(downloading)
    assert st["phase"] == "Pending"
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CacheWarmingUp")
    assert f"job/{warmup.job_name(CACHE, NIM_IMAGE)}" in ready["message"]
    assert st["storage"]["warmUp"] == {"phase": "Downloading",
                                       "job": warmup.job_name(CACHE, NIM_IMAGE)}
    assert st["containerGroups"][0]["readyReplicas"] == 0

    _, failed = held(nim(), CachePhase.failed, reason="BackoffLimitExceeded",
                     message="download failed: 401")
    st = status_of(failed)
    assert st["phase"] == "Degraded"
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "CacheWarmUpFailed"
    assert "BackoffLimitExceeded: download failed: 401" in degraded["message"]
    assert "kubectl delete job" in degraded["message"]
    assert st["storage"]["warmUp"]["reason"] == "BackoffLimitExceeded"


def test_a_running_group_is_reported_as_it_runs_while_its_new_cache_warms() -> None:
    before, downloading = held(nim(), CachePhase.pending)
    (deployment,) = before.of_kind("Deployment")
    name = deployment["metadata"]["name"]
    st = status_of(downloading, {("Deployment", name): rolled_out(deployment)})
    group = st["containerGroups"][0]
    assert (group["readyReplicas"], group["deployment"]) == (1, name)
    assert st["phase"] == "Pending"
