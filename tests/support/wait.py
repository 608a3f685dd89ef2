"""Polling for a condition, instead of sleeping for a guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes.client import ApiException

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(check: Callable[[], T], *, timeout: float = 30, interval: float = 0.2,
             what: str = "condition") -> T:
    """Call `check` until it returns something truthy; return that. Exceptions other than
    AssertionError propagate; an AssertionError is kept as the reason for a timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def found(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None while the object does not exist (a 404)."""
    try:
        return read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
