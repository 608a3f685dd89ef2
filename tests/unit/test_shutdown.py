"""What `artifact-operator run` does on SIGTERM and SIGINT (app/run.py); the drain itself, with
a webhook answering through the API server, is shown in tests/integration/test_ha.py."""

from __future__ import annotations

import asyncio
import signal
from types import SimpleNamespace
from typing import cast

from artifact_operator.app.context import Context
from artifact_operator.app.observability import Health
from artifact_operator.app.run import _on_sigterm


def _context() -> Context:
    return cast(Context, SimpleNamespace(health=Health()))


async def test_sigterm_steps_down_first_and_stops_after_the_drain() -> None:
    context, stop, order = _context(), asyncio.Event(), []

    async def step_down() -> None:
        order.append("stepped down" if not stop.is_set() else "too late")

    context.health.started = True
    handle = _on_sigterm(context, stop, 0.2, step_down)
    handle(signal.SIGTERM)
    await asyncio.sleep(0)
    assert context.health.not_ready() == ["stopping"]
    assert not stop.is_set()
    await asyncio.wait_for(stop.wait(), timeout=5)
    assert order == ["stepped down"]


async def test_a_second_sigterm_or_a_sigint_stops_at_once() -> None:
    for first, second in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, None)):
        context, stop = _context(), asyncio.Event()
        handle = _on_sigterm(context, stop, 3600, None)
        handle(first)
        if second is not None:
            await asyncio.sleep(0)
            assert not stop.is_set()
            handle(second)
        assert stop.is_set(), (first, second)
    # The drain of the first SIGTERM (an hour) ends with the stop.
    drains = [t for t in asyncio.all_tasks() if "drain" in repr(t.get_coro())]
    await asyncio.wait_for(asyncio.gather(*drains), timeout=5)
