"""The work queue: one coalescing worker per Artifact, spec changes first, retries with
backoff, settle holds.

Every trigger (the Artifact changed, one of its children changed, a resync, a retry) only
marks its key dirty; one worker per key runs the work until nothing is dirty, so bursts of
events coalesce and a key is never worked on twice at once. At most `concurrency` keys are
worked on at the same moment (the API client's connection pool is that size). The mark is
cleared when the run gets its slot, not before it waits for one: under a backlog a key's
child events keep coming while it waits, and the run it waits for sees them all.

Two lanes for the slots. Someone waits on a spec change (a new artifact, or `generation`
ahead of `observedGeneration`: the `urgent` predicate, asked at each trigger); nobody waits
on the rest, runs woken by a child's status step, a resync or a retry of an artifact whose
spec was already answered, which mostly find everything in place. First come, first served
made a user's edit wait behind all of those whenever the operator had a backlog (the churn
soak, docs/reliability.md), so an urgent key takes the next free slot before them, and a key
already waiting moves to the urgent lane when its spec changes. The other lane is never
starved: while it waits, at most `urgent_burst` urgent keys are let in a row before one of
its own, so it keeps at least 1/(urgent_burst + 1) of the slots that come free.

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

from artifact_operator import metrics

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, artifact name)

# The artifact a task is working on, for log lines that do not name it themselves. Each key
# is worked on in its own task, so setting it there never leaks into other work.
log_object: ContextVar[Key | None] = ContextVar("log_object", default=None)

# Urgent keys let in a row while the other lane waits (see the module). 4: with both lanes
# backed up, four of every five slots that come free go to spec changes, and one to the rest
# (the child events that take an answered artifact to Ready, its retries, resyncs).
URGENT_BURST = 4


@dataclass
class _Work:
    dirty: bool = False
    urgent: bool = False  # a trigger since its last run found its spec unanswered
    running: bool = False
    failures: int = 0
    retry: asyncio.TimerHandle | None = None
    held_since: float | None = None
    wake_at: float | None = None  # when the hold's timer runs the key again


class WorkQueue:
    def __init__(self, work: Callable[[Key], Awaitable[bool]], *, concurrency: int,
                 max_backoff: float, known: Callable[[Key], bool],
                 forget: Callable[[Key], None] = lambda key: None,
                 urgent: Callable[[Key], bool] = lambda key: False,
                 urgent_burst: int = URGENT_BURST, active: bool = True) -> None:
        """`work(key)` returns False to be retried with backoff. Once a key is done and
        `known(key)` is False (its artifact is gone), `forget(key)` drops what others keep.
        `urgent(key)`: whether a user waits on this key's spec (see the module)."""
        self._do = work
        self._known = known
        self._forget = forget
        self._urgent = urgent
        self._burst = urgent_burst
        self.max_backoff = max_backoff
        self.active = active
        self._work: dict[Key, _Work] = {}
        self._free = concurrency
        # Keys waiting for a slot, in order of arrival, per lane: urgent, then the others.
        self._lanes: tuple[dict[Key, asyncio.Future[None]], dict[Key, asyncio.Future[None]]] = (
            {}, {})
        self._streak = 0  # urgent keys let in a row while the other lane waited
        self._tasks: set[asyncio.Task[None]] = set()
        self._soon: dict[Key, asyncio.TimerHandle] = {}

    def enqueue(self, key: Key) -> None:
        if not self.active:
            return
        work = self._work.setdefault(key, _Work())
        work.dirty = True
        if not work.urgent and self._urgent(key):
            work.urgent = True
            urgent, other = self._lanes
            waiter = other.pop(key, None)
            if waiter is not None:  # already waiting: to the urgent lane
                urgent[key] = waiter
                self._count()
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
        again when the time is up, so a hold never outlasts it. `seconds` may differ from
        one call to the next (a spec change is held for less): the key is run again at the
        bound each call states."""
        work = self._work.get(key)
        if work is None or not holding:
            if work is not None:
                work.held_since = work.wake_at = None
            return False
        clock = time.monotonic()
        if work.held_since is None:
            work.held_since = clock
        deadline = work.held_since + seconds
        if deadline > clock and deadline != work.wake_at:
            # Another wake-up for a bound already scheduled is harmless (the run is coalesced).
            work.wake_at = deadline
            asyncio.get_running_loop().call_later(deadline - clock, self.enqueue, key)
        return clock < deadline

    @property
    def idle(self) -> bool:
        return not self._tasks

    @property
    def waiting(self) -> tuple[int, int]:
        """Keys waiting for a slot: (urgent, others)."""
        return len(self._lanes[0]), len(self._lanes[1])

    def _count(self) -> None:
        urgent, other = self.waiting
        metrics.QUEUE_WAITING.labels(lane="urgent").set(urgent)
        metrics.QUEUE_WAITING.labels(lane="other").set(other)

    async def _acquire(self, key: Key, urgent: bool, holding: bool) -> None:
        """A slot for `key`. `holding`: its last run's slot, given up here unless nobody else
        waits, so that a run again goes through the lanes like anyone else's."""
        if holding and not any(self._lanes):
            return
        if not holding and self._free:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._lanes[0 if urgent else 1][key] = waiter
        self._count()
        if holding:
            self._release()  # to the next in line, which may be this key
        try:
            await waiter
        except asyncio.CancelledError:
            for lane in self._lanes:
                if lane.get(key) is waiter:
                    del lane[key]
            self._count()
            if waiter.done() and not waiter.cancelled():
                self._release()  # given the slot, but cancelled before it could use it
            raise

    def _release(self) -> None:
        """The slot goes straight to the next key waiting, if any (see the module)."""
        urgent, other = self._lanes
        while urgent or other:
            if urgent and (not other or self._streak < self._burst):
                lane = urgent
                self._streak = self._streak + 1 if other else 0
            else:
                lane = other
                self._streak = 0
            waiter = lane.pop(next(iter(lane)))
            if not waiter.done():  # else cancelled (deactivate), its task not yet told
                waiter.set_result(None)
                self._count()
                return
        self._free += 1
        self._count()

    async def _run(self, key: Key, work: _Work) -> None:
        log_object.set(key)
        holding = False
        try:
            while work.dirty:
                held, holding = holding, False
                await self._acquire(key, work.urgent, held)
                holding = True
                # Cleared only now: a trigger that came while the key waited for its slot is
                # seen by this run, which reads the view from here on.
                work.dirty = work.urgent = False
                if await self._do(key):
                    work.failures = 0
                else:
                    work.failures += 1
                    delay = min(2.0 ** min(work.failures - 1, 32), self.max_backoff)
                    log.info("retrying %s/%s in %.0fs", *key, delay)
                    if work.retry:
                        work.retry.cancel()
                    work.retry = asyncio.get_running_loop().call_later(delay, self.enqueue, key)
        finally:
            if holding:
                self._release()
            work.running = False
            if not self._known(key) and not work.dirty:
                self._work.pop(key, None)
                self._forget(key)
