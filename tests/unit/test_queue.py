"""WorkQueue: coalescing, one run per key at a time, bounded concurrency, spec changes first
(without starving the rest), backoff, settle holds, leadership (active or not) and forgetting
keys that are gone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from artifact_operator.controller.queue import Key, WorkQueue

A: Key = ("ns", "a")
B: Key = ("ns", "b")


async def until_idle(queue: WorkQueue, timeout: float = 2.0) -> None:
    async def idle() -> None:
        while not queue.idle:
            await asyncio.sleep(0.001)
    await asyncio.wait_for(idle(), timeout)


async def until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.001)
    await asyncio.wait_for(wait(), timeout)


class Worker:
    """The work: counts runs, tracks how many run at once (per key and overall), and blocks
    while `gate` is closed."""

    def __init__(self, results: list[bool] | None = None) -> None:
        self.runs: Counter[Key] = Counter()
        self.order: list[Key] = []
        self.running: Counter[Key] = Counter()
        self.max_per_key = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.results = list(results or [])
        self.cancelled: list[Key] = []

    async def __call__(self, key: Key) -> bool:
        self.runs[key] += 1
        self.order.append(key)
        self.running[key] += 1
        self.in_flight += 1
        self.max_per_key = max(self.max_per_key, self.running[key])
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.running[key] -= 1
            self.in_flight -= 1
        return self.results.pop(0) if self.results else True


def queue_for(work: Any, *, concurrency: int = 4, max_backoff: float = 300.0,
              known: Callable[[Key], bool] = lambda key: True,
              forget: Callable[[Key], None] = lambda key: None,
              urgent: Callable[[Key], bool] = lambda key: False, urgent_burst: int = 4,
              active: bool = True) -> WorkQueue:
    return WorkQueue(work, concurrency=concurrency, max_backoff=max_backoff, known=known,
                     forget=forget, urgent=urgent, urgent_burst=urgent_burst, active=active)


# -- coalescing and exclusivity -----------------------------------------------------------------


async def test_enqueues_while_a_key_runs_coalesce_into_exactly_one_more_run() -> None:
    worker = Worker()
    worker.gate.clear()
    queue = queue_for(worker)
    queue.enqueue(A)
    await until(lambda: worker.running[A] == 1)
    for _ in range(10):
        queue.enqueue(A)
    worker.gate.set()
    await until_idle(queue)
    assert worker.runs[A] == 2


async def test_enqueues_before_the_run_starts_coalesce_into_one_run() -> None:
    worker = Worker()
    queue = queue_for(worker)
    for _ in range(5):
        queue.enqueue(A)
    await until_idle(queue)
    assert worker.runs[A] == 1


async def test_triggers_while_a_key_waits_for_a_slot_are_covered_by_the_run_it_waits_for(
        ) -> None:
    """Under a backlog a key's child events keep coming while it waits: one run, not two."""
    worker = Worker()
    worker.gate.clear()
    queue = queue_for(worker, concurrency=1)
    queue.enqueue(A)
    await until(lambda: worker.running[A] == 1)
    queue.enqueue(B)  # waits for A's slot
    await asyncio.sleep(0.01)
    for _ in range(5):
        queue.enqueue(B)
    worker.gate.set()
    await until_idle(queue)
    assert worker.runs == Counter({A: 1, B: 1})

async def test_a_burst_of_soon_triggers_runs_once_after_the_delay() -> None:
    """A child's burst of events (our write's echo, each status step) wakes its artifact
    once, after the window, not once per event."""
    worker = Worker()
    queue = queue_for(worker)
    for _ in range(5):
        queue.enqueue_soon(A, 0.05)
    await asyncio.sleep(0.01)
    assert worker.runs[A] == 0
    await until(lambda: worker.runs[A] == 1)
    await until_idle(queue)
    queue.enqueue_soon(A, 0.01)  # a later burst: one more run
    await until(lambda: worker.runs[A] == 2)
    await until_idle(queue)
    assert worker.runs[A] == 2


async def test_soon_triggers_are_dropped_by_an_inactive_queue_and_by_deactivate() -> None:
    worker = Worker()
    queue = queue_for(worker, active=False)
    queue.enqueue_soon(A, 0.01)
    queue.activate([])
    queue.enqueue_soon(B, 0.01)
    queue.deactivate()
    await asyncio.sleep(0.05)
    assert worker.runs == Counter()


async def test_a_key_never_runs_twice_at_once() -> None:
    worker = Worker()
    queue = queue_for(worker, concurrency=8)
    for _ in range(20):
        queue.enqueue(A)
        await asyncio.sleep(0)
    await until_idle(queue)
    assert worker.runs[A] >= 2, "enqueued during runs: it ran again"
    assert worker.max_per_key == 1


async def test_different_keys_run_concurrently_up_to_the_limit() -> None:
    worker = Worker()
    worker.gate.clear()
    queue = queue_for(worker, concurrency=2)
    keys = [("ns", f"k{i}") for i in range(5)]
    queue.enqueue_all(keys)
    await until(lambda: worker.in_flight == 2)
    await asyncio.sleep(0.01)
    assert worker.in_flight == 2, "no more than `concurrency` at once"
    worker.gate.set()
    await until_idle(queue)
    assert worker.max_in_flight == 2
    assert set(worker.runs) == set(keys) and set(worker.runs.values()) == {1}



# -- spec changes first -------------------------------------------------------------------------


def keys(prefix: str, n: int) -> list[Key]:
    return [("ns", f"{prefix}{i}") for i in range(n)]


async def one_slot_taken(queue: WorkQueue, worker: Worker) -> None:
    """`A` holds the only slot (the gate is closed) until the test opens the gate."""
    worker.gate.clear()
    queue.enqueue(A)
    await until(lambda: worker.running[A] == 1)


async def test_with_the_slots_full_spec_changes_take_the_next_slot_before_the_others() -> None:
    pending: set[Key] = set()
    worker = Worker()
    queue = queue_for(worker, concurrency=1, urgent=lambda key: key in pending)
    await one_slot_taken(queue, worker)
    others, changed = keys("child", 3), keys("spec", 2)
    queue.enqueue_all(others)  # woken by child events, a resync: nobody waits on them
    pending.update(changed)
    queue.enqueue_all(changed)  # a user changed these: after the others, but first
    await until(lambda: queue.waiting == (2, 3))
    worker.gate.set()
    await until_idle(queue)
    assert worker.order == [A, *changed, *others]


async def test_a_waiting_key_whose_spec_changes_moves_to_the_front() -> None:
    pending: set[Key] = set()
    worker = Worker()
    queue = queue_for(worker, concurrency=1, urgent=lambda key: key in pending)
    await one_slot_taken(queue, worker)
    others = keys("child", 3)
    queue.enqueue_all(others)
    await until(lambda: queue.waiting == (0, 3))
    pending.add(others[2])  # the last one in line is edited while it waits
    queue.enqueue(others[2])
    assert queue.waiting == (1, 2)
    worker.gate.set()
    await until_idle(queue)
    assert worker.order == [A, others[2], others[0], others[1]]
    assert worker.runs[others[2]] == 1, "moved, not queued twice"


async def test_the_other_lane_gets_a_slot_after_a_bounded_burst_of_spec_changes() -> None:
    pending: set[Key] = set()
    worker = Worker()
    queue = queue_for(worker, concurrency=1, urgent=lambda key: key in pending,
                      urgent_burst=2)
    await one_slot_taken(queue, worker)
    others, changed = keys("child", 2), keys("spec", 6)
    queue.enqueue_all(others)
    pending.update(changed)
    queue.enqueue_all(changed)
    worker.gate.set()
    await until_idle(queue)
    u, o = changed, others
    assert worker.order == [A, u[0], u[1], o[0], u[2], u[3], o[1], u[4], u[5]]


async def test_an_endless_stream_of_spec_changes_does_not_starve_the_other_lane() -> None:
    """Each spec change's run brings in two more: the urgent lane never empties, and the
    keys woken by child events still run, one after every `urgent_burst` spec changes."""
    pending: set[Key] = set()
    fresh = iter(keys("spec", 1000))
    worker = Worker()

    async def work(key: Key) -> bool:
        if key in pending and worker.runs[key] == 0:
            for _ in range(2):
                new = next(fresh)
                pending.add(new)
                queue.enqueue(new)
        return await worker(key)

    queue = queue_for(work, concurrency=2, urgent=lambda key: key in pending, urgent_burst=4)
    others = keys("child", 20)
    worker.gate.clear()
    first = next(fresh)
    pending.add(first)
    queue.enqueue(first)
    queue.enqueue_all(others)
    worker.gate.set()
    await until(lambda: all(worker.runs[k] == 1 for k in others), timeout=5)
    queue.deactivate()
    await until_idle(queue)
    done = [k for k in worker.order if k in others]
    assert done == others, "in their order of arrival"
    last = worker.order.index(others[-1])
    assert last <= 5 * len(others) + 2, "one in five slots (burst 4), give or take the start"


async def test_a_spec_change_to_a_running_key_still_waits_for_its_run_to_end() -> None:
    """Coalescing holds across lanes: triggers during a run, urgent or not, make exactly one
    more run, after this one (never two at once), and that run goes first."""
    pending: set[Key] = set()
    worker = Worker()
    queue = queue_for(worker, concurrency=1, urgent=lambda key: key in pending)
    await one_slot_taken(queue, worker)
    queue.enqueue(B)  # waiting, the other lane
    queue.enqueue(A)
    pending.add(A)
    for _ in range(5):
        queue.enqueue(A)
    worker.gate.set()
    await until_idle(queue)
    assert worker.order == [A, A, B]
    assert worker.max_per_key == 1 and worker.max_in_flight == 1


async def test_cancelled_waiters_leave_every_slot_free() -> None:
    """Deactivated with keys running and waiting in both lanes: when it leads again, it
    works on as many keys at once as before."""
    pending = set(keys("spec", 2))
    worker = Worker()
    queue = queue_for(worker, concurrency=2, urgent=lambda key: key in pending)
    worker.gate.clear()
    queue.enqueue_all([A, B, *keys("child", 2), *pending])
    await until(lambda: worker.in_flight == 2 and queue.waiting == (2, 2))
    queue.deactivate()
    await until_idle(queue)
    assert queue.waiting == (0, 0)
    queue.activate(keys("again", 3))
    await until(lambda: worker.in_flight == 2)
    worker.gate.set()
    await until_idle(queue)
    assert worker.max_in_flight == 2

# -- retries with backoff ---------------------------------------------------------------------


class Timers:
    """The loop's call_later for the queue's own timers, recorded: the queue's callback runs
    at once (no real waiting). Other timers (asyncio's timeouts) are left alone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.delays: list[float] = []
        self._call_soon = loop.call_soon
        self._call_later = loop.call_later

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   **kwargs: Any) -> asyncio.Handle:
        if not isinstance(getattr(callback, "__self__", None), WorkQueue):
            return self._call_later(delay, callback, *args, **kwargs)
        self.delays.append(delay)
        return self._call_soon(callback, *args)


def record_timers(monkeypatch: pytest.MonkeyPatch) -> Timers:
    """Called inside the test, so that it patches the loop the test runs on."""
    loop = asyncio.get_running_loop()
    recorded = Timers(loop)
    monkeypatch.setattr(loop, "call_later", recorded.call_later)
    return recorded


async def test_failures_retry_after_doubling_delays_up_to_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    timers = record_timers(monkeypatch)
    worker = Worker(results=[False] * 6)
    queue = queue_for(worker, max_backoff=10)
    queue.enqueue(A)
    await until(lambda: worker.runs[A] == 7)
    await until_idle(queue)
    assert timers.delays == [1, 2, 4, 8, 10, 10]
    assert worker.runs[A] == 7, "the seventh run succeeded: no retry after it"


async def test_a_success_resets_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = record_timers(monkeypatch)
    worker = Worker(results=[False, False, True, False])
    queue = queue_for(worker)
    queue.enqueue(A)
    await until(lambda: worker.runs[A] == 3)
    await until_idle(queue)
    assert timers.delays == [1, 2]
    queue.enqueue(A)  # a new trigger; this run fails again
    await until(lambda: worker.runs[A] == 5)
    await until_idle(queue)
    assert timers.delays == [1, 2, 1]


async def test_backoff_is_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = record_timers(monkeypatch)
    runs: Counter[Key] = Counter()

    async def work(key: Key) -> bool:
        runs[key] += 1
        return key == B or runs[key] > 3  # A fails three times, B never

    queue = queue_for(work)
    queue.enqueue(A)
    queue.enqueue(B)
    await until(lambda: runs[A] == 4)
    await until_idle(queue)
    assert timers.delays == [1, 2, 4], "B's success does not reset A's count"
    assert runs[B] == 1


async def test_backoff_survives_a_key_that_fails_for_days(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 1100 failures at the 300 s cap are under four days of an API server refusing an
    # object: the key must keep being retried at the cap.
    timers = record_timers(monkeypatch)
    worker = Worker(results=[False] * 1100)
    queue = queue_for(worker, max_backoff=300)
    queue.enqueue(A)
    await until(lambda: worker.runs[A] == 1101, timeout=5)
    await until_idle(queue)
    assert len(timers.delays) == 1100 and set(timers.delays[9:]) == {300}


async def test_a_run_that_raises_stops_the_key_until_its_next_trigger() -> None:
    # The reconciler catches everything and returns False; an exception escaping the work
    # is a bug, but it must not wedge the key: the next trigger runs it again.
    calls: list[Key] = []

    async def work(key: Key) -> bool:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return True

    queue = queue_for(work)
    queue.enqueue(A)
    await until_idle(queue)
    queue.enqueue(A)
    await until_idle(queue)
    assert calls == [A, A]


# -- settle holds -----------------------------------------------------------------------------


async def test_hold_holds_until_its_time_is_up_then_runs_the_key_once_more() -> None:
    answers: list[bool] = []
    queue: WorkQueue

    async def work(key: Key) -> bool:
        answers.append(queue.hold(key, True, 0.05))
        return True

    queue = queue_for(work)
    queue.enqueue(A)
    await until_idle(queue)
    queue.enqueue(A)  # another trigger within the hold: still held, no second timer
    await until_idle(queue)
    assert answers == [True, True]
    await until(lambda: len(answers) == 3)
    await until_idle(queue)
    await asyncio.sleep(0.1)
    assert answers == [True, True, False], "re-enqueued once when the time was up, then free"


async def test_a_hold_that_clears_ends_at_once_and_a_later_one_starts_afresh() -> None:
    answers: list[bool] = []
    holding = [True, False, True]
    queue: WorkQueue

    async def work(key: Key) -> bool:
        answers.append(queue.hold(key, holding.pop(0), 60))
        return True

    queue = queue_for(work)
    for _ in range(3):
        queue.enqueue(A)
        await until_idle(queue)
    assert answers == [True, False, True]
    queue.deactivate()


async def test_a_hold_whose_bound_shrinks_runs_the_key_again_at_the_shorter_bound() -> None:
    """A creation's hold (long) and then a spec change (held for less): the key is run again
    when the shorter bound is up, not left to the longer one's timer."""
    answers: list[bool] = []
    bounds = [60.0, 0.05, 0.05]
    queue: WorkQueue

    async def work(key: Key) -> bool:
        answers.append(queue.hold(key, True, bounds.pop(0)))
        return True

    queue = queue_for(work)
    queue.enqueue(A)
    await until_idle(queue)
    queue.enqueue(A)  # the spec changed: the same hold, now bounded by 0.05 s
    await until_idle(queue)
    assert answers == [True, True]
    await until(lambda: len(answers) == 3)
    assert answers == [True, True, False]
    queue.deactivate()


async def test_hold_of_a_key_the_queue_does_not_know_holds_nothing() -> None:
    queue = queue_for(Worker())
    assert queue.hold(A, True, 60) is False


# -- leadership ---------------------------------------------------------------------------------


async def test_an_inactive_queue_drops_triggers_and_activate_runs_the_given_keys() -> None:
    worker = Worker()
    queue = queue_for(worker, active=False)
    queue.enqueue(A)
    queue.enqueue_all([A, B])
    await asyncio.sleep(0.01)
    assert queue.idle and not worker.runs

    queue.activate([A, B])
    await until_idle(queue)
    assert worker.runs == Counter({A: 1, B: 1})


async def test_deactivate_cancels_running_work_and_drops_later_triggers() -> None:
    worker = Worker()
    worker.gate.clear()
    queue = queue_for(worker)
    queue.enqueue_all([A, B])
    await until(lambda: worker.in_flight == 2)

    queue.deactivate()
    await until_idle(queue)
    assert sorted(worker.cancelled) == [A, B]
    queue.enqueue(A)
    await asyncio.sleep(0.01)
    assert queue.idle and worker.runs[A] == 1

    worker.gate.set()
    queue.activate([A])  # leader again: the key runs (it is not stuck as "running")
    await until_idle(queue)
    assert worker.runs[A] == 2


# -- forgetting -------------------------------------------------------------------------------


async def test_forget_is_called_once_a_key_is_done_and_no_longer_known() -> None:
    known = {A, B}
    forgotten: list[Key] = []
    worker = Worker()
    worker.gate.clear()
    queue = queue_for(worker, known=lambda key: key in known, forget=forgotten.append)

    queue.enqueue_all([A, B])
    await until(lambda: worker.in_flight == 2)
    known.discard(A)  # A's artifact is deleted while its run is under way
    queue.enqueue(A)  # ... and its deletion event triggers one more run
    assert forgotten == [], "not while it runs"
    worker.gate.set()
    await until_idle(queue)
    assert worker.runs[A] == 2
    assert forgotten == [A], "once, after the last run; B is still known"

