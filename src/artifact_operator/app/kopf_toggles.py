"""A linear replacement for kopf's `ToggleSet`, which made the restart pass quadratic.

kopf holds back every handler until all indexes are filled: during the initial listing, each
object of an indexed kind gets a toggle in one `ToggleSet(all)` ("operator indexed"), dropped
once the object is indexed, and every object's worker then waits for the whole set. kopf's set
keeps no state of its own: every drop wakes *every* waiting worker (`Condition.notify_all`),
and each of them re-evaluates `all(...)` over every toggle and goes back to sleep. With N
listed objects that is O(N) wake-ups per drop, O(N^2) in all: at 1000 artifacts (~4750 listed
objects with their children) the restart pass took 55 s instead of ~2 s
(docs/benchmarks.md has the profile).

`CountingToggleSet` keeps counts of its toggles that are on and off, so its state is O(1), and
wakes a waiter only when the set's state has become the one it waits for: each drop is O(1),
and the waiters are woken once, when the last toggle goes. Its interface and meaning are
kopf's (`make_toggle`, `drop_toggle(s)`, `is_on`, `wait_for`; toggles it makes share its
condition, so `Toggle.wait_for` on one of them works as before), for the two functions kopf
builds sets with, `all` and `any`. `install()` puts it in place of kopf's class before the
operator starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles  # kopf's internals: see install()

_Fn = Callable[[Iterable[bool]], bool]


class _CountedToggle(aiotoggles.Toggle):
    """A toggle that tells its set when it is turned, so the set's counts stay true."""

    def __init__(self, state: bool, *, name: str | None, condition: asyncio.Condition,
                 owner: CountingToggleSet) -> None:
        super().__init__(state, name=name, condition=condition)
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        old = self.is_on()
        await super().turn_to(__state)
        if old != self.is_on():
            self._owner._turned(self, self.is_on())


class CountingToggleSet(aiotoggles.ToggleSet):
    """kopf's ToggleSet with O(1) state and wake-ups only on a change of the set's state."""

    def __init__(self, fn: _Fn) -> None:
        if fn is not all and fn is not any:
            raise ValueError(f"CountingToggleSet counts for all() or any() only, not {fn!r}")
        super().__init__(fn)
        self._on = 0
        self._off = 0
        # Waiters by the state they wait for; resolved when the set reaches that state.
        self._waiters: dict[bool, set[asyncio.Future[None]]] = {True: set(), False: set()}

    def is_on(self) -> bool:
        if self._fn is all:
            return self._off == 0  # all(): on when no toggle is off, also when empty
        return self._on > 0  # any(): on when at least one toggle is on

    async def wait_for(self, __state: bool) -> None:
        state = bool(__state)
        # A loop, as kopf's Condition.wait_for: the state may have changed back by the time
        # this waiter runs again.
        while self.is_on() != state:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[state].add(waiter)
            try:
                await waiter
            finally:
                self._waiters[state].discard(waiter)

    async def make_toggle(self, __val: bool = False, *, name: str | None = None
                          ) -> aiotoggles.Toggle:
        toggle = _CountedToggle(bool(__val), name=name, condition=self._condition, owner=self)
        self._toggles.add(toggle)
        self._count(toggle.is_on(), +1)
        self._settle()
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        self._discard(toggle)
        self._settle()

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        for toggle in list(toggles):
            self._discard(toggle)
        self._settle()

    def _discard(self, toggle: aiotoggles.Toggle) -> None:
        if toggle in self._toggles:
            self._toggles.discard(toggle)
            self._count(toggle.is_on(), -1)

    def _count(self, on: bool, delta: int) -> None:
        if on:
            self._on += delta
        else:
            self._off += delta

    def _turned(self, toggle: aiotoggles.Toggle, on: bool) -> None:
        if toggle in self._toggles:
            self._count(not on, -1)
            self._count(on, +1)
            self._settle()

    def _settle(self) -> None:
        """Wake those who wait for the state the set is in now (nobody else)."""
        waiters = self._waiters[self.is_on()]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()


_original: Any = aiotoggles.ToggleSet


def install() -> None:
    """Make kopf build `CountingToggleSet`s. kopf creates its sets at run time through the
    module attribute (`aiotoggles.ToggleSet(all)` in its orchestration, `(any)` for the
    operator's pause), so this must run before `kopf.operator` starts; it is idempotent.
    tests/unit/test_kopf_toggles.py checks that kopf still builds its sets that way."""
    aiotoggles.ToggleSet = CountingToggleSet  # type: ignore[misc]


def uninstall() -> None:
    aiotoggles.ToggleSet = _original  # type: ignore[misc]
