"""The work queue: one coalescing worker per Artifact, retries with backoff, settle holds.

Every trigger (the Artifact changed, one of its children changed, a resync, a retry) only
marks its key dirty; one worker per key runs the work until nothing is dirty, so bursts of
events coalesce and a key is never worked on twice at once. At most `concurrency` keys are
worked on at the same moment (the API client's connection pool is that size). The mark is
cleared when the run gets its slot, not before it waits for one: under a backlog a key's
child events keep coming while it waits, and each used to cost one more run after the first.

A failed run is retried after 1, 2, 4 ... seconds (up to `max_backoff`); a success resets it.
A standby replica's queue is inactive: triggers are dropped, since the leader works on every
key when it takes over (`activate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, artifact name)

# The artifact a task is working on, for log lines that do not name it themselves. Each key
# is worked on in its own task, so setting it there never leaks into other work.
log_object: ContextVar[Key | None] = ContextVar("log_object", default=None)


@dataclass
class _Work:
    dirty: bool = False
    running: bool = False
    failures: int = 0
    retry: asyncio.TimerHandle | None = None
    held_since: float | None = None


class WorkQueue:
    def __init__(self, work: Callable[[Key], Awaitable[bool]], *, concurrency: int,
                 max_backoff: float, known: Callable[[Key], bool],
                 forget: Callable[[Key], None] = lambda key: None,
                 active: bool = True) -> None:
        """`work(key)` returns False to be retried with backoff. Once a key is done and
        `known(key)` is False (its artifact is gone), `forget(key)` drops what others keep."""
        self._do = work
        self._known = known
        self._forget = forget
        self.max_backoff = max_backoff
        self.active = active
        self._work: dict[Key, _Work] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._soon: dict[Key, asyncio.TimerHandle] = {}

    def enqueue(self, key: Key) -> None:
        if not self.active:
            return
        work = self._work.setdefault(key, _Work())
        work.dirty = True
        if not work.running:
            work.running = True
            task = asyncio.get_running_loop().create_task(self._run(key, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def enqueue_soon(self, key: Key, delay: float) -> None:
        """`enqueue(key)` after `delay`, once for all the triggers that arrive meanwhile. A
        child's events come in bursts (the echo of our write, then each status step of its
        controller): one run after the burst does what one run per event would."""
        if not self.active or key in self._soon:
            return
        self._soon[key] = asyncio.get_running_loop().call_later(delay, self._enqueue_now, key)

    def _enqueue_now(self, key: Key) -> None:
        self._soon.pop(key, None)
        self.enqueue(key)

    def enqueue_all(self, keys: Iterable[Key]) -> None:
        for key in list(keys):
            self.enqueue(key)

    def activate(self, keys: Iterable[Key]) -> None:
        self.active = True
        self.enqueue_all(keys)

    def deactivate(self) -> None:
        """Stop at once: no new work, and the running work is cancelled."""
        self.active = False
        for timer in self._soon.values():
            timer.cancel()
        self._soon.clear()
        for task in list(self._tasks):
            task.cancel()

    def hold(self, key: Key, holding: bool, seconds: float) -> bool:
        """Whether `key`'s work should still wait for a condition that clears by itself
        (`holding`), for at most `seconds` from when it was first seen: the key is worked on
        again when the time is up, so a hold never outlasts it."""
        work = self._work.get(key)
        if work is None or not holding:
            if work is not None:
                work.held_since = None
            return False
        clock = time.monotonic()
        if work.held_since is None:
            work.held_since = clock
            asyncio.get_running_loop().call_later(seconds, self.enqueue, key)
        return clock - work.held_since < seconds

    @property
    def idle(self) -> bool:
        return not self._tasks

    async def _run(self, key: Key, work: _Work) -> None:
        log_object.set(key)
        try:
            while work.dirty:
                async with self._slots:
                    # Cleared only now: a trigger that came while the key waited for its slot
                    # is seen by this run, which reads the view from here on.
                    work.dirty = False
                    ok = await self._do(key)
                if ok:
                    work.failures = 0
                else:
                    work.failures += 1
                    delay = min(2.0 ** min(work.failures - 1, 32), self.max_backoff)
                    log.info("retrying %s/%s in %.0fs", *key, delay)
                    if work.retry:
                        work.retry.cancel()
                    work.retry = asyncio.get_running_loop().call_later(delay, self.enqueue, key)
        finally:
            work.running = False
            if not self._known(key) and not work.dirty:
                self._work.pop(key, None)
                self._forget(key)
