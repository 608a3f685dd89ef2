"""The pollers' contract (tests/support/wait.py): what counts as done, what is retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..support.wait import Timeout, until_ok, wait_for

FAST: dict[str, Any] = {"timeout": 0.3, "interval": 0.01}


def answers(*values: Any) -> Callable[[], Any]:
    """A check that gives `values` in turn (raising those that are exceptions), then the last
    one forever."""
    queue = list(values)

    def check() -> Any:
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, BaseException):
            raise value
        return value
    return check


def test_wait_for_returns_the_first_truthy_value() -> None:
    assert wait_for(answers(None, 0, [], AssertionError("not yet"), [1], [2]), **FAST) == [1]


def test_wait_for_never_counts_none_as_done() -> None:
    with pytest.raises(Timeout, match=r"waiting for the thing; last: None"):
        wait_for(answers(None), what="the thing", **FAST)


def test_until_ok_returns_when_the_check_raises_nothing_none_included() -> None:
    assert until_ok(answers(AssertionError("not yet"), None, 1), **FAST) is None
    assert until_ok(answers(AssertionError("not yet"), 0), **FAST) == 0


def test_the_last_assertion_is_the_reason_of_a_timeout() -> None:
    with pytest.raises(Timeout, match=r"last: AssertionError\('2 of 3 ready'\)") as info:
        until_ok(answers(AssertionError("2 of 3 ready")), **FAST)
    assert isinstance(info.value.__cause__, AssertionError)


@pytest.mark.parametrize("poll", [wait_for, until_ok])
def test_other_exceptions_propagate_at_once_unless_retried(poll: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="bad"):
        poll(answers(AssertionError("not yet"), ValueError("bad"), 1), **FAST)
    assert poll(answers(ValueError("not yet"), OSError("refused"), 1),
                retry=(AssertionError, ValueError, OSError), **FAST) == 1
    with pytest.raises(Timeout, match=r"last: ValueError\('still'\)"):
        poll(answers(ValueError("still")), retry=(ValueError,), **FAST)
