"""Leader election (kube/leader.py) against an in-memory API that can hang: a leader whose
API server stops answering gives up at its renew deadline, not when a request times out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
