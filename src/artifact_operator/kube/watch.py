"""A lean list-then-watch of one kind by label selector (an informer).

It keeps only a slim copy of each object (the caller's `slim`) per (namespace, name), relists
after a 410 or an error (with backoff), and calls `changed(namespace, name)` for each object
that appears, changes or goes (and `observe(old, new)` with the slim objects, where given).
`synced` is set once every namespace has been listed (`wait_synced` waits for it a while, or
wakes the caller's key later). With `index`, the objects are also kept
by the keys `index(obj)` gives, and `by_key` reads them as lists, as kopf's indexes do. With
`keep`, only `keep(obj)` is held (e.g. the name and resourceVersion, where `observe` hands the
object on to a holder of its own): `observe` then gets the old object as kept. With
`absent_ok`, a kind the server does not serve counts as listed and empty until it is.

The operator's children are watched so, not through kopf: kopf's per-event machinery (a
memory, a worker, cause detection, handler invocation and an index toggle per object) was
about half of the operator's CPU, and its per-object state most of the memory beyond the
baseline (docs/benchmarks.md). The Artifacts, the ArtifactApprovals and the users' Secrets that
opt in to artifacts are watched so too: kopf watches nothing (app/kopf_config.py).

Each object is held packed, as its compact JSON text, and unpacked on every read: as Python
dicts the children were most of the operator's memory per artifact (a Deployment with the
server's defaults and status is ~3 KB of JSON but ~15 KB of dicts and strings), and a read
is a few of them per reconcile. A reader also gets a copy of its own, which it may change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from artifact_operator.kube.client import ApiError, Kube

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Ref = tuple[str, str]  # (namespace, name)
Packed = str  # an object as compact JSON (see the module)
K = TypeVar("K", bound=Hashable)

# Objects of a list taken between two turns of the event loop (see ListWatch._list).
LIST_STEP = 100
# The wait before a relist after an error doubles from the first to the longest.
FIRST_RETRY_SECONDS = 1.0
LONGEST_RETRY_SECONDS = 30.0


def pack(obj: Obj) -> Packed:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def unpack(packed: Packed) -> Obj:
    obj: Obj = json.loads(packed)
    return obj


class PackedDict(MutableMapping[K, Obj]):
    """A dict whose values are held packed; each read unpacks a copy."""

    def __init__(self) -> None:
        self._packed: dict[K, Packed] = {}

    def __getitem__(self, key: K) -> Obj:
        return unpack(self._packed[key])

    def __setitem__(self, key: K, value: Obj) -> None:
        self._packed[key] = pack(value)

    def __delitem__(self, key: K) -> None:
        del self._packed[key]

    def __contains__(self, key: object) -> bool:
        return key in self._packed

    def __iter__(self) -> Iterator[K]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)


class KeyIndex(Mapping[Hashable, list[Obj]]):
    """The objects by index key, each read as a list (the interface of a kopf index)."""

    def __init__(self, by_key: dict[Hashable, dict[Ref, Packed]]) -> None:
        self._by_key = by_key

    def __getitem__(self, key: Hashable) -> list[Obj]:
        return [unpack(p) for p in self._by_key[key].values()]

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)


class ListWatch:
    def __init__(self, kube: Kube, api_version: str, kind: str, label_selector: str,
                 namespaces: list[str] | None, slim: Callable[[Mapping[str, Any]], Obj],
                 changed: Callable[[str, str], None], *,
                 index: Callable[[Obj], Iterable[Hashable]] | None = None,
                 observe: Callable[[Obj | None, Obj | None], None] | None = None,
                 keep: Callable[[Obj], Obj] | None = None, absent_ok: bool = False,
                 first_retry: float = FIRST_RETRY_SECONDS) -> None:
        assert keep is None or index is None, "an index reads whole objects"
        self.kube = kube
        self.api_version = api_version
        self.kind = kind
        self.selector = label_selector
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.slim = slim
        self.changed = changed
        self._objects: dict[Ref, Packed] = {}
        self.synced = asyncio.Event()
        self._listed: set[str | None] = set()
        self._index = index
        self._observe = observe
        self._keep = keep
        # A kind not served (404) counts as listed and empty, asked again with the backoff.
        self._absent_ok = absent_ok
        self._first_retry = first_retry
        self._absent: set[str | None] = set()
        self._by_key: dict[Hashable, dict[Ref, Packed]] = {}
        self.by_key = KeyIndex(self._by_key)
        # Keys that found the first list not in yet, woken once it is.
        self._unsynced: set[Ref] = set()
        self._wake: asyncio.Task[None] | None = None

    def get(self, namespace: str, name: str) -> Obj | None:
        packed = self._objects.get((namespace, name))
        return None if packed is None else unpack(packed)

    def all(self) -> list[Obj]:
        return [unpack(p) for p in self._objects.values()]

    def __len__(self) -> int:
        return len(self._objects)

    async def wait_synced(self, key: Ref, timeout: float, wake: Callable[[Ref], None]) -> bool:
        """Whether the first list is in, waiting for it up to `timeout` seconds. If not (the
        kind is not served, or the list is refused), `key` is remembered and `wake(key)`
        called once the list is in: a caller (a reconcile of `key`) never hangs on it, and
        is not forgotten."""
        if self.synced.is_set():
            return True
        try:
            await asyncio.wait_for(self.synced.wait(), timeout)
            return True
        except TimeoutError:
            self._unsynced.add(key)
            if self._wake is None:
                self._wake = asyncio.get_running_loop().create_task(
                    self._wake_when_synced(wake))
            return False

    async def _wake_when_synced(self, wake: Callable[[Ref], None]) -> None:
        await self.synced.wait()
        for key in sorted(self._unsynced):
            wake(key)
        self._unsynced.clear()

    async def run(self) -> None:
        await asyncio.gather(*(self._run(ns) for ns in self.namespaces))

    async def _run(self, namespace: str | None) -> None:
        backoff = self._first_retry
        while True:
            try:
                version = await self._list(namespace)
                backoff = self._first_retry
                while True:  # the server ends each watch after its timeout: resume
                    async for kind, obj in self.kube.watch(
                            self.api_version, self.kind, namespace, self.selector, version):
                        meta = obj.get("metadata") or {}
                        version = str(meta.get("resourceVersion") or version)
                        if kind != "BOOKMARK":
                            self.deliver(kind, obj)
            except ApiError as exc:
                if exc.status == 410:
                    continue  # our resourceVersion is too old: relist at once
                if exc.status == 404 and self._absent_ok:
                    self._not_served(namespace)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, LONGEST_RETRY_SECONDS)
                    continue
                log.warning("watch of %s (%s) in %s failed, relisting in %.0fs: %s",
                            self.kind, self.selector, namespace or "all namespaces",
                            backoff, exc)
            except Exception:
                # Never let the task die: reconciles wait for `synced`, and a dead watch
                # would leave the Secrets' picture stale for good.
                log.exception("watch of %s (%s) in %s failed, relisting in %.0fs",
                              self.kind, self.selector, namespace or "all namespaces", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, LONGEST_RETRY_SECONDS)

    async def _list(self, namespace: str | None) -> str:
        fresh: list[Obj] = []
        version = ""
        async for items, page_version in self.kube.list_pages(
                self.api_version, self.kind, namespace, self.selector):
            version = page_version  # the same on every page: the list's
            for o in items:
                # List items carry no kind or apiVersion; watch events do.
                fresh.append(self.slim({**o, "apiVersion": self.api_version, "kind": self.kind}))
                # The event loop also answers probes, metrics and admission reviews: a list
                # of thousands is taken in steps, never in one stretch (at 3000 Artifacts
                # and their children, one stretch held the loop for seconds).
                if len(fresh) % LIST_STEP == 0:
                    await asyncio.sleep(0)
            del items  # slimmed: not held while the next page comes
        for done, _ in enumerate(self._replacing(fresh, namespace), 1):
            if done % LIST_STEP == 0:
                await asyncio.sleep(0)
        self._absent.discard(namespace)
        self._mark_listed(namespace)
        return version

    def _not_served(self, namespace: str | None) -> None:
        if namespace not in self._absent:
            log.warning("%s is not served (is its CRD installed?): taken as none, asked "
                        "again every 30 s", self.kind)
            self._absent.add(namespace)
        self.replace([], namespace)
        self._mark_listed(namespace)

    def _mark_listed(self, namespace: str | None) -> None:
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces):
            self.synced.set()

    def replace(self, objects: Iterable[Mapping[str, Any]], namespace: str | None = None
                ) -> None:
        """Hold exactly `objects` (of `namespace`; None: of all), as a list gives them:
        report what appeared, changed or went."""
        for _ in self._replacing((self.slim(o) for o in objects), namespace):
            pass

    def _replacing(self, objects: Iterable[Obj], namespace: str | None) -> Iterator[None]:
        """`replace` of slimmed objects, one object at a time: yields after each."""
        fresh: dict[Ref, Obj] = {}
        for o in objects:
            fresh[(str(o["metadata"]["namespace"]), str(o["metadata"]["name"]))] = o
            yield
        stale = {key for key in self._objects if namespace is None or key[0] == namespace}
        for key in stale - fresh.keys():
            self._put(key, None)
            yield
        for key, obj in fresh.items():
            packed = self._packed(obj)
            if self._objects.get(key) != packed:
                self._put(key, obj, packed)
            yield

    def _packed(self, obj: Obj) -> Packed:
        return pack(obj if self._keep is None else self._keep(obj))

    def keys(self) -> set[Ref]:
        return set(self._objects)

    def deliver(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Take one watch event (ADDED, MODIFIED or DELETED) of `obj`."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if kind == "DELETED":
            self._put(key, None)
        else:
            self._put(key, self.slim(obj))

    def _put(self, key: Ref, obj: Obj | None, packed: Packed | None = None) -> None:
        """Hold `obj` (None: drop it); `packed`: its packed text, where already made."""
        packed_old = self._objects.pop(key, None)
        # The old object is read only by the index and `observe`: not unpacked for nothing.
        wanted = self._index is not None or self._observe is not None
        old = unpack(packed_old) if packed_old is not None and wanted else None
        if obj is not None:
            packed = packed if packed is not None else self._packed(obj)
            self._objects[key] = packed
        if self._index is not None and old is not None:
            for ikey in self._index(old):
                entries = self._by_key.get(ikey)
                if entries is not None:
                    entries.pop(key, None)
                    if not entries:
                        del self._by_key[ikey]
        if self._index is not None and obj is not None and packed is not None:
            for ikey in self._index(obj):
                self._by_key.setdefault(ikey, {})[key] = packed
        if self._observe is not None:
            self._observe(old, obj)
        self.changed(*key)
