"""NIM model-weight storage against the real control plane, with the operator as its own process.

There is no provisioner: claims bind when a test creates a matching hostPath PersistentVolume.
Each test uses a storage class of its own, so volumes never bind across tests.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from artifact_operator.api import naming

from ..conftest import (
    Cluster,
    create_artifact,
    delete_artifact,
    get_artifact,
    patch_artifact,
    require_audit_log,
)
from ..support.builders import nim_artifact
from ..support.kubelet import make_pods_ready
from ..support.metrics import reconciles, wait_reconciles
from ..support.operator import OperatorProcess, pause
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

IMAGE_X = "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3"
IMAGE_Y = "nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.3.0"
CACHE_X = naming.cache_claim_name(IMAGE_X)
CACHE_Y = naming.cache_claim_name(IMAGE_Y)
NIM_PATH = "/opt/nim/.cache"


# -- helpers -----------------------------------------------------------------------------------

def nim(name: str, image: str = IMAGE_X, *, mode: str = "dedicatedPvc",
        size: str | None = None) -> dict[str, Any]:
    """A NIM artifact with its storage mode always stated (dedicatedPvc unless given)."""
    return nim_artifact(name, image, mode=mode, size=size)


@pytest.fixture
def storage_class(cluster: Cluster, namespace: str) -> Iterator[str]:
    """An expandable storage class with no provisioner, like a `local` class."""
    name = f"nim-{uuid.uuid4().hex[:8]}"
    api = client.StorageV1Api(cluster.api)
    api.create_storage_class({"metadata": {"name": name},
                              "provisioner": "kubernetes.io/no-provisioner",
                              "allowVolumeExpansion": True})
    yield name
    with contextlib.suppress(client.ApiException):
        api.delete_storage_class(name)


def add_volume(cluster: Cluster, storage_class: str, size: str,
               modes: tuple[str, ...] = ("ReadWriteOnce", "ReadWriteMany")) -> str:
    name = f"pv-{uuid.uuid4().hex[:10]}"
    cluster.core.create_persistent_volume({"metadata": {"name": name}, "spec": {
        "capacity": {"storage": size}, "accessModes": list(modes),
        "storageClassName": storage_class, "hostPath": {"path": f"/tmp/{name}"},
        "persistentVolumeReclaimPolicy": "Retain"}})
    return name


def start_operator(cluster: Cluster, namespaces: list[str], tmp_path: Path,
                   **env: str) -> OperatorProcess:
    # The claims alone: a cache's warm-up Job (which no Job controller runs on this control
    # plane) and the Deployments that wait for it are test_warmup.py's.
    env.setdefault("cache_warm_up", "off")
    settings = {f"ARTIFACT_OPERATOR_{k.upper()}": v for k, v in env.items()}
    return OperatorProcess(cluster.kubeconfig, namespaces, tmp_path / "operator.log",
                           env=settings).start()


def claim(cluster: Cluster, namespace: str, name: str) -> Any:
    return found(cluster.core.read_namespaced_persistent_volume_claim, name, namespace)


def cache_claims(cluster: Cluster, namespace: str) -> dict[str, Any]:
    items = cluster.core.list_namespaced_persistent_volume_claim(
        namespace, label_selector=naming.LABEL_CACHE).items
    return {c.metadata.name: c for c in items}


def gone(fetch: Callable[[], Any]) -> Callable[[], bool]:
    return lambda: fetch() is None


def deployment(cluster: Cluster, namespace: str, name: str) -> Any:
    return found(cluster.apps.read_namespaced_deployment, name, namespace)


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_artifact(cluster, namespace, name).get("status") or {})


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions", []) if c["type"] == type_), {})


def operator_writes(cluster: Cluster, namespace: str, resource: str,
                    since: int = 0) -> list[dict[str, Any]]:
    """Writes the operator made to `resource` in `namespace` (from the audit log, which logs
    writes only), counting from line `since`."""
    out = []
    lines = require_audit_log(cluster).read_text().splitlines()
    for line in lines[since:]:
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (ref.get("resource") == resource and ref.get("namespace") == namespace
                and not ref.get("subresource")
                and entry.get("userAgent", "").startswith(naming.MANAGER)):
            out.append(entry)
    return out


def audit_position(cluster: Cluster) -> int:
    return len(require_audit_log(cluster).read_text().splitlines())


def create_all(cluster: Cluster, namespace: str, manifests: list[dict[str, Any]]) -> None:
    """Create the artifacts at the same moment, from threads."""
    with ThreadPoolExecutor(len(manifests)) as pool:
        list(pool.map(lambda m: create_artifact(cluster, namespace, m), manifests))


# -- dedicated mode ----------------------------------------------------------------------------

def test_dedicated_claim_binds_before_ready_grows_and_refuses_to_shrink(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    operators.append(start_operator(cluster, [namespace], tmp_path,
                                    storage_class=storage_class,
                                    dedicated_access_modes='["ReadWriteOnce"]'))
    art = create_artifact(cluster, namespace, nim("llm", size="10Gi"))

    pvc = wait_for(lambda: claim(cluster, namespace, "llm-model-store"), timeout=30,
                   what="the dedicated claim")
    assert pvc.spec.resources.requests["storage"] == "10Gi"
    assert pvc.spec.storage_class_name == storage_class
    assert pvc.spec.access_modes == ["ReadWriteOnce"]
    [owner] = pvc.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == \
        ("Artifact", "llm", art["metadata"]["uid"], True)

    dep = wait_for(lambda: deployment(cluster, namespace, "llm-llm"), timeout=30,
                   what="the Deployment")
    pod = dep.spec.template.spec
    assert [(v.name, v.persistent_volume_claim.claim_name) for v in pod.volumes
            if v.persistent_volume_claim] == [("model-store", "llm-model-store")]
    [nim_container] = pod.containers
    assert {(m.name, m.mount_path) for m in nim_container.volume_mounts} == \
        {("model-store", NIM_PATH), ("dshm", "/dev/shm")}
    assert {"NIM_CACHE_PATH": NIM_PATH}.items() <= \
        {e.name: e.value for e in nim_container.env}.items()

    # Every replica ready, but the claim is unbound: not Ready, and the condition says why.
    def pods_ready_claim_pending() -> dict[str, Any]:
        make_pods_ready(cluster.core, namespace, f"{naming.LABEL_ARTIFACT}=llm")
        st = status(cluster, namespace, "llm")
        groups = st.get("containerGroups") or [{}]
        return st if groups[0].get("readyReplicas") == 1 else {}

    st = wait_for(pods_ready_claim_pending, timeout=60, what="ready replicas")
    ready = condition(st, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ClaimPending")
    assert "llm-model-store is Pending" in ready["message"]
    assert storage_class in ready["message"]
    assert st["storage"] == {"mode": "dedicatedPvc", "claimName": "llm-model-store",
                             "phase": "Pending"}
    assert st["phase"] == "Pending"

    add_volume(cluster, storage_class, "100Gi")
    st = wait_for(lambda: (s := status(cluster, namespace, "llm"))
                  and condition(s, "Ready").get("status") == "True" and s,
                  timeout=60, what="Ready once the claim is bound")
    assert st["storage"]["phase"] == "Bound" and st["phase"] == "Ready"

    # Growing pvcSize expands the claim.
    patch_artifact(cluster, namespace, "llm", {"spec": {"storage": {"pvcSize": "20Gi"}}})
    wait_for(lambda: claim(cluster, namespace, "llm-model-store")
             .spec.resources.requests["storage"] == "20Gi", timeout=30,
             what="the claim to grow to 20Gi")
    st = wait_for(lambda: (s := status(cluster, namespace, "llm"))
                  and s.get("observedGeneration") == 2 and s, timeout=30,
                  what="status of generation 2")
    assert condition(st, "Degraded")["status"] == "False"
    assert condition(st, "Ready")["status"] == "True"

    # Shrinking is refused: Degraded with both sizes; neither claim nor Deployment written.
    generation = deployment(cluster, namespace, "llm-llm").metadata.generation
    since = audit_position(cluster)
    patch_artifact(cluster, namespace, "llm", {"spec": {"storage": {"pvcSize": "5Gi"}}})
    st = wait_for(lambda: (s := status(cluster, namespace, "llm"))
                  and s.get("observedGeneration") == 3 and s, timeout=30,
                  what="status of generation 3")
    degraded = condition(st, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ShrinkRefused")
    assert "llm-model-store" in degraded["message"]
    assert "20Gi" in degraded["message"] and "5Gi" in degraded["message"]
    assert st["phase"] == "Degraded"
    assert claim(cluster, namespace, "llm-model-store") \
        .spec.resources.requests["storage"] == "20Gi"
    dep = deployment(cluster, namespace, "llm-llm")
    assert dep.metadata.generation == generation and dep.status.ready_replicas == 1
    assert operator_writes(cluster, namespace, "persistentvolumeclaims", since) == []
    assert operator_writes(cluster, namespace, "deployments", since) == []

    # Back to a size the claim can hold: healthy again.
    patch_artifact(cluster, namespace, "llm", {"spec": {"storage": {"pvcSize": "20Gi"}}})
    wait_for(lambda: condition(status(cluster, namespace, "llm"), "Ready").get("status")
             == "True", timeout=30, what="Ready again at 20Gi")


def test_deleting_a_dedicated_artifact_garbage_collects_its_claim(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    operators.append(start_operator(cluster, [namespace], tmp_path,
                                    storage_class=storage_class))
    add_volume(cluster, storage_class, "200Gi")
    create_artifact(cluster, namespace, nim("llm"))
    wait_for(lambda: (c := claim(cluster, namespace, "llm-model-store"))
             and c.status.phase == "Bound", timeout=60, what="the claim to bind")
    wait_for(lambda: deployment(cluster, namespace, "llm-llm"), timeout=30,
             what="the Deployment")
    operators[0].stop()  # garbage collection, not the operator, removes it
    delete_artifact(cluster, namespace, "llm")
    wait_for(gone(lambda: claim(cluster, namespace, "llm-model-store")), timeout=60,
             what="the claim to be garbage-collected")
    wait_for(gone(lambda: deployment(cluster, namespace, "llm-llm")), timeout=60,
             what="the Deployment to be garbage-collected")


# -- shared cache ------------------------------------------------------------------------------

def test_artifacts_created_at_once_share_one_cache_claim_per_image_kept_by_default(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    operators.append(start_operator(cluster, [namespace], tmp_path,
                                    storage_class=storage_class, cache_size="5Gi"))
    create_all(cluster, namespace, [nim("x1", IMAGE_X, mode="nimCache"),
                                    nim("x2", IMAGE_X, mode="nimCache"),
                                    nim("y1", IMAGE_Y, mode="nimCache")])
    for name in ("x1", "x2", "y1"):
        wait_for(lambda n=name: deployment(cluster, namespace, f"{n}-llm"), timeout=30,
                 what=f"Deployment {name}-llm")
    claims = wait_for(lambda: (c := cache_claims(cluster, namespace)) and len(c) == 2 and c,
                      timeout=30, what="two cache claims")
    assert set(claims) == {CACHE_X, CACHE_Y}
    for name, image in ((CACHE_X, IMAGE_X), (CACHE_Y, IMAGE_Y)):
        pvc = claims[name]
        assert not pvc.metadata.owner_references
        assert pvc.metadata.annotations[naming.ANNOTATION_CACHE_IMAGE] == image
        assert pvc.metadata.labels[naming.LABEL_CACHE] == name.removeprefix("nim-cache-")
        assert pvc.spec.access_modes == ["ReadWriteMany"]
        assert pvc.spec.resources.requests["storage"] == "5Gi"
        assert pvc.spec.storage_class_name == storage_class
    mounted = {n: deployment(cluster, namespace, f"{n}-llm").spec.template.spec.volumes[0]
               .persistent_volume_claim.claim_name for n in ("x1", "x2", "y1")}
    assert mounted == {"x1": CACHE_X, "x2": CACHE_X, "y1": CACHE_Y}

    # The claims bind; every user sees it, though no claim names an artifact.
    add_volume(cluster, storage_class, "5Gi", ("ReadWriteMany",))
    add_volume(cluster, storage_class, "5Gi", ("ReadWriteMany",))
    for name, cache in (("x1", CACHE_X), ("x2", CACHE_X), ("y1", CACHE_Y)):
        wait_for(lambda n=name, c=cache: status(cluster, namespace, n).get("storage") ==
                 {"mode": "nimCache", "claimName": c, "phase": "Bound"},
                 timeout=60, what=f"{name} to see its cache claim bound")

    # Created exactly once each, and never written again.
    writes = operator_writes(cluster, namespace, "persistentvolumeclaims")
    created = [w["objectRef"]["name"] for w in writes
               if w["verb"] == "create" and w["responseStatus"]["code"] == 201]
    assert sorted(created) == sorted([CACHE_X, CACHE_Y])
    assert [w for w in writes if w["verb"] not in ("create",)] == []
    uids = {n: c.metadata.uid for n, c in claims.items()}

    # Retention keep (the default): the claims outlive all their users.
    gone_before = reconciles(operators[0], "gone")
    for name in ("x1", "x2", "y1"):
        delete_artifact(cluster, namespace, name)
    for name in ("x1", "x2", "y1"):
        wait_for(gone(lambda n=name: deployment(cluster, namespace, f"{n}-llm")),
                 timeout=60, what=f"Deployment {name}-llm to go")
    wait_reconciles(operators[0], gone_before + 3, result="gone",
                    what="the operator to handle the three deletions")
    # The retention checks run in the background after the deletions (and again after the
    # Deployments' deletions): the point is that over a stretch of time nothing goes.
    pause(3)
    assert {n: c.metadata.uid for n, c in cache_claims(cluster, namespace).items()} == uids
    assert [w for w in operator_writes(cluster, namespace, "persistentvolumeclaims")
            if w["verb"] == "delete"] == []


def test_cache_claim_is_deleted_with_its_last_user_when_retention_is_delete(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    operators.append(start_operator(cluster, [namespace], tmp_path,
                                    storage_class=storage_class, cache_retention="delete"))
    create_all(cluster, namespace, [nim(f"x{i}", IMAGE_X, mode="nimCache") for i in (1, 2, 3)]
               + [nim("y1", IMAGE_Y, mode="nimCache")])
    claims = wait_for(lambda: (c := cache_claims(cluster, namespace)) and len(c) == 2 and c,
                      timeout=30, what="two cache claims")
    uid_x = claims[CACHE_X].metadata.uid
    for name in ("x1", "x2", "x3", "y1"):
        wait_for(lambda n=name: deployment(cluster, namespace, f"{n}-llm"), timeout=30,
                 what=f"Deployment {name}-llm")

    # Two of the three users of X go, and the only user of Y: Y's claim goes, X's stays.
    gone_before = reconciles(operators[0], "gone")
    for name in ("x1", "x2", "y1"):
        delete_artifact(cluster, namespace, name)
    wait_for(gone(lambda: claim(cluster, namespace, CACHE_Y)), timeout=60,
             what="the cache claim of Y to be deleted with its last user")
    for name in ("x1", "x2"):
        wait_for(gone(lambda n=name: deployment(cluster, namespace, f"{n}-llm")),
                 timeout=60, what=f"Deployment {name}-llm to go")
    wait_reconciles(operators[0], gone_before + 3, result="gone",
                    what="the operator to handle the three deletions")
    # Y's claim going shows the retention checks run; X's run in the background too (again
    # on its Deployments' deletions): over a stretch of time it must not take X's claim.
    pause(3)
    assert claim(cluster, namespace, CACHE_X).metadata.uid == uid_x

    # The last user of X is deleted as a new one appears: the new one ends up with a claim.
    with ThreadPoolExecutor(2) as pool:
        pool.submit(delete_artifact, cluster, namespace, "x3")
        pool.submit(create_artifact, cluster, namespace, nim("x4", IMAGE_X, mode="nimCache"))
    wait_for(gone(lambda: deployment(cluster, namespace, "x3-llm")), timeout=60,
             what="Deployment x3-llm to go")
    wait_for(lambda: status(cluster, namespace, "x4").get("storage", {}).get("claimName")
             == CACHE_X and claim(cluster, namespace, CACHE_X), timeout=60,
             what="x4 to have its cache claim")
    # x4's status naming the claim is the positive signal; x3's retention check runs in the
    # background, so the point is that over a stretch of time the claim stays.
    pause(3)
    assert claim(cluster, namespace, CACHE_X) is not None
    assert deployment(cluster, namespace, "x4-llm").spec.template.spec.volumes[0] \
        .persistent_volume_claim.claim_name == CACHE_X

    # Its last user gone, the claim goes too.
    delete_artifact(cluster, namespace, "x4")
    wait_for(gone(lambda: claim(cluster, namespace, CACHE_X)), timeout=60,
             what="the cache claim of X to be deleted with its last user")
    deletes = [w for w in operator_writes(cluster, namespace, "persistentvolumeclaims")
               if w["verb"] == "delete"]
    assert {w["objectRef"]["name"] for w in deletes} <= {CACHE_X, CACHE_Y}


def test_cache_users_are_read_from_the_cluster_across_operator_restarts(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    def restart() -> OperatorProcess:
        proc = start_operator(cluster, [namespace], tmp_path, storage_class=storage_class,
                              cache_retention="delete")
        operators.append(proc)
        return proc

    first = restart()
    create_all(cluster, namespace, [nim("x1", mode="nimCache"), nim("x2", mode="nimCache")])
    uid = wait_for(lambda: claim(cluster, namespace, CACHE_X), timeout=30,
                   what="the cache claim").metadata.uid
    for name in ("x1", "x2"):
        wait_for(lambda n=name: deployment(cluster, namespace, f"{n}-llm"), timeout=30,
                 what=f"Deployment {name}-llm")
        assert not get_artifact(cluster, namespace, name)["metadata"].get("finalizers")

    # A user deleted while the operator is down: the one left still counts after a restart.
    first.stop()
    delete_artifact(cluster, namespace, "x1")
    wait_for(gone(lambda: deployment(cluster, namespace, "x1-llm")), timeout=60,
             what="Deployment x1-llm to go")
    second = restart()
    wait_reconciles(second, 1, what="the restarted operator to reconcile x2")
    # The startup retention check of the claim runs in the background: over a stretch of
    # time it must find x2 and keep the claim.
    pause(3)
    assert claim(cluster, namespace, CACHE_X).metadata.uid == uid

    # The last user deleted while the operator is down: the restarted operator finds the
    # claim unused and applies the retention policy.
    second.stop()
    delete_artifact(cluster, namespace, "x2")
    wait_for(gone(lambda: deployment(cluster, namespace, "x2-llm")), timeout=60,
             what="Deployment x2-llm to go")
    assert claim(cluster, namespace, CACHE_X).metadata.uid == uid
    restart()
    wait_for(gone(lambda: claim(cluster, namespace, CACHE_X)), timeout=60,
             what="the unused cache claim to be deleted after the restart")


def test_same_image_in_another_namespace_gets_its_own_claim(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    other = f"{namespace[:50]}-b"
    cluster.core.create_namespace({"metadata": {"name": other}})
    try:
        operators.append(start_operator(cluster, [namespace, other], tmp_path,
                                        storage_class=storage_class))
        create_artifact(cluster, namespace, nim("llm", IMAGE_X, mode="nimCache"))
        create_artifact(cluster, other, nim("llm", IMAGE_X, mode="nimCache"))
        first = wait_for(lambda: claim(cluster, namespace, CACHE_X), timeout=30,
                         what="the cache claim in the first namespace")
        second = wait_for(lambda: claim(cluster, other, CACHE_X), timeout=30,
                          what="the cache claim in the second namespace")
        assert first.metadata.uid != second.metadata.uid
        for ns in (namespace, other):
            wait_for(lambda n=ns: status(cluster, n, "llm").get("storage", {})
                     .get("claimName") == CACHE_X, timeout=30, what=f"status in {ns}")
    finally:
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespace(other)


# -- switching modes ---------------------------------------------------------------------------

def test_switching_modes_prunes_the_dedicated_claim_and_spares_a_shared_one_in_use(
        cluster: Cluster, namespace: str, storage_class: str, tmp_path: Path,
        operators: list[OperatorProcess]) -> None:
    operators.append(start_operator(cluster, [namespace], tmp_path,
                                    storage_class=storage_class, cache_retention="delete"))
    create_artifact(cluster, namespace, nim("a"))
    create_artifact(cluster, namespace, nim("b", mode="nimCache"))
    wait_for(lambda: claim(cluster, namespace, "a-model-store"), timeout=30,
             what="a's dedicated claim")
    cache_uid = wait_for(lambda: claim(cluster, namespace, CACHE_X), timeout=30,
                         what="b's cache claim").metadata.uid

    # dedicated -> nimCache: a's own claim goes, a joins b on the cache.
    patch_artifact(cluster, namespace, "a", {"spec": {"storage": {"mode": "nimCache"}}})
    wait_for(gone(lambda: claim(cluster, namespace, "a-model-store")), timeout=60,
             what="a's dedicated claim to be pruned")
    wait_for(lambda: deployment(cluster, namespace, "a-llm").spec.template.spec.volumes[0]
             .persistent_volume_claim.claim_name == CACHE_X, timeout=30,
             what="a to mount the cache")

    # nim -> service: a stops using the cache, which b still uses.
    patch_artifact(cluster, namespace, "a", {"spec": {"type": "service", "storage": None}})
    wait_for(lambda: not deployment(cluster, namespace, "a-llm").spec.template.spec.volumes,
             timeout=30, what="a to run without the cache")
    wait_for(lambda: status(cluster, namespace, "a").get("observedGeneration") == 3,
             timeout=30, what="a's status of generation 3")
    # a's status of generation 3 is the positive signal; the retention check it started runs
    # in the background: over a stretch of time it must find b and keep the claim.
    pause(3)
    assert claim(cluster, namespace, CACHE_X).metadata.uid == cache_uid
    assert "storage" not in status(cluster, namespace, "a")

    # b goes back to a dedicated claim: the cache has no user left and goes (retention delete).
    patch_artifact(cluster, namespace, "b", {"spec": {"storage": {"mode": "dedicatedPvc"}}})
    wait_for(lambda: claim(cluster, namespace, "b-model-store"), timeout=30,
             what="b's dedicated claim")
    wait_for(gone(lambda: claim(cluster, namespace, CACHE_X)), timeout=60,
             what="the unused cache claim to be deleted")
