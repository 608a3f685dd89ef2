"""Does a live object already hold what we would apply? Pure.

The operator applies only when it would change something: that keeps a resync, a restart
and an echo of its own write free of API writes. `up_to_date(live, desired)` is true when the
live object carries the digest of exactly this desired object (`stamped`: what we applied
last) and `covers` it: every field of `desired` is present in `live` with an equal value.

Fields the API server or other managers added are ignored, also inside lists keyed by name
(containers, env, ports, volumes): a mesh's sidecar, an HPA's replicas or another tool's
annotations are theirs, and applying over them would only start a write loop with whoever
puts them back. What we no longer render (an env var removed from the spec) is found by the
digest instead: it changes, we apply, and server-side apply removes the fields only we owned.
Quantities compare by value (`0.5` == `500m`, `1` == `"1"`), because the API server
canonicalises them.

Ports and volume mounts are where our key (the name) and server-side apply's differ: the
server keys ports by number and protocol, mounts by path. A port number (or mount path)
changed by hand is, to the server, someone else's item; applying ours beside it gives two
ports one name, which the server refuses, or the volume mounted twice. `rekeyed` finds such
items, so the applier can put their keys back first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from artifact_operator.api.naming import ANNOTATION_APPLIED
from artifact_operator.logic.quantity import parse_quantity


def digest(obj: Mapping[str, Any]) -> str:
    """Of a rendered object, without its own stamp."""
    meta = dict(obj.get("metadata", {}))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != ANNOTATION_APPLIED}
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` carrying its digest, as it is applied."""
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_APPLIED: digest(obj)}
    return {**obj, "metadata": meta}


def up_to_date(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    annotations = live.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(ANNOTATION_APPLIED) == digest(desired)) and \
        covers(live, desired)


def _named(items: list[Any]) -> bool:
    """Items keyed by a unique name. A list whose names repeat (an HTTPRoute's parentRefs to
    two listeners of one Gateway) is compared item by item."""
    names = [i.get("name") if isinstance(i, dict) else None for i in items]
    return bool(items) and all(isinstance(n, str) for n in names) and \
        len(set(names)) == len(names)


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


def pointer_token(key: str) -> str:
    """`key` as one reference token of a JSON pointer (RFC 6901: `~` and `/` escaped)."""
    return key.replace("~", "~0").replace("/", "~1")


def pointer_key(token: str) -> str:
    """The key one reference token of a JSON pointer names (`pointer_token` undone)."""
    return token.replace("~1", "/").replace("~0", "~")


# Lists of named items that server-side apply keys by other fields of theirs.
_SSA_KEYS = {"ports": ("port", "containerPort", "protocol"), "volumeMounts": ("mountPath",)}


def rekeyed(live: Any, desired: Any, path: str = "") -> list[dict[str, Any]]:
    """A JSON patch (RFC 6902) that puts back the server-side apply keys of `live`'s named
    items where they differ from `desired`'s item of the same name (a port's number or a
    volume mount's path edited); [] when none do. Each change is guarded by a
    `test` of the item's name and old value, so it cannot land on an item that moved."""
    ops: list[dict[str, Any]] = []
    if isinstance(desired, dict) and isinstance(live, dict):
        for key, value in desired.items():
            at = f"{path}/{pointer_token(key)}"
            if isinstance(value, list):
                ops += _rekeyed_list(live.get(key), value, at, _SSA_KEYS.get(key, ()))
            else:
                ops += rekeyed(live.get(key), value, at)
    return ops


def _rekeyed_list(live: Any, desired: list[Any], path: str,
                  keys: tuple[str, ...]) -> list[dict[str, Any]]:
    if not (isinstance(live, list) and _named(desired)):
        return []
    names = [item.get("name") if isinstance(item, dict) else None for item in live]
    # Others' items may have no name (a container port); a name that repeats names nothing.
    index = {name: i for i, name in enumerate(names)
             if isinstance(name, str) and names.count(name) == 1}
    ops: list[dict[str, Any]] = []
    for want in desired:
        i = index.get(want["name"])
        if i is None:
            continue
        have, at = live[i], f"{path}/{i}"
        for key in keys:
            if key in want and key in have and have[key] != want[key]:
                ops += [{"op": "test", "path": f"{at}/name", "value": want["name"]},
                        {"op": "test", "path": f"{at}/{key}", "value": have[key]},
                        {"op": "replace", "path": f"{at}/{key}", "value": want[key]}]
        ops += rekeyed(have, want, at)
    return ops


def covers(live: Any, desired: Any, *, quantity: bool = False, exact: bool = False) -> bool:
    """`exact`: lists match item by item, extras included (what runs is exactly this)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _empty(live) and not desired
        return all(covers(live.get(k), v, quantity=quantity or k in _QUANTITY_KEYS,
                          exact=exact)
                   for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _empty(live) and not desired
        if not exact and _named(desired) and all(isinstance(i, dict) for i in live):
            # Keyed by name, as server-side apply merges them: others' items are theirs.
            by_name = {i.get("name"): i for i in live}
            return all(d["name"] in by_name and covers(by_name[d["name"]], d, quantity=quantity)
                       for d in desired)
        return len(live) == len(desired) and all(
            covers(a, b, quantity=quantity, exact=exact)
            for a, b in zip(live, desired, strict=True))
    if live == desired:
        return True
    if live is None:
        return _empty(desired)
    return quantity and _quantity_equal(live, desired)
