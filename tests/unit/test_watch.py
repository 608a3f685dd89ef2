"""ListWatch: list, then watch from the list's resourceVersion; slim copies indexed by key;
relist on 410 Gone; `synced` once listed; old and new bodies to `observe`."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from artifact_operator.api import naming
from artifact_operator.controller.view import MANAGED_SELECTOR, child_keys, slim
from artifact_operator.kube.client import ApiError
from artifact_operator.kube.watch import ListWatch

Obj = dict[str, Any]
NS = "team-a"


def deployment(name: str, artifact: str, rv: int, cache: str | None = None) -> Obj:
    labels = naming.labels(artifact, "api", "service")
    if cache:
        labels[naming.LABEL_CACHE] = cache
    return {"metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv),
                         "labels": labels, "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 1}}


class FakeApi:
    """`list_pages` and `watch` of kube.Kube: lists are served from `items`, `page` at a time,
    and each watch replays `streams` in turn (an ApiError in a stream is raised, as the
    client does)."""

    def __init__(self, items: list[Obj], streams: list[list[Any]], page: int = 500) -> None:
        self.items = items
        self.page = page
        self.pages = 0
        self.streams = streams
        self.lists = 0
        self.watched_from: list[str] = []
        self.idle = asyncio.Event()

    async def list_pages(self, api_version: str, kind: str, namespace: str | None,
                         label_selector: str) -> AsyncIterator[tuple[list[Obj], str]]:
        assert label_selector == MANAGED_SELECTOR
        self.lists += 1
        for start in range(0, max(len(self.items), 1), self.page):
            self.pages += 1
            yield [dict(o) for o in self.items[start:start + self.page]], str(100 * self.lists)

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    label_selector: str, resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        self.watched_from.append(resource_version)
        if not self.streams:
            self.idle.set()
            await asyncio.Event().wait()
        for event in self.streams.pop(0):
            if isinstance(event, asyncio.Event):
                await event.wait()
            elif isinstance(event, Exception):
                raise event
            else:
                yield event


async def run_until_idle(watch: ListWatch, api: FakeApi) -> None:
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(api.idle.wait(), 2)
    finally:
        task.cancel()


async def test_lists_indexes_and_follows_the_watch() -> None:
    web = deployment("web-api", "web", 1)
    shared = deployment("db-api", "db", 2, cache="abc")
    moved = {**deployment("web-api", "web", 5), "kind": "Deployment", "apiVersion": "apps/v1"}
    moved["metadata"]["labels"][naming.LABEL_CACHE] = "abc"
    gone = {**deployment("db-api", "db", 6), "kind": "Deployment", "apiVersion": "apps/v1"}
    api = FakeApi([web, shared], [[("MODIFIED", moved), ("BOOKMARK", {
        "metadata": {"resourceVersion": "7"}}), ("DELETED", gone)]])
    seen: list[tuple[str | None, str | None]] = []
    changed: list[tuple[str, str]] = []

    def observe(old: Obj | None, new: Obj | None) -> None:
        seen.append(((old or {}).get("metadata", {}).get("resourceVersion"),
                     (new or {}).get("metadata", {}).get("resourceVersion")))

    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, None,  # type: ignore[arg-type]
                      slim, lambda ns, name: changed.append((ns, name)), index=child_keys,
                      observe=observe)
    await run_until_idle(watch, api)
    assert watch.synced.is_set()
    # Listed items get their kind (a list's items carry none) and lose managedFields.
    assert seen == [(None, "1"), (None, "2"), ("1", "5"), ("2", None)]
    assert changed == [(NS, "web-api"), (NS, "db-api"), (NS, "web-api"), (NS, "db-api")]
    assert api.watched_from == ["100", "6"]  # resumed after the last event
    assert set(watch.by_key) == {(NS, "web"), ("cache", NS, "abc")}
    [current] = watch.by_key[(NS, "web")]
    assert current["kind"] == "Deployment" and "managedFields" not in current["metadata"]
    assert watch.by_key[("cache", NS, "abc")] == [current]
    assert (NS, "db") not in watch.by_key


async def test_relists_after_410_and_drops_what_went_meanwhile() -> None:
    web = deployment("web-api", "web", 1)
    other = deployment("other-api", "other", 2)
    down = asyncio.Event()
    api = FakeApi([web, other], [[down, ApiError(410, "too old", "Expired")]])
    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, [NS],  # type: ignore[arg-type]
                      slim, lambda ns, name: None, index=child_keys)
    listed = asyncio.create_task(watch.run())
    await asyncio.wait_for(watch.synced.wait(), 2)
    api.items = [web]  # other-api is deleted, and the watch's resourceVersion expires
    down.set()
    try:
        await asyncio.wait_for(api.idle.wait(), 2)
    finally:
        listed.cancel()
    assert api.lists == 2
    assert set(watch.by_key) == {(NS, "web")}
    assert watch.keys() == {(NS, "web-api")}


def test_child_events_wake_their_artifact_and_the_shared_caches() -> None:
    """Reconciler.child_changed: what the kopf handlers of the children did before."""
    from artifact_operator.controller.reconcile import Reconciler

    enqueued: list[tuple[str, str]] = []
    retention: list[tuple[str, str]] = []
    claims: list[tuple[str, str]] = []

    class Caches:
        def apply_retention(self, namespace: str, claim: str) -> None:
            retention.append((namespace, claim))

        def claim_changed(self, namespace: str, claim: str) -> None:
            claims.append((namespace, claim))

    class Queue:
        def enqueue_soon(self, key: tuple[str, str], delay: float) -> None:
            assert delay > 0
            enqueued.append(key)

    watched: list[str] = []

    class View:
        artifacts = {(NS, "web"): {}}

        def watched(self, new: Obj) -> None:
            watched.append(new["metadata"]["name"])

    reconciler = Reconciler.__new__(Reconciler)
    reconciler.view, reconciler.caches, reconciler.queue = (  # type: ignore[assignment]
        View(), Caches(), Queue())
    web = slim({**deployment("web-api", "web", 1, cache="abc"), "kind": "Deployment"})
    stranger = slim({**deployment("x-api", "unknown", 1), "kind": "Deployment"})
    claim = {"kind": "PersistentVolumeClaim", "metadata": {
        "name": "nim-cache-abc", "namespace": NS,
        "labels": {naming.LABEL_MANAGED_BY: naming.MANAGER, naming.LABEL_CACHE: "abc"}}}
    reconciler.child_changed(None, web)
    reconciler.child_changed(stranger, None)  # no artifact of ours: nothing to wake
    assert enqueued == [(NS, "web")] and retention == []
    reconciler.child_changed(web, None)  # a user of cache abc went
    assert retention == [(NS, naming.cache_claim_of_hash("abc"))]
    reconciler.child_changed(None, claim)
    reconciler.child_changed(claim, None)
    assert claims == [(NS, "nim-cache-abc")] * 2
    # Every object the watch shows is news for the view's own writes (not a deletion).
    assert watched == ["web-api", "nim-cache-abc"]
    # Its artifact label edited by hand: the artifact it left is woken, to put it back.
    enqueued.clear()
    relabelled = copy.deepcopy(web)
    relabelled["metadata"]["labels"][naming.LABEL_ARTIFACT] = "webx"
    reconciler.child_changed(web, relabelled)
    assert enqueued == [(NS, "web")]


async def test_wait_synced_waits_a_while_then_wakes_each_key_once_listed() -> None:
    """A caller never hangs on a kind not listed yet: it is told so after the timeout, and
    its key is woken (once, whoever asked how often) when the list is in."""
    from typing import cast

    from artifact_operator.kube.client import Kube

    watch = ListWatch(cast(Kube, FakeApi([], [])), "apps/v1", "Deployment", MANAGED_SELECTOR,
                      [NS], slim, lambda ns, name: None)
    woken: list[tuple[str, str]] = []
    assert not await watch.wait_synced((NS, "b"), 0.01, woken.append)
    assert not await watch.wait_synced((NS, "a"), 0.01, woken.append)
    assert not await watch.wait_synced((NS, "a"), 0.01, woken.append)
    assert woken == []
    watch.synced.set()
    await asyncio.sleep(0.01)
    assert woken == [(NS, "a"), (NS, "b")]
    assert await watch.wait_synced((NS, "c"), 0.01, woken.append)


async def test_with_keep_only_that_is_held_and_observe_gets_the_whole_new_object() -> None:
    """The Artifacts' watch: the view holds the bodies, the watch only what tells a relist's
    changes (app/context.py)."""
    web, db = deployment("web-api", "web", 1), deployment("db-api", "db", 2)
    down = asyncio.Event()
    api = FakeApi([web, db], [[down, ApiError(410, "too old", "Expired")]])
    seen: list[tuple[Obj | None, Obj | None]] = []

    def keep(obj: Obj) -> Obj:
        return {"metadata": {"name": obj["metadata"]["name"],
                             "resourceVersion": obj["metadata"]["resourceVersion"]}}

    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, [NS],  # type: ignore[arg-type]
                      slim, lambda ns, name: None, observe=lambda o, n: seen.append((o, n)),
                      keep=keep)
    listed = asyncio.create_task(watch.run())
    await asyncio.wait_for(watch.synced.wait(), 2)
    assert [new["spec"] for _, new in seen if new] == [{"replicas": 1}] * 2
    assert watch.get(NS, "web-api") == keep(web)
    seen.clear()
    api.items = [web, deployment("db-api", "db", 3)]  # db changed, web did not
    down.set()
    try:
        await asyncio.wait_for(api.idle.wait(), 2)
    finally:
        listed.cancel()
    assert seen == [(keep(db), slim({**deployment("db-api", "db", 3),
                                    "apiVersion": "apps/v1", "kind": "Deployment"}))]


async def test_a_kind_not_served_counts_as_listed_and_empty_until_it_is() -> None:
    """The ArtifactApprovals' watch without their CRD: no approval holds, and no reconcile
    waits for a list that cannot come."""

    class Unserved(FakeApi):
        served = False

        async def list_pages(self, *args: Any) -> AsyncIterator[tuple[list[Obj], str]]:
            if not self.served:
                raise ApiError(404, "404 page not found")
            async for page in super().list_pages(*args):
                yield page

    api = Unserved([deployment("web-api", "web", 1)], [])
    seen: list[Obj | None] = []
    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, [NS],  # type: ignore[arg-type]
                      slim, lambda ns, name: None, observe=lambda o, n: seen.append(n),
                      absent_ok=True, first_retry=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.synced.wait(), 2)
        assert len(watch) == 0 and seen == []
        api.served = True  # the CRD is installed
        await asyncio.wait_for(api.idle.wait(), 2)
    finally:
        task.cancel()
    assert [n["metadata"]["name"] for n in seen if n] == ["web-api"]


async def test_a_long_list_lets_the_event_loop_answer_meanwhile() -> None:
    """Probes, /metrics and admission reviews run on the same loop as the watches: a list of
    thousands (the restart pass at 3000 Artifacts) must not hold it in one stretch."""
    from artifact_operator.kube.watch import LIST_STEP

    items = [deployment(f"d{i}", f"a{i}", i) for i in range(LIST_STEP * 5)]
    api = FakeApi(items, [])
    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, [NS],  # type: ignore[arg-type]
                      slim, lambda ns, name: None)
    held_while_listing: list[int] = []

    async def probe() -> None:
        while not watch.synced.is_set():
            held_while_listing.append(len(watch))
            await asyncio.sleep(0)

    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(probe(), 2)
    finally:
        task.cancel()
    assert len(watch) == len(items)
    assert any(0 < n < len(items) for n in held_while_listing), held_while_listing[-5:]


async def test_a_list_in_pages_is_one_list() -> None:
    """A list comes in pages (kube/client.py LIST_PAGE): a relist over pages reports only
    what changed, never the objects of a later page as gone while an earlier one is taken."""
    items = [deployment(f"d{i}", f"a{i}", i) for i in range(5)]
    api = FakeApi(items, [[ApiError(410, "too old")]], page=2)
    seen: list[tuple[str | None, str | None]] = []

    def observe(old: Obj | None, new: Obj | None) -> None:
        seen.append(((old or {}).get("metadata", {}).get("name"),
                     (new or {}).get("metadata", {}).get("name")))

    watch = ListWatch(api, "apps/v1", "Deployment", MANAGED_SELECTOR, [NS],  # type: ignore[arg-type]
                      slim, lambda ns, name: None, observe=observe)
    await run_until_idle(watch, api)
    assert api.lists == 2 and api.pages == 6  # listed twice (the 410), three pages each
    assert len(watch) == 5
    assert seen == [(None, f"d{i}") for i in range(5)]  # the relist changed nothing
