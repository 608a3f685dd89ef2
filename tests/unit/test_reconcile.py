"""Reconciler against the in-memory FakeKube: what one pass writes (children only when they
differ, status only when it changed), what it refuses to touch, and how it ends (`Outcome`).

The view is bound to child indexes rebuilt from the fake's objects (`catch_up`, as kopf's
watches would fill them), so a test decides when "the watch has caught up"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from artifact_operator.api import naming
from artifact_operator.controller.reconcile import Outcome, Reconciler
from artifact_operator.controller.view import ClusterView
from artifact_operator.kube.events import EventRecorder
from artifact_operator.logic.approval import LegacyApprover
from artifact_operator.settings import Settings

from ..support.builders import PINNED_IMAGE, in_namespace, primary, service_artifact
from ..support.fake_kube import FakeKube, Write

Obj = dict[str, Any]
NS = "team-a"
KEY = (NS, "web")
DEPLOYMENT = Write("apply", "Deployment", "web-api")
SERVICE = Write("apply", "Service", "web-api")
STATUS = Write("patch", "Artifact/status", "web")


class Harness:
    def __init__(self, *, settings: Settings | None = None, events: bool = False,
                 kube: FakeKube | None = None, concurrency: int = 16) -> None:
        self.kube = kube or FakeKube()
        self.view = ClusterView()
        self.events = EventRecorder(self.kube.as_kube(), enabled=events)
        self.reconciler = Reconciler(self.kube.as_kube(),
                                     settings or Settings(status_settle_seconds=0), self.view,
                                     self.events, LegacyApprover(None), concurrency=concurrency)
        self.catch_up()

    def create(self, manifest: Obj) -> Obj:
        """The user creates the artifact and the watch delivers it."""
        stored = self.kube.seed(in_namespace(manifest, NS))
        self.view.note_artifact(stored)
        return stored

    async def edit(self, spec: Obj, name: str = "web") -> Obj:
        """The user changes the spec (a merge patch) and the watch delivers it."""
        current = self.artifact(name)
        updated = await self.kube.patch(current, {"spec": spec})
        self.kube.writes.clear()  # the user's write, not the operator's
        self.view.note_artifact(updated)
        return updated

    def artifact(self, name: str = "web") -> Obj:
        found = self.kube.stored("Artifact", NS, name)
        assert found is not None
        return found

    def status(self, name: str = "web") -> Obj:
        return dict(self.artifact(name).get("status") or {})

    def catch_up(self) -> None:
        """The watches deliver everything stored: children into the indexes, artifacts."""
        self.view.bind(self.kube.indexes())
        for obj in self.kube.of_kind("Artifact"):
            self.view.note_artifact(obj)

    async def reconcile(self, name: str = "web") -> Outcome:
        self.kube.writes.clear()
        return await self.reconciler.reconcile((NS, name))

    def owner_ref(self, name: str = "web") -> Obj:
        art = self.artifact(name)
        return naming.owner_reference(art["apiVersion"], "Artifact", name,
                                      art["metadata"]["uid"])


def condition(status: Obj, type_: str) -> Obj:
    return next(c for c in status["conditions"] if c["type"] == type_)


def deployment_rolled_out(h: Harness, name: str = "web-api", replicas: int = 1) -> None:
    """The Deployment controller finished a rollout of the current generation."""
    d = h.kube.stored("Deployment", NS, name)
    assert d is not None
    h.kube.update_status(d, {
        "observedGeneration": d["metadata"]["generation"], "replicas": replicas,
        "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [{"type": "Progressing", "status": "True",
                        "reason": "NewReplicaSetAvailable"}]})


def reconciles(result: str) -> float:
    return REGISTRY.get_sample_value("artifact_operator_reconciles_total",
                                     {"result": result}) or 0.0


# -- applying only what differs -------------------------------------------------------------


async def test_first_reconcile_applies_the_children_and_writes_status_once() -> None:
    h = Harness()
    h.create(service_artifact("web"))

    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == [DEPLOYMENT, SERVICE, STATUS]
    status = h.status()
    assert status["phase"] == "Progressing" and status["observedGeneration"] == 1
    service = h.kube.stored("Service", NS, "web-api")
    assert service is not None
    assert service["metadata"]["ownerReferences"] == [h.owner_ref()]


async def test_a_second_reconcile_with_the_view_caught_up_writes_nothing() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == []


async def test_a_second_reconcile_before_the_watch_delivered_our_writes_writes_nothing() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    # No catch_up: the view knows our writes only from their answers.
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == []


async def test_a_child_deleted_just_after_the_watch_showed_our_write_is_put_back() -> None:
    """The watch shows our write, then someone deletes the child, before any reconcile has
    looked (the reconcile the echo queued is coalesced with the deletion's). The deleted
    child is applied again; our write does not stand in for it."""
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    service = h.kube.stored("Service", NS, "web-api")
    assert service is not None
    h.catch_up()
    h.reconciler.child_changed(None, service)  # the echo of our apply
    await h.kube.delete(service)  # someone deletes it
    h.catch_up()
    h.reconciler.child_changed(service, None)

    assert await h.reconcile() == Outcome.ok
    assert SERVICE in h.kube.writes
    assert h.kube.stored("Service", NS, "web-api") is not None


async def test_a_controllers_status_change_writes_the_status_and_nothing_else() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    deployment_rolled_out(h)
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == [STATUS]
    assert h.status()["phase"] == "Ready"
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == []


async def test_a_changed_spec_applies_only_the_changed_object() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    h.catch_up()
    await h.edit({"containerGroups": [{"name": "api", "containers": [
        primary(image="nginx:1.28")]}]})

    await h.reconcile()
    assert h.kube.writes == [DEPLOYMENT, STATUS]
    deployment = h.kube.stored("Deployment", NS, "web-api")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert h.status()["observedGeneration"] == 2


async def test_a_change_stored_between_our_read_and_our_status_write_is_reconciled() -> None:
    """The watch's echo of our own status write reconciles nothing (`Reconciler.artifact_changed`).
    A user's edit stored after the reconcile read the artifact, and before its status write,
    is in that write's answer too: the write itself must queue it."""
    h = Harness()
    h.create(service_artifact("web"))
    # The user's edit is stored; the watch has not delivered it yet.
    await h.kube.patch(h.artifact(), {"spec": {"containerGroups": [{
        "name": "api", "containers": [primary(image="nginx:1.28")]}]}})
    assert await h.reconcile() == Outcome.ok  # on generation 1, as the view holds it
    assert h.view.note_artifact(h.artifact()) is False, "the echo is not news"
    h.catch_up()
    await asyncio.wait_for(_idle(h.reconciler), 2)
    assert h.status()["observedGeneration"] == 2
    deployment = h.kube.stored("Deployment", NS, "web-api")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


async def test_our_own_status_write_queues_nothing_more() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes[-1] == STATUS
    assert h.reconciler.queue.idle
    assert h.view.note_artifact(h.artifact()) is False, "the echo is not news"


# -- pruning ---------------------------------------------------------------------------------


def stray(h: Harness, name: str, owner: Obj | None) -> Obj:
    """A Deployment labelled as the artifact's, controlled by `owner`."""
    meta: Obj = {"name": name, "namespace": NS,
                 "labels": naming.labels("web", "old", "service")}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return h.kube.seed({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                        "spec": {"replicas": 1}})


async def test_a_child_no_longer_rendered_is_deleted() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    stray(h, "web-old", h.owner_ref())
    h.catch_up()
    await h.reconcile()
    assert Write("delete", "Deployment", "web-old") in h.kube.writes
    assert h.kube.stored("Deployment", NS, "web-old") is None


async def test_a_child_re_created_meanwhile_is_spared_by_the_uid_precondition() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    old = stray(h, "web-old", h.owner_ref())
    h.catch_up()
    # Deleted and re-created behind the view's back: the view still shows the old uid.
    await h.kube.delete(old)
    again = stray(h, "web-old", h.owner_ref())
    await h.reconcile()
    assert not [w for w in h.kube.writes if w.verb == "delete"]
    kept = h.kube.stored("Deployment", NS, "web-old")
    assert kept is not None and kept["metadata"]["uid"] == again["metadata"]["uid"]


async def test_a_child_controlled_by_another_uid_is_never_deleted() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    other = {**h.owner_ref(), "uid": "uid-of-an-earlier-web"}
    stray(h, "web-old", other)
    stray(h, "web-loose", None)
    h.catch_up()
    await h.reconcile()
    assert not [w for w in h.kube.writes if w.verb == "delete"]
    assert h.kube.stored("Deployment", NS, "web-old") is not None
    assert h.kube.stored("Deployment", NS, "web-loose") is not None


# -- refusals ----------------------------------------------------------------------------------


async def test_an_invalid_spec_writes_only_the_status_and_touches_no_child() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    h.catch_up()
    children = {k: v for k, v in h.kube.objects.items() if k[0] != "Artifact"}
    # A primary container without a port breaks a cross-field rule.
    await h.edit({"containerGroups": [{"name": "api", "containers": [
        {"name": "app", "imageUri": "nginx:1.28", "primary": True}]}]})

    assert await h.reconcile() == Outcome.invalid
    assert h.kube.writes == [STATUS]
    status = h.status()
    assert status["phase"] == "Failed" and status["observedGeneration"] == 2
    assert condition(status, "Ready")["reason"] == "InvalidSpec"
    assert "port" in condition(status, "Degraded")["message"]
    assert {k: v for k, v in h.kube.objects.items() if k[0] != "Artifact"} == children

    h.catch_up()
    assert await h.reconcile() == Outcome.invalid
    assert h.kube.writes == [], "the same violation is not written again"


async def test_an_object_of_the_same_name_owned_by_someone_else_is_not_taken_over() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    theirs = h.kube.seed({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "web-api", "namespace": NS,
                                       "labels": {"team": "b"}},
                          "spec": {"ports": [{"port": 80}]}})

    assert await h.reconcile() == Outcome.error
    assert h.kube.writes == [DEPLOYMENT, STATUS]
    assert h.kube.stored("Service", NS, "web-api") == theirs
    status = h.status()
    assert status["phase"] == "Degraded"
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "Service web-api already exists and is not managed by this artifact" in \
        degraded["message"]


async def test_the_api_token_secret_is_created_once_and_never_rewritten() -> None:
    h = Harness()
    token_env = [{"name": "TOKEN", "source": "dr-api-token"}]
    h.create(service_artifact("web", env=token_env))
    await h.reconcile()
    secret_writes = [w for w in h.kube.writes if w.kind == "Secret"]
    assert secret_writes == [Write("create", "Secret", "web-api-token")]
    secret = h.kube.stored("Secret", NS, "web-api-token")
    assert secret is not None and list(secret["data"]) == ["token"]

    # Not before the watch shows it, not after, not on a spec change.
    await h.reconcile()
    h.catch_up()
    await h.reconcile()
    await h.edit({"containerGroups": [{"name": "api", "containers": [
        primary(image="nginx:1.28", environmentVars=token_env)]}]})
    await h.reconcile()
    assert Write("apply", "Deployment", "web-api") in h.kube.writes
    assert not [w for w in h.kube.writes if w.kind == "Secret"]

    # A restarted operator whose view lacks it (it exists: create answers 409) writes nothing.
    fresh = Harness(kube=h.kube)
    fresh.view.bind({})  # as if the Secret index were empty
    fresh.view.indexes.pop("Secret")
    await fresh.reconcile()
    assert h.kube.writes == []
    assert h.kube.stored("Secret", NS, "web-api-token") == secret


async def test_a_refusal_by_the_server_is_degraded_with_the_servers_message() -> None:
    h = Harness(events=True)
    h.create(service_artifact("web"))
    message = 'Service "web-api" is invalid: spec.ports[0].port: Invalid value: 0'
    h.kube.fail("apply", "Service", 422, message, reason="Invalid")

    assert await h.reconcile() == Outcome.error
    assert h.kube.writes_except("Event") == [DEPLOYMENT, STATUS]
    status = h.status()
    assert status["phase"] == "Degraded"
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "ApplyFailed" and message in degraded["message"]
    await h.events.drain()
    warnings = [e for e in h.kube.of_kind("Event") if e["type"] == "Warning"]
    assert [(e["reason"], message in e["message"]) for e in warnings] == [("ApplyFailed", True)]

    # The next pass (the server accepts it now) clears it.
    h.catch_up()
    await h.reconcile()
    assert h.kube.writes_except("Event") == [SERVICE, STATUS]
    assert h.status()["phase"] == "Progressing"


async def test_a_refusal_is_not_retried_by_the_queue() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    h.kube.fail("apply", "Service", 422, "invalid")
    before = reconciles("error")
    assert await h.reconciler.run(KEY) is True
    assert reconciles("error") == before + 1


async def test_a_transient_server_error_asks_the_queue_to_retry() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    h.kube.fail("apply", "Service", 500, "etcdserver: request timed out")
    before = reconciles("error")

    assert await h.reconciler.run(KEY) is False
    assert reconciles("error") == before + 1
    assert h.kube.writes == [DEPLOYMENT], "the pass stopped: no status from half a picture"

    h.kube.writes.clear()
    assert await h.reconciler.run(KEY) is True
    assert h.kube.writes == [SERVICE, STATUS]


# -- outcomes ----------------------------------------------------------------------------------


async def test_outcomes_are_counted_by_result() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    before = reconciles("ok")
    assert await h.reconciler.run(KEY) is True
    assert reconciles("ok") == before + 1


async def test_outcome_gone_for_an_artifact_deleted_or_being_deleted() -> None:
    h = Harness()
    assert await h.reconcile("nothing") == Outcome.gone
    manifest = service_artifact("web")
    manifest["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    h.create(manifest)
    assert await h.reconcile() == Outcome.gone
    assert h.kube.writes == []


async def test_outcome_settling_holds_the_status_while_the_deployment_takes_its_first_step(
        ) -> None:
    h = Harness(settings=Settings(status_settle_seconds=60))
    h.create(service_artifact("web"))
    h.reconciler.queue.enqueue(KEY)  # reconciled through the queue, which holds the key
    await asyncio.wait_for(_idle(h.reconciler), 2)
    assert [w.kind for w in h.kube.writes] == ["Deployment", "Service"], "no status yet"

    h.catch_up()
    assert await h.reconcile() == Outcome.settling
    assert h.kube.writes == []

    deployment_rolled_out(h)  # the controller took its step: the hold ends
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == [STATUS]
    assert h.status()["phase"] == "Ready"
    h.reconciler.deactivate()


@pytest.mark.parametrize("change_settle", [60, 0])
async def test_a_spec_change_is_acknowledged_within_its_own_shorter_hold(
        change_settle: float) -> None:
    """An artifact already observed: the status that acknowledges its spec change
    (`observedGeneration`) waits for the Deployment controller only as long as
    `status_change_settle_seconds`, not the creation's `status_settle_seconds`."""
    h = Harness(settings=Settings(status_settle_seconds=60,
                                  status_change_settle_seconds=change_settle))
    h.create(service_artifact("web"))
    h.reconciler.queue.enqueue(KEY)
    await asyncio.wait_for(_idle(h.reconciler), 2)
    deployment_rolled_out(h)
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.status()["observedGeneration"] == 1

    await h.edit({"containerGroups": [{"name": "api", "containers": [
        primary(image="nginx:1.28")]}]})
    h.reconciler.queue.enqueue(KEY)
    await asyncio.wait_for(_idle(h.reconciler), 2)
    # The new template is applied; the Deployment controller has not taken its step.
    assert h.kube.writes[0] == DEPLOYMENT
    if change_settle:
        assert h.kube.writes == [DEPLOYMENT]
        assert h.status()["observedGeneration"] == 1
    else:
        assert h.kube.writes == [DEPLOYMENT, STATUS]
        assert h.status()["observedGeneration"] == 2
        assert h.status()["phase"] == "Progressing"
    h.reconciler.deactivate()


async def test_a_users_edit_takes_the_next_slot_before_artifacts_woken_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue's urgent lane, as the reconciler fills it: from the artifact as the view has
    it (`generation` ahead of `observedGeneration`), whatever woke it."""
    h = Harness(concurrency=1)
    for name in ("busy", "web", "db", "edited"):
        h.create(service_artifact(name))
    for name in ("web", "db", "edited"):
        assert await h.reconcile(name) == Outcome.ok
    h.catch_up()
    await h.edit({"description": "changed"}, name="edited")
    order: list[str] = []
    gate = asyncio.Event()
    reconcile = h.reconciler.reconcile

    async def recorded(key: tuple[str, str]) -> Outcome:
        order.append(key[1])
        if key[1] == "busy":
            await gate.wait()
        return await reconcile(key)

    monkeypatch.setattr(h.reconciler, "reconcile", recorded)
    h.reconciler.enqueue((NS, "busy"))  # takes the only slot
    await asyncio.wait_for(_until(lambda: order == ["busy"]), 2)
    for name in ("web", "db", "edited"):  # say, each woken by a child's event
        h.reconciler.enqueue((NS, name))
    await asyncio.wait_for(_until(lambda: h.reconciler.queue.waiting == (1, 2)), 2)
    gate.set()
    await asyncio.wait_for(_idle(h.reconciler), 2)
    # (each then runs once more: the harness's settle hold of 0 s is up at once)
    assert order[:4] == ["busy", "edited", "web", "db"]
    assert h.status("edited")["observedGeneration"] == 2


async def _until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.001)

async def _idle(reconciler: Reconciler) -> None:
    while not reconciler.queue.idle:
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("events", [True, False])
async def test_events_are_posted_only_when_enabled(events: bool) -> None:
    h = Harness(events=events)
    h.create(service_artifact("web"))
    await h.reconcile()
    await h.events.drain()
    posted = sorted(e["message"] for e in h.kube.of_kind("Event"))
    # One Event per reason and reconcile, naming every child.
    assert posted == (["Created Deployment web-api, Service web-api"] if events else [])


# -- approvals ----------------------------------------------------------------------------

NET_ADMIN = {"capabilities": {"add": ["NET_ADMIN"]}}


def approval_for(h: Harness) -> dict[str, list[Obj]]:
    """The approval index as its watch fills it: the admin's approval of `web` as stored now."""
    from artifact_operator.api.validation import parse
    from artifact_operator.logic.approval import approval_spec

    spec = approval_spec(parse(h.artifact()))
    return {(NS, "web"): [{"metadata": {"name": "web", "namespace": NS,
                                        "resourceVersion": "1"}, "spec": spec}]}


def deployed_caps(h: Harness) -> Any:
    d = h.kube.stored("Deployment", NS, "web-api")
    return d and d["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "capabilities"].get("add")


async def test_a_stale_approval_keeps_what_runs_and_writes_no_child() -> None:
    h = Harness()
    h.create(service_artifact("web", PINNED_IMAGE, security=NET_ADMIN))
    await h.reconcile()
    assert h.kube.writes == [STATUS]  # never approved: nothing rendered
    assert condition(h.status(), "Ready")["reason"] == "ElevatedNotApproved"
    h.view.bind({}, approvals=approval_for(h))
    await h.reconcile()
    assert deployed_caps(h) == ["NET_ADMIN"]
    h.catch_up()
    await h.edit({"containerGroups": [{"name": "api", "containers": [primary(
        image=PINNED_IMAGE, securityContext=NET_ADMIN, entrypoint=["sh", "-c", "x"])]}]})
    await h.reconcile()
    assert h.kube.writes == [STATUS]  # the Deployment is neither applied nor deleted
    assert deployed_caps(h) == ["NET_ADMIN"]
    degraded = condition(h.status(), "Degraded")
    assert degraded["reason"] == "ApprovalStale" and "container/app" in degraded["message"]


async def test_the_old_annotation_keeps_what_runs_until_the_next_change() -> None:
    from artifact_operator.logic.approval import LEGACY_ANNOTATION

    h = Harness()
    doc = service_artifact("web", PINNED_IMAGE, security=NET_ADMIN)
    h.reconciler.legacy = legacy = LegacyApprover(b"k" * 32)
    signature = legacy._signature(NS, "web", doc["spec"])
    assert signature is not None
    doc["metadata"]["annotations"] = {LEGACY_ANNOTATION: signature}
    h.create(doc)
    # Running before the upgrade: here, applied once under an approval that is then gone.
    h.view.bind({}, approvals=approval_for(h))
    await h.reconcile()
    h.view.bind({}, approvals={})
    h.catch_up()
    await h.reconcile()
    assert DEPLOYMENT not in h.kube.writes and deployed_caps(h) == ["NET_ADMIN"]
    # Approved on the annotation's word: neither held nor stale.
    assert condition(h.status(), "Ready")["reason"] not in ("ElevatedNotApproved",
                                                            "ApprovalStale")
    assert condition(h.status(), "Degraded")["status"] == "False"
    # The next change (not covered by the old annotation) holds the group.
    await h.edit({"containerGroups": [{"name": "api", "containers": [primary(
        image=PINNED_IMAGE, securityContext=NET_ADMIN, entrypoint=["sh", "-c", "x"])]}]})
    await h.reconcile()
    assert DEPLOYMENT not in h.kube.writes and deployed_caps(h) == ["NET_ADMIN"]
    assert condition(h.status(), "Degraded")["reason"] == "ApprovalStale"


# -- what the pods say -----------------------------------------------------------------------


def a_pod(h: Harness, name: str, *, ready: bool, restarts: int,
          waiting: Obj | None = None) -> None:
    state = {"waiting": waiting} if waiting else {"running": {"startedAt": "t"}}
    h.kube.seed({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": NS, "labels": naming.selector("web", "api")},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "app", "restartCount": restarts,
                                   "state": state}]}})


async def test_restarts_are_read_when_the_ready_count_moves_and_kept_while_steady() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    deployment_rolled_out(h)
    a_pod(h, "web-api-1", ready=True, restarts=0)
    h.catch_up()
    await h.reconcile()
    assert "restarts" not in h.status()["containerGroups"][0]
    # A liveness failure: the kubelet restarts the container, the pod is unready meanwhile.
    h.kube.objects[("Pod", NS, "web-api-1")]["status"]["containerStatuses"][0][
        "restartCount"] = 1
    d = h.kube.stored("Deployment", NS, "web-api")
    assert d is not None
    h.kube.update_status(d, {"readyReplicas": 0})
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == [STATUS]
    assert h.status()["containerGroups"][0]["restarts"] == 1
    assert h.status()["phase"] == "Degraded"
    deployment_rolled_out(h)
    h.catch_up()
    await h.reconcile()
    assert (h.status()["phase"], h.status()["containerGroups"][0]["restarts"]) == ("Ready", 1)
    # Steady: the pods are not read again (a failing read would not matter either way).
    h.kube.fail("list", "Pod", times=5)
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert h.kube.writes == []


async def test_a_degraded_group_quotes_its_pod_and_survives_a_refused_pod_read() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    a_pod(h, "web-api-1", ready=False, restarts=3,
          waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s"})
    d = h.kube.stored("Deployment", NS, "web-api")
    assert d is not None
    h.kube.update_status(d, {
        "observedGeneration": d["metadata"]["generation"], "replicas": 1,
        "updatedReplicas": 1, "readyReplicas": 0,
        "conditions": [{"type": "Progressing", "status": "False",
                        "reason": "ProgressDeadlineExceeded"}]})
    h.kube.fail("list", "Pod", status=403, message="forbidden")  # a role without pod reads
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert condition(h.status(), "Degraded")["message"] == \
        "group api: rollout exceeded its progress deadline"
    h.kube.update_status(d, {"unavailableReplicas": 1})  # any status change: reconciled again
    h.catch_up()
    assert await h.reconcile() == Outcome.ok
    assert condition(h.status(), "Degraded")["message"] == (
        "group api: rollout exceeded its progress deadline (pod web-api-1: container app: "
        "CrashLoopBackOff: back-off 40s)")
    assert h.status()["containerGroups"][0]["restarts"] == 3


async def test_an_artifact_deleted_while_the_watch_was_away_is_forgotten() -> None:
    """No deletion event ever comes for it (kopf re-lists without one): the 404 of our own
    write says it is gone, and it leaves the view, so its children's events stop waking it."""
    h = Harness()
    h.create(service_artifact("web"))
    await h.reconcile()
    stored = h.artifact()
    h.kube.objects.pop(("Artifact", NS, "web"))  # deleted while nobody watched
    h.view.note_artifact({**stored, "metadata": {
        **stored["metadata"], "resourceVersion": "999999",
        "generation": stored["metadata"]["generation"] + 1},
                          "spec": {**stored["spec"], "description": "changed"}})
    assert await h.reconcile() == Outcome.gone
    assert KEY not in h.view.artifacts
    assert await h.reconcile() == Outcome.gone


# -- what the watches of the Artifacts and ArtifactApprovals wake -----------------------------


async def test_an_artifact_from_its_watch_is_reconciled_and_our_echo_is_not() -> None:
    h = Harness()
    stored = h.kube.seed(in_namespace(service_artifact("web"), NS))
    h.reconciler.artifact_changed(None, stored)
    await asyncio.wait_for(_idle(h.reconciler), 2)
    assert h.kube.writes == [DEPLOYMENT, SERVICE, STATUS]
    h.kube.writes.clear()
    h.reconciler.artifact_changed({"metadata": stored["metadata"]}, h.artifact())  # the echo
    assert h.reconciler.queue.idle and h.kube.writes == []


async def test_an_artifact_gone_is_forgotten() -> None:
    h = Harness()
    h.create(service_artifact("web"))
    kept = {"metadata": {"namespace": NS, "name": "web"}}  # what the watch keeps of it
    h.reconciler.artifact_changed(kept, None)
    await asyncio.wait_for(_idle(h.reconciler), 2)
    assert KEY not in h.view.artifacts
    assert h.kube.writes == []


async def test_an_approval_wakes_the_artifact_it_names() -> None:
    h = Harness()
    h.create(service_artifact("web", PINNED_IMAGE, security=NET_ADMIN))
    await h.reconcile()
    assert deployed_caps(h) is None
    approval = approval_for(h)[KEY][0]
    h.view.bind({}, approvals=approval_for(h))
    h.reconciler.approval_changed(None, approval)
    await asyncio.wait_for(_idle(h.reconciler), 2)
    assert deployed_caps(h) == ["NET_ADMIN"]
    h.reconciler.approval_changed(None, {"metadata": {"namespace": NS},
                                         "spec": {"artifact": {"name": "unknown"}}})
    assert h.reconciler.queue.idle
