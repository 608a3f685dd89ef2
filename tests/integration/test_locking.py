"""Locked artifacts: versions within a repository, the repository label, the frozen spec and
who may delete them."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch as kwatch

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact, require_audit_log
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import wait_for
from ..support.webhook import bind
from .test_admission import ADMIN, EDITOR, as_user, install_roles, refused, webhooks  # noqa: F401

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"
LABEL = "workload.dev/repository"


def manifest(name: str, repository: str | None, lifecycle: str = "draft") -> dict[str, Any]:
    extra = {"repository": repository} if repository else {}
    return service_artifact(name, f"img/{name}:1", lifecycle=lifecycle, **extra)


def versions(cluster: Cluster, namespace: str, names: list[str]) -> dict[str, int]:
    got = {n: get_artifact(cluster, namespace, n).get("status", {}).get("version")
           for n in names}
    assert all(got.values()), got
    return got


def lock(cluster: Cluster, namespace: str, name: str) -> None:
    patch_artifact(cluster, namespace, name, {"spec": {"lifecycle": "locked"}})


def artifact_writes(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    out = []
    for line in require_audit_log(cluster).read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef", {})
        if ref.get("namespace") == namespace and ref.get("resource") == "artifacts" and \
                event.get("user", {}).get("username") == "admin" and \
                event.get("userAgent", "").startswith("artifact-operator"):
            out.append(event)
    return out


def test_versions_count_up_per_repository_also_when_locked_at_once(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    # One locked one after another, then three locked in one burst, one created locked,
    # and another repository and the no-repository group numbered on their own.
    create_artifact(cluster, namespace, manifest("v-a", "shop"))
    lock(cluster, namespace, "v-a")
    wait_for(lambda: versions(cluster, namespace, ["v-a"]), timeout=30, what="version of v-a")
    for name in ("v-b", "v-c", "v-d"):
        create_artifact(cluster, namespace, manifest(name, "shop"))
    for name in ("v-b", "v-c", "v-d"):
        lock(cluster, namespace, name)
    create_artifact(cluster, namespace, manifest("v-e", "shop", lifecycle="locked"))
    create_artifact(cluster, namespace, manifest("other", "blog", lifecycle="locked"))
    create_artifact(cluster, namespace, manifest("loose", None, lifecycle="locked"))
    create_artifact(cluster, namespace, manifest("draft", "shop"))
    names = ["v-a", "v-b", "v-c", "v-d", "v-e"]
    got = wait_for(lambda: versions(cluster, namespace, names), timeout=30,
                   what="versions of the shop artifacts")
    assert got["v-a"] == 1
    assert sorted(got.values()) == [1, 2, 3, 4, 5]
    assert wait_for(lambda: versions(cluster, namespace, ["other", "loose"]), timeout=30,
                    what="versions of the others") == {"other": 1, "loose": 1}
    assert "version" not in get_artifact(cluster, namespace, "draft").get("status", {})

    # The label lists the versions of a repository.
    def shop() -> set[str]:
        items = cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=f"{LABEL}=shop")["items"]
        return {o["metadata"]["name"] for o in items}

    wait_for(lambda: shop() == {*names, "draft"}, timeout=30, what="the shop label on six")
    assert LABEL not in (get_artifact(cluster, namespace, "loose")["metadata"].get("labels")
                         or {})

    # Locked while the operator is down, three wait for it and are numbered together when
    # it starts; the versions already given never change.
    operator.stop()
    later = ["v-f", "v-g", "v-h"]
    for name in later:
        create_artifact(cluster, namespace, manifest(name, "shop", lifecycle="locked"))
    operator.start()
    assert sorted(wait_for(lambda: versions(cluster, namespace, later), timeout=30,
                           what="versions of the late ones").values()) == [6, 7, 8]
    assert versions(cluster, namespace, names) == got


def test_the_repository_label_is_written_once(cluster: Cluster, namespace: str,
                                              operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, manifest("labelled", "shop"))
    wait_for(lambda: get_artifact(cluster, namespace, "labelled")["metadata"].get("labels", {})
             .get(LABEL) == "shop", timeout=30, what="the repository label")
    wait_for(lambda: get_artifact(cluster, namespace, "labelled").get("status", {})
             .get("observedGeneration") == 1, timeout=30, what="a status")
    label_patches = [e for e in artifact_writes(cluster, namespace)
                     if e["verb"] == "patch" and e["objectRef"].get("subresource") is None]
    assert len(label_patches) == 1, label_patches
    # Restarted, the operator finds the label right and writes nothing to the artifact.
    operator.stop()
    before = len(artifact_writes(cluster, namespace))
    operator.start()
    patch_artifact(cluster, namespace, "labelled", {"spec": {"description": "touch"}})
    wait_for(lambda: get_artifact(cluster, namespace, "labelled").get("status", {})
             .get("observedGeneration") == 2, timeout=30, what="the change reconciled")
    writes = artifact_writes(cluster, namespace)[before:]
    assert [e["objectRef"].get("subresource") for e in writes] == ["status"], writes


def test_a_locked_artifact_is_frozen_and_only_an_admin_deletes_it(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess) -> None:  # noqa: F811
    editor = as_user(cluster, EDITOR)
    editor.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact",
        **manifest("frozen", "shop"), "metadata": {"name": "frozen", "namespace": namespace}})
    editor.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "frozen",
                                          {"spec": {"lifecycle": "locked"}})
    wait_for(lambda: versions(cluster, namespace, ["frozen"]), timeout=30, what="a version")

    for change, path in (
        ({"spec": {"description": "changed"}}, "spec.description"),
        ({"spec": {"lifecycle": "draft"}}, "spec.lifecycle: a locked artifact cannot go back"),
    ):
        # Refused for everyone, admins included: a locked spec is a released version.
        for user in (EDITOR, ADMIN):
            error = refused(lambda c=change, u=user: as_user(
                cluster, u).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "frozen", c))
            assert error.status == 422 and path in error.body, error.body
    # Metadata stays editable: labels are not the spec.
    editor.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "frozen",
                                          {"metadata": {"labels": {"team": "a"}}})

    error = refused(lambda: editor.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "frozen"))
    assert error.status == 403 and "the artifact is locked" in error.body, error.body
    assert get_artifact(cluster, namespace, "frozen")["spec"]["lifecycle"] == "locked"
    as_user(cluster, ADMIN).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                            "frozen")
    assert refused(lambda: get_artifact(cluster, namespace, "frozen")).status == 404


def _image(cluster: Cluster, namespace: str, name: str) -> str:
    deployment = cluster.apps.read_namespaced_deployment(f"{name}-api", namespace)
    return str(deployment.spec.template.spec.containers[0].image)


def _observed(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The status once the operator has handled the artifact's latest generation."""
    art = get_artifact(cluster, namespace, name)
    status = art.get("status", {})
    assert status.get("observedGeneration") == art["metadata"]["generation"], status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason, ready
    return dict(status)


def test_without_the_webhook_a_changed_locked_spec_is_never_rolled_out(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """A 1.20 server has no CEL and this operator serves no webhook: the API server stores an
    editor's edit of a locked artifact, and the operator alone keeps it from running."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    editor = as_user(cluster, EDITOR)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact",
            **manifest("held", "shop", lifecycle="locked")}
    body["metadata"]["namespace"] = namespace
    editor.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    locked = wait_for(lambda: get_artifact(cluster, namespace, "held").get("status", {})
                      .get("lockedSpecDigest"), timeout=30, what="the locked spec's digest")
    assert versions(cluster, namespace, ["held"]) == {"held": 1}
    assert _image(cluster, namespace, "held") == "img/held:1"
    deployment_rv = cluster.apps.read_namespaced_deployment(
        "held-api", namespace).metadata.resource_version

    # The editor changes the image of the locked artifact; then unlocks it and changes it.
    for change in ({"spec": {"containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "evil/held:2", "primary": True, "port": 8080}]}]}},
            {"spec": {"lifecycle": "draft"}}):
        editor.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held", change)
        status = wait_for(lambda: _observed(cluster, namespace, "held", "LockedSpecChanged"),
                          timeout=30, what="the operator to refuse the change")
        assert status["phase"] == "Degraded"
        assert status["version"] == 1 and status["lockedSpecDigest"] == locked
        # Nothing rolled out: the Deployment was not written at all.
        deployment = cluster.apps.read_namespaced_deployment("held-api", namespace)
        assert deployment.metadata.resource_version == deployment_rv
        assert _image(cluster, namespace, "held") == "img/held:1"

    # Restoring the locked spec restores normal service, without touching the children.
    editor.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "held", {
        "spec": {"lifecycle": "locked", "containerGroups": manifest(
            "held", "shop")["spec"]["containerGroups"]}})
    status = wait_for(lambda: _observed(cluster, namespace, "held", "RolloutInProgress"),
                      timeout=30, what="the restored spec reconciled")
    assert status["phase"] == "Progressing"
    assert cluster.apps.read_namespaced_deployment(
        "held-api", namespace).metadata.resource_version == deployment_rv


def test_artifacts_locked_before_the_digest_existed_get_one_and_stay_frozen(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """Migration: a locked artifact with a version but no digest (an older operator locked
    it) gets the digest of its spec as it stands, and from then on is frozen."""
    create_artifact(cluster, namespace, manifest("old", "shop", lifecycle="locked"))
    digest = wait_for(lambda: get_artifact(cluster, namespace, "old").get("status", {})
                      .get("lockedSpecDigest"), timeout=30, what="a digest")
    # As an older operator left it: the digest removed, the version kept.
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "old", {"status": {"lockedSpecDigest": None}})
    assert wait_for(lambda: get_artifact(cluster, namespace, "old").get("status", {})
                    .get("lockedSpecDigest"), timeout=30, what="the digest again") == digest
    patch_artifact(cluster, namespace, "old", {"spec": {"description": "changed"}})
    wait_for(lambda: _observed(cluster, namespace, "old", "LockedSpecChanged"), timeout=30,
             what="the change refused")


def test_two_replicas_that_both_lead_never_hand_out_a_version_twice(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """Two operator processes without leader election both reconcile (both act as leaders)
    and lock a burst of artifacts of one repository: every version is given once, the
    numbers are contiguous, and no artifact's version ever changes."""
    seen: dict[str, list[int]] = {}
    stop = threading.Event()

    def record() -> None:
        # Every version any artifact was ever seen with, from a watch of the namespace.
        while not stop.is_set():
            stream = kwatch.Watch().stream(cluster.custom.list_namespaced_custom_object,
                                           GROUP, VERSION, namespace, PLURAL,
                                           timeout_seconds=2)
            for event in stream:
                obj = event["object"]
                version = (obj.get("status") or {}).get("version")
                if version is not None:
                    versions_of = seen.setdefault(obj["metadata"]["name"], [])
                    if version not in versions_of:
                        versions_of.append(version)

    names = [f"burst-{i:02d}" for i in range(24)]
    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    replicas = [OperatorProcess(cluster.kubeconfig, [namespace],
                                tmp_path / f"operator-{i}.log") for i in range(2)]
    try:
        for proc in replicas:
            proc.start()
        # Created locked, all at once: each replica creates (or finds) the children of each
        # and then numbers it, in whatever order its own requests come back.
        for name in reversed(names):
            create_artifact(cluster, namespace, manifest(name, "shop", lifecycle="locked"))
        got = wait_for(lambda: versions(cluster, namespace, names), timeout=60,
                       what="every version")
        assert sorted(got.values()) == list(range(1, len(names) + 1)), got
    finally:
        for proc in replicas:
            proc.stop()
        stop.set()
        recorder.join(10)
    assert {n: v for n, v in seen.items() if len(v) > 1} == {}, seen
