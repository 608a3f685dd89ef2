"""NIM model-weight storage without a cluster: rendering, claim-size rules, status, the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from artifact_operator.api import naming
from artifact_operator.api.status import Reason
from artifact_operator.api.validation import parse
from artifact_operator.cli import main as cli
from artifact_operator.logic import claims as storage
from artifact_operator.logic.render import Rendered, render
from artifact_operator.logic.status import Observed, compute_status
from artifact_operator.settings import Settings

from ..support.builders import NIM_IMAGE, OTHER_NIM_IMAGE, nim_artifact

UID = "0f6a5e49-0000-4000-8000-000000000001"
IMAGE = NIM_IMAGE
OTHER_IMAGE = OTHER_NIM_IMAGE
NOW = "2026-11-27T12:00:00Z"


def nim(name: str = "llm", *, mode: str | None = None, size: str | None = None,
        image: str = IMAGE, uid: str | None = UID, groups: int = 1,
        env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Groups g0, g1 ... serving `image`; g0 asks for a GPU."""
    return nim_artifact(name, image, mode=mode, size=size, env=env or [],
                        groups=tuple(f"g{i}" for i in range(groups)), namespace="team-a",
                        uid=uid, generation=1, runtime={"g0": {"resources": {
                            "limits": {"nvidia.com/gpu": 1, "memory": "32Gi"}}}})


def rendered(doc: dict[str, Any], settings: Settings | None = None) -> Rendered:
    return render(parse(doc), settings or Settings())


def one(out: Rendered, kind: str) -> dict[str, Any]:
    [obj] = out.of_kind(kind)
    return obj


# -- rendering ---------------------------------------------------------------------------------

def test_dedicated_claim_is_owned_and_sized_from_settings() -> None:
    settings = Settings(default_pvc_size="120Gi", storage_class="fast",
                        dedicated_access_modes=["ReadWriteOncePod"])
    claim = one(rendered(nim(), settings), "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "llm-model-store"
    assert claim["spec"] == {"accessModes": ["ReadWriteOncePod"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "120Gi"}}}
    [owner] = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("Artifact", "llm", UID, True)
    assert claim["metadata"]["labels"][naming.LABEL_ARTIFACT] == "llm"

    sized = one(rendered(nim(size="150Gi"), settings), "PersistentVolumeClaim")
    assert sized["spec"]["resources"]["requests"]["storage"] == "150Gi"


def test_without_a_storage_class_setting_the_cluster_default_is_used() -> None:
    claim = one(rendered(nim()), "PersistentVolumeClaim")
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_deployment_mounts_the_claim_in_the_primary_container() -> None:
    doc = nim()
    doc["spec"]["containerGroups"][0]["containers"].append(
        {"name": "sidecar", "imageUri": "busybox:1.36"})
    deployment = one(rendered(doc, Settings(fs_group=2000, shm_size="16Gi")), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    primary, sidecar = pod["containers"]
    assert primary["volumeMounts"] == [{"name": "model-store", "mountPath": "/opt/nim/.cache"},
                                       {"name": "dshm", "mountPath": "/dev/shm"}]
    assert {"name": "NIM_CACHE_PATH", "value": "/opt/nim/.cache"} in primary["env"]
    # Quantities are rendered as strings: server-side apply on 1.20 refuses bare numbers.
    assert primary["resources"] == {"limits": {"nvidia.com/gpu": "1", "memory": "32Gi"}}
    assert "volumeMounts" not in sidecar and "resources" not in sidecar
    assert pod["volumes"] == [
        {"name": "model-store", "persistentVolumeClaim": {"claimName": "llm-model-store"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    assert pod["securityContext"]["fsGroup"] == 2000
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert naming.LABEL_CACHE not in deployment["metadata"]["labels"]


def test_user_set_nim_cache_path_wins_and_mount_path_is_configurable() -> None:
    doc = nim(env=[{"name": "NIM_CACHE_PATH", "value": "/models"}])
    deployment = one(rendered(doc, Settings(nim_cache_path="/cache")), "Deployment")
    [primary] = deployment["spec"]["template"]["spec"]["containers"]
    assert [e for e in primary["env"] if e["name"] == "NIM_CACHE_PATH"] == \
        [{"name": "NIM_CACHE_PATH", "value": "/models"}]
    assert primary["volumeMounts"][0]["mountPath"] == "/cache"


def test_shared_cache_claim_is_per_image_owned_by_nobody_and_labelled() -> None:
    out = rendered(nim(mode="nimCache", groups=2))
    digest = hashlib.sha256(IMAGE.encode()).hexdigest()[:12]
    claim = one(out, "PersistentVolumeClaim")  # two groups, one image: one claim
    assert claim["metadata"]["name"] == f"nim-cache-{digest}"
    assert "ownerReferences" not in claim["metadata"]
    assert claim["metadata"]["labels"][naming.LABEL_CACHE] == digest
    assert naming.LABEL_ARTIFACT not in claim["metadata"]["labels"]
    assert claim["metadata"]["annotations"] == {naming.ANNOTATION_CACHE_IMAGE: IMAGE}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    for deployment in out.of_kind("Deployment"):
        assert deployment["metadata"]["labels"][naming.LABEL_CACHE] == digest
        assert deployment["spec"]["template"]["spec"]["volumes"][0] == {
            "name": "model-store", "persistentVolumeClaim": {"claimName": f"nim-cache-{digest}"}}
    # Another artifact over the same image names the same claim; another image, another one.
    same = one(rendered(nim("other", mode="nimCache")), "PersistentVolumeClaim")
    assert same["metadata"]["name"] == claim["metadata"]["name"]
    other = one(rendered(nim("other", mode="nimCache", image=OTHER_IMAGE)),
                "PersistentVolumeClaim")
    assert other["metadata"]["name"] != claim["metadata"]["name"]


def test_dedicated_artifact_whose_name_looks_like_a_cache_is_not_a_cache_user() -> None:
    out = rendered(nim("nim-cache-x"))
    assert one(out, "PersistentVolumeClaim")["metadata"]["name"] == "nim-cache-x-model-store"
    assert not storage.is_cache_claim(one(out, "PersistentVolumeClaim"))
    assert naming.LABEL_CACHE not in one(out, "Deployment")["metadata"]["labels"]


def test_service_artifacts_render_no_claim() -> None:
    doc = nim()
    doc["spec"]["type"] = "service"
    del doc["spec"]["runtime"]
    out = rendered(doc)
    assert out.of_kind("PersistentVolumeClaim") == []
    assert "volumes" not in one(out, "Deployment")["spec"]["template"]["spec"]


@pytest.mark.parametrize("doc", [
    nim(), nim(mode="nimCache"), nim(mode="nimCache", groups=3),
    nim(mode="nimCache", image=OTHER_IMAGE), nim(mode="dedicatedPvc", size="1Ti"),
])
def test_cache_claims_read_from_the_raw_object_match_the_renderer(doc: dict[str, Any]) -> None:
    claims = {o["metadata"]["name"] for o in rendered(doc).of_kind("PersistentVolumeClaim")
              if storage.is_cache_claim(o)}
    assert storage.cache_claims_of(doc) == claims


@pytest.mark.parametrize("junk", [
    {}, {"spec": None}, {"spec": {"type": "nim", "storage": "x"}},
    {"spec": {"type": "nim", "storage": {"mode": "nimCache"}, "containerGroups": [None, {
        "containers": [None, {"primary": True, "imageUri": 3}]}]}},
])
def test_cache_claims_of_tolerates_malformed_objects(junk: dict[str, Any]) -> None:
    assert storage.cache_claims_of(junk) == set()


# -- claim size rules --------------------------------------------------------------------------

def live_claim(size: str, phase: str = "Bound", klass: str | None = "old-class",
               modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": list(modes), "volumeMode": "Filesystem",
                            "resources": {"requests": {"storage": size}}}
    if klass:
        spec["storageClassName"] = klass
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "llm-model-store", "namespace": "team-a"},
            "spec": spec, "status": {"phase": phase}}


def obs_for(out: Rendered, live: dict[tuple[str, str], Any] | None = None) -> Observed:
    return Observed(rendered=out, live=live or {})


def test_a_bound_claim_grows_and_keeps_its_immutable_fields() -> None:
    out = rendered(nim(size="150Gi"), Settings(storage_class="new-class"))
    desired = one(out, "PersistentVolumeClaim")
    obs = obs_for(out)
    update = storage.dedicated_update(live_claim("100Gi"), desired, obs)
    assert update is not None
    assert update["spec"]["resources"]["requests"]["storage"] == "150Gi"
    assert update["spec"]["storageClassName"] == "old-class"  # fixed at creation
    assert obs.errors == [] and obs.blockers == []
    assert storage.dedicated_update(None, desired, obs) is desired


def test_equal_sizes_in_other_units_are_no_change() -> None:
    out = rendered(nim(size="1Ti"))
    obs = obs_for(out)
    update = storage.dedicated_update(live_claim("1024Gi", klass=None),
                                      one(out, "PersistentVolumeClaim"), obs)
    assert update is not None and "storageClassName" not in update["spec"]
    assert obs.errors == [] and obs.blockers == []


def test_a_shrink_is_refused_with_the_claim_and_both_sizes() -> None:
    out = rendered(nim(size="50Gi"))
    obs = obs_for(out)
    assert storage.dedicated_update(live_claim("100Gi"), one(out, "PersistentVolumeClaim"),
                                    obs) is None
    [(reason, message)] = obs.errors
    assert reason == Reason.shrink_refused
    assert "llm-model-store" in message and "100Gi" in message and "50Gi" in message


def test_growth_of_an_unbound_claim_waits_for_the_binding() -> None:
    out = rendered(nim(size="150Gi"))
    obs = obs_for(out)
    assert storage.dedicated_update(live_claim("100Gi", phase="Pending"),
                                    one(out, "PersistentVolumeClaim"), obs) is None
    [(reason, message)] = obs.blockers
    assert reason == Reason.claim_pending and "once it is bound" in message


# -- status ------------------------------------------------------------------------------------

def ready_deployment(out: Rendered) -> dict[str, Any]:
    d = one(out, "Deployment")
    return {**d, "metadata": {**d["metadata"], "generation": 1}, "status": {
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "True",
                        "reason": "NewReplicaSetAvailable"}]}}


def status_with_claim(doc: dict[str, Any], claim: dict[str, Any] | None,
                      errors: list[tuple[Reason, str]] | None = None) -> dict[str, Any]:
    artifact = parse(doc)
    out = render(artifact, Settings())
    live: dict[tuple[str, str], Any] = {("Deployment", "llm-g0"): ready_deployment(out)}
    name = one(out, "PersistentVolumeClaim")["metadata"]["name"]
    if claim is not None:
        live[("PersistentVolumeClaim", name)] = claim
    obs = Observed(rendered=out, live=live, errors=list(errors or []))
    return compute_status(artifact, obs, Settings(), None, NOW).dump()


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_ready_waits_for_the_claim_to_bind_and_says_why() -> None:
    pending = status_with_claim(nim(), live_claim("100Gi", phase="Pending", klass="fast"))
    assert pending["storage"] == {"mode": "dedicatedPvc", "claimName": "llm-model-store",
                                  "phase": "Pending"}
    ready = cond(pending, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ClaimPending"
    assert "llm-model-store is Pending" in ready["message"]
    assert "100Gi ReadWriteOnce from storage class fast" in ready["message"]
    assert pending["phase"] == "Pending"

    missing = status_with_claim(nim(), None)
    assert cond(missing, "Ready")["reason"] == "ClaimPending"
    assert missing["storage"] == {"mode": "dedicatedPvc", "claimName": "llm-model-store"}

    bound = status_with_claim(nim(), live_claim("100Gi"))
    assert cond(bound, "Ready")["status"] == "True" and bound["phase"] == "Ready"
    assert bound["storage"]["phase"] == "Bound"


def test_shared_mode_status_names_the_cache_claim() -> None:
    doc = nim(mode="nimCache")
    claim = live_claim("200Gi")
    status = status_with_claim(doc, claim)
    assert status["storage"] == {"mode": "nimCache",
                                 "claimName": naming.cache_claim_name(IMAGE), "phase": "Bound"}


def test_ready_waits_for_every_cache_claim_of_a_multi_image_artifact() -> None:
    doc = nim(mode="nimCache", groups=2)
    doc["spec"]["containerGroups"][1]["containers"][0]["imageUri"] = OTHER_IMAGE
    artifact = parse(doc)
    out = render(artifact, Settings())
    groups = out.of_kind("Deployment")
    live: dict[tuple[str, str], Any] = {
        ("Deployment", d["metadata"]["name"]): {**ready_deployment(Rendered(objects=[d]))}
        for d in groups}
    live[("PersistentVolumeClaim", naming.cache_claim_name(IMAGE))] = live_claim("200Gi")
    live[("PersistentVolumeClaim", naming.cache_claim_name(OTHER_IMAGE))] = \
        live_claim("200Gi", phase="Pending")
    status = compute_status(artifact, Observed(rendered=out, live=live), Settings(), None,
                            NOW).dump()
    assert status["storage"]["phase"] == "Bound"  # the first group's claim
    ready = cond(status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ClaimPending"
    assert naming.cache_claim_name(OTHER_IMAGE) in ready["message"]


def test_a_refused_shrink_makes_the_artifact_degraded() -> None:
    message = "claim llm-model-store cannot shrink from 100Gi to 50Gi"
    status = status_with_claim(nim(size="50Gi"), live_claim("100Gi"),
                               [(Reason.shrink_refused, message)])
    degraded = cond(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ShrinkRefused")
    assert message in degraded["message"]
    assert status["phase"] == "Degraded"


def test_a_lost_claim_degrades() -> None:
    status = status_with_claim(nim(), live_claim("100Gi", phase="Lost"))
    assert cond(status, "Degraded")["reason"] == "ClaimLost"


# -- `artifact-operator render` and the Kubernetes schemas --------------------------------------

VERSIONS = sorted(all_versions(), key=lambda v: tuple(int(p) for p in v.split(".")))


def test_render_cli_shows_both_modes_offline_and_every_object_validates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = [nim("dedicated", size="150Gi", uid=None),
            nim("shared", mode="nimCache", uid=None, groups=2)]
    for doc in docs:
        del doc["metadata"]["namespace"]
    path = tmp_path / "nim.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert cli.main(["render", "-f", str(path), "-n", "models"]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    cache = naming.cache_claim_name(IMAGE)
    assert kinds == [
        ("PersistentVolumeClaim", "dedicated-model-store"), ("Deployment", "dedicated-g0"),
        ("Service", "dedicated-g0"),
        ("PersistentVolumeClaim", cache), ("Deployment", "shared-g0"),
        ("Deployment", "shared-g1"), ("Service", "shared-g0"), ("Service", "shared-g1")]
    assert all(o["metadata"]["namespace"] == "models" for o in objects)
    assert objects[0]["spec"]["resources"]["requests"]["storage"] == "150Gi"
    assert len(VERSIONS) >= 2
    for version in (VERSIONS[0], VERSIONS[-1]):
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)
