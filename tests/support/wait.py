"""Polling for a condition, instead of sleeping for a guess.

Two pollers, one contract but for what counts as done:

- `wait_for(check)`: done when `check()` returns something truthy; returns it. A falsy
  return (None, False, 0, "", an empty list) means "not yet", so a check that only asserts
  and returns nothing never finishes with it: use `until_ok` for that.
- `until_ok(check)`: done when `check()` returns without raising; returns what it returned,
  None included. For checks written as assertions.

Both: an exception of a type in `retry` (by default AssertionError only) means "not yet" and
is kept as the reason a timeout gives; any other exception (a ValueError, an ApiException, a
KeyError of a check that reads too early) propagates at once, because it is more often a bug
than a state to wait out. A check that may raise something else while it waits either says
so (`retry=(AssertionError, OSError)`), or turns it into an assertion or a falsy value (e.g.
`found` below for a 404). After `timeout` seconds they raise `Timeout` (an AssertionError)
naming `what` and the last falsy value or exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes.client import ApiException

T = TypeVar("T")

Retry = tuple[type[BaseException], ...]


class Timeout(AssertionError):
    pass


def wait_for(check: Callable[[], T], *, timeout: float = 30, interval: float = 0.2,
             what: str = "condition", retry: Retry = (AssertionError,)) -> T:
    """Call `check` every `interval` seconds until it returns something truthy; return that.
    See the module's docstring for exceptions and the timeout."""
    return _poll(check, bool, timeout=timeout, interval=interval, what=what, retry=retry)


def until_ok(check: Callable[[], T], *, timeout: float = 30, interval: float = 0.2,
             what: str = "condition", retry: Retry = (AssertionError,)) -> T:
    """Call `check` every `interval` seconds until it returns without raising one of `retry`;
    return what it returned, whatever it is (None too). See the module's docstring."""
    return _poll(check, lambda _: True, timeout=timeout, interval=interval, what=what,
                 retry=retry)


def _poll(check: Callable[[], T], done: Callable[[T], bool], *, timeout: float,
          interval: float, what: str, retry: Retry) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if done(result):
                return result
            last = result
        except retry as exc:
            last = exc
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}") \
                from (last if isinstance(last, BaseException) else None)
        time.sleep(interval)


def found(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None while the object does not exist (a 404)."""
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
