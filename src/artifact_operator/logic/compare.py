"""Does a live object already hold what we would apply? Pure.

The operator applies only when it would change something: that keeps a resync, a restart
and an echo of its own write free of API writes. `covers(live, desired)` is true when every
field of `desired` is present in `live` with an equal value. Fields the API server or other
managers added are ignored; lists must match item by item, since we own whole lists (env,
ports, containers). Quantities compare by value (`0.5` == `500m`, `1` == `"1"`), because the
API server canonicalises them.
"""

from __future__ import annotations

from typing import Any

from artifact_operator.logic.quantity import parse_quantity


def _quantity_equal(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except (ValueError, TypeError, ArithmeticError):
        return False


def _empty(value: Any) -> bool:
    # A zero number counts as empty too: the API server omits int fields left at 0
    # (`initialDelaySeconds: 0` is stored as nothing). Booleans are not numbers here.
    zero = type(value) in (int, float) and value == 0
    return value is None or value == [] or value == {} or value == "" or zero


# Keys under which values are quantities (resources.limits/requests, emptyDir.sizeLimit).
_QUANTITY_KEYS = frozenset({"limits", "requests", "sizeLimit"})


def covers(live: Any, desired: Any, *, quantity: bool = False) -> bool:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _empty(live) and not desired
        return all(covers(live.get(k), v, quantity=quantity or k in _QUANTITY_KEYS)
                   for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _empty(live) and not desired
        return len(live) == len(desired) and all(
            covers(a, b, quantity=quantity) for a, b in zip(live, desired, strict=True))
    if live == desired:
        return True
    if live is None:
        return _empty(desired)
    return quantity and _quantity_equal(live, desired)
