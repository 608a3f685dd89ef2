"""Leader election (kube/leader.py) against an in-memory API that can hang: a leader whose
API server stops answering gives up at its renew deadline, not when a request times out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from artifact_operator.kube.client import ApiError
from artifact_operator.kube.leader import LeaderElector, LeaseTiming

from ..support.fake_kube import FakeKube

TIMING = LeaseTiming(lease_duration=0.6, renew_deadline=0.4, renew_period=0.1,
                     retry_period=0.05)


class HangingKube:
    """FakeKube's client, until `hang` is set: then every request waits forever (a frozen
    API server holds the connection and answers nothing)."""

    def __init__(self) -> None:
        self.fake = FakeKube().as_kube()
        self.hang = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.fake, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.hang.is_set():
                await asyncio.Event().wait()
            return await method(*args, **kwargs)
        return call


async def test_a_leader_whose_api_server_hangs_gives_up_at_its_renew_deadline() -> None:
    kube = HangingKube()
    started, lost = asyncio.Event(), asyncio.Event()
    elector = LeaderElector(kube, "ops", "lease", "me", on_started=started.set,  # type: ignore[arg-type]
                            on_lost=lost.set, timing=TIMING)
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(started.wait(), 2)
    kube.hang.set()
    hung = time.monotonic()
    await asyncio.wait_for(lost.wait(), 2)
    # Lost before the lease duration since the last renewal: before anyone may take over.
    assert time.monotonic() - hung < TIMING.lease_duration
    assert not elector.leading
    await asyncio.wait_for(task, 1)


async def test_two_candidates_one_leader() -> None:
    kube = FakeKube().as_kube()
    leaders: list[str] = []
    electors = [LeaderElector(kube, "ops", "lease", name,
                              on_started=lambda n=name: leaders.append(n),  # type: ignore[misc]
                              on_lost=lambda: None, timing=TIMING) for name in ("a", "b")]
    tasks = [asyncio.create_task(e.run()) for e in electors]
    await asyncio.sleep(1.0)
    assert len(leaders) == 1
    for t in tasks:
        t.cancel()


class WatchedLeases:
    """FakeKube's client, and a watch of the Lease: each replace is an event to the watches
    open at the time (`watch_error`: the watch is refused, as by a role without the verb)."""

    def __init__(self, watch_error: ApiError | None = None) -> None:
        self.fake = FakeKube().as_kube()
        self.watch_error = watch_error
        self.watching: list[asyncio.Queue[tuple[str, Any]]] = []
        self.watches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)

    async def replace(self, obj: Any) -> Any:
        out = await self.fake.replace(obj)
        for queue in self.watching:
            queue.put_nowait(("MODIFIED", out))
        return out

    async def watch(self, api_version: str, kind: str, namespace: str, label_selector: str,
                    resource_version: str, timeout_seconds: int = 290,
                    field_selector: str = "") -> AsyncIterator[tuple[str, Any]]:
        assert (kind, namespace, field_selector) == ("Lease", "ops", "metadata.name=lease")
        assert resource_version  # from the version the candidate read
        self.watches += 1
        if self.watch_error is not None:
            raise self.watch_error
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.watching.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.watching.remove(queue)


async def _handover(kube: WatchedLeases, timing: LeaseTiming) -> float:
    """`a` leads, `b` campaigns; `a` steps down (its task stopped, the Lease handed back):
    the seconds until `b` leads."""
    started = {name: asyncio.Event() for name in "ab"}
    electors = {name: LeaderElector(kube, "ops", "lease", name,  # type: ignore[arg-type]
                                    on_started=started[name].set, on_lost=lambda: None,
                                    timing=timing) for name in "ab"}
    first = asyncio.create_task(electors["a"].run())
    await asyncio.wait_for(started["a"].wait(), 2)
    second = asyncio.create_task(electors["b"].run())

    async def waiting() -> None:  # b tried once, and waits for its next attempt
        while not kube.watches:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(waiting(), 2)
    first.cancel()
    await electors["a"].release()
    released = time.monotonic()
    try:
        await asyncio.wait_for(started["b"].wait(), 5)
        return time.monotonic() - released
    finally:
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


async def test_a_standby_takes_a_lease_handed_back_at_once_not_at_its_next_retry() -> None:
    """A rolling upgrade: the leader steps down at SIGTERM and hands the Lease back; the
    standby, watching it, takes it then, not up to a retry period later."""
    timing = LeaseTiming(lease_duration=0.6, renew_deadline=0.4, renew_period=0.1,
                         retry_period=30)
    kube = WatchedLeases()
    assert await _handover(kube, timing) < 2  # against a 30 s retry period
    assert not kube.watching  # the watch was closed once it had done its work


async def test_without_the_watch_a_standby_still_takes_the_lease_at_its_next_retry() -> None:
    """An install whose role has no `watch` on Leases (from before): the retry period."""
    kube = WatchedLeases(watch_error=ApiError(403, "leases is forbidden"))
    assert await _handover(kube, TIMING) < 2
