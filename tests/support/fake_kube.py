"""An in-memory stand-in for `artifact_operator.kube.client.Kube`, for unit tests of the
controller's machinery (view, queue, reconcile, apply) that run in milliseconds.

It implements exactly the methods the controller calls, with the API server's answers where
they matter to the controller:

- `get` -> None when absent; `list` filters by namespace and label selector;
- `create` -> 409 AlreadyExists (None with `exists_ok`), `generateName`, Secret `stringData`;
- `apply` -> server-side apply, good enough for our objects: merged into the existing object
  (maps merge, lists are replaced, as for the whole lists we own) or created;
- `patch` -> JSON merge patch, of the status alone with `subresource="status"`;
- `replace` -> a compare-and-swap on metadata.resourceVersion (409 Conflict when stale);
- `delete` -> False when absent or when the uid precondition names another incarnation.

Every stored object gets a uid, a resourceVersion (one counter for all, as in etcd) and a
generation that moves only with its spec. A write that changes nothing keeps the
resourceVersion, as the API server does for a no-op apply or patch.

`writes` records every write the server accepted, as `Write(verb, kind, name)`, so a test can
assert exactly which writes a reconcile made, or none. Objects a test sets up with `seed`, and
changes other controllers make (`update_status`), are not recorded. `fail(...)` makes the
next matching call(s) raise an `ApiError`, e.g. `fake.fail("apply", "Service", 422, "...")`.
"""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from artifact_operator.api.naming import LABEL_MANAGED_BY, MANAGER
from artifact_operator.controller.view import child_keys, slim
from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.kube.kinds import KINDS, kind_of

Obj = dict[str, Any]
ObjKey = tuple[str, str, str]  # (kind, namespace or "", name)

NOW = "2026-01-01T00:00:00Z"
# The kinds the operator watches and indexes (controller/view.py CHILD_KINDS).
CHILD_KINDS = ("Deployment", "Service", "PersistentVolumeClaim", "Secret")


@dataclass(frozen=True)
class Write:
    verb: str  # create, apply, patch, replace, delete
    kind: str  # "Artifact/status" for a status patch
    name: str


@dataclass
class _Failure:
    verb: str
    kind: str | None
    name: str | None
    error: ApiError
    times: int


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _apply_merge(target: Any, applied: Any) -> Any:
    """Server-side apply for fields we own whole: maps merge, lists and scalars replace."""
    if isinstance(applied, Mapping) and isinstance(target, Mapping):
        out = dict(target)
        for key, value in applied.items():
            out[key] = _apply_merge(target.get(key), value)
        return out
    return copy.deepcopy(applied)


def matches(labels: Mapping[str, str], selector: str | None) -> bool:
    """Equality-based label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated."""
    for term in (selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def fields_match(obj: Obj, field_selector: str | None) -> bool:
    """The API server's `a.b=value,...` field selectors (equality only)."""
    for term in filter(None, (field_selector or "").split(",")):
        path, _, want = term.partition("=")
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value) != want:
            return False
    return True


class FakeKube:
    """See the module. Use `as_kube()` where the code under test wants a `Kube`."""

    def __init__(self) -> None:
        self.objects: dict[ObjKey, Obj] = {}
        self.writes: list[Write] = []
        self.closed = False
        self._rv = itertools.count(1)
        self._uids = itertools.count(1)
        self._names = itertools.count(1)
        self._failures: list[_Failure] = []

    def as_kube(self) -> Kube:
        return cast(Kube, self)

    # -- for tests ---------------------------------------------------------------------------

    def fail(self, verb: str, kind: str | None = None, status: int = 500,
             message: str = "injected failure", *, name: str | None = None,
             reason: str = "", times: int = 1) -> None:
        """The next `times` calls of `verb` (get, list, create, apply, patch, replace, delete)
        on `kind` (any if None) and `name` (any if None) raise ApiError(status, message)."""
        self._failures.append(_Failure(verb, kind, name, ApiError(status, message, reason),
                                       times))

    def seed(self, obj: Mapping[str, Any]) -> Obj:
        """Store `obj` as if someone else had created it (not recorded in `writes`)."""
        return copy.deepcopy(self._create(obj))

    def update_status(self, obj: Mapping[str, Any], status: Obj) -> Obj:
        """Another controller writes `status` (not recorded in `writes`)."""
        return copy.deepcopy(self._patch(obj, {"status": status}, status_only=True))

    def stored(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    def of_kind(self, kind: str) -> list[Obj]:
        return [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    def writes_except(self, *kinds: str) -> list[Write]:
        return [w for w in self.writes if w.kind not in kinds]

    def indexes(self) -> dict[str, dict[Any, list[Obj]]]:
        """kopf's child indexes as the operator's watches would fill them from the stored
        objects: only children labelled as ours, keyed by `view.child_keys`."""
        out: dict[str, dict[Any, list[Obj]]] = {kind: {} for kind in CHILD_KINDS}
        for (kind, _, _), obj in sorted(self.objects.items()):
            labels = obj["metadata"].get("labels") or {}
            if kind not in CHILD_KINDS or labels.get(LABEL_MANAGED_BY) != MANAGER:
                continue
            for key in child_keys(obj):
                out[kind].setdefault(key, []).append(slim(copy.deepcopy(obj)))
        return out

    # -- the API -----------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str, *, cached: bool = False) -> Obj | None:
        self._check(api_version, kind)
        self._maybe_fail("get", kind, name)
        return self.stored(kind, namespace, name)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> list[Obj]:
        self._check(api_version, kind)
        self._maybe_fail("list", kind, None)
        return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items())
                if k == kind and (namespace is None or ns == namespace)
                and matches(o["metadata"].get("labels") or {}, label_selector)
                and fields_match(o, field_selector)]

    async def create(self, obj: Obj, *, exists_ok: bool = False) -> Obj | None:
        kind_of(obj)
        self._maybe_fail("create", obj["kind"], obj["metadata"].get("name"))
        try:
            created = self._create(obj)
        except ApiError as exc:
            if exists_ok and exc.conflict:
                return None
            raise
        self._record("create", created)
        return copy.deepcopy(created)

    async def create_new(self, obj: Obj) -> Obj:
        out = await self.create(obj)
        assert out is not None
        return out

    async def apply(self, obj: Obj) -> Obj:
        current = self._request("apply", obj)
        if current is None:
            out = self._create(obj)
        else:
            merged = _apply_merge(current, {k: v for k, v in obj.items() if k != "status"})
            out = self._store(current, merged)
        self._record("apply", out)
        return copy.deepcopy(out)

    async def patch(self, obj: Mapping[str, Any], patch: Obj, *,
                    subresource: str | None = None) -> Obj:
        kind_of(obj)
        self._maybe_fail("patch", obj["kind"], obj["metadata"]["name"])
        out = self._patch(obj, patch, status_only=subresource == "status")
        self.writes.append(Write("patch", obj["kind"] + ("/status" if subresource else ""),
                                 obj["metadata"]["name"]))
        return copy.deepcopy(out)

    async def replace(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        current = self._request("replace", obj)
        if current is None:
            raise ApiError(404, f'{obj["kind"]} "{meta["name"]}" not found', "NotFound")
        if str(meta.get("resourceVersion")) != current["metadata"]["resourceVersion"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {obj["kind"]} '
                           f'"{meta["name"]}": the object has been modified; please apply '
                           "your changes to the latest version and try again", "Conflict")
        replaced = copy.deepcopy(dict(obj))
        replaced["status"] = current.get("status")
        if replaced["status"] is None:
            del replaced["status"]
        out = self._store(current, replaced)
        self._record("replace", out)
        return copy.deepcopy(out)

    async def delete(self, obj: Mapping[str, Any], *, uid: str | None = None) -> bool:
        current = self._request("delete", obj)
        if current is None:
            return False
        if uid and current["metadata"]["uid"] != uid:
            return False  # the server's 409 on a failed precondition, as the client says it
        del self.objects[self._key(obj)]
        self._record("delete", current)
        return True

    async def close(self) -> None:
        self.closed = True

    # -- the server's bookkeeping ------------------------------------------------------------

    @staticmethod
    def _check(api_version: str, kind: str) -> None:
        if (api_version, kind) not in KINDS:
            raise KeyError((api_version, kind))  # as the real client: an unknown kind

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> ObjKey:
        meta = obj["metadata"]
        namespace = (meta.get("namespace") or "") if kind_of(obj).namespaced else ""
        return (obj["kind"], namespace, meta["name"])

    def _request(self, verb: str, obj: Mapping[str, Any]) -> Obj | None:
        """A write request on `obj`: a known kind, maybe an injected failure; the stored
        object of that name, if any."""
        kind_of(obj)
        self._maybe_fail(verb, obj["kind"], obj["metadata"]["name"])
        return self.objects.get(self._key(obj))

    def _maybe_fail(self, verb: str, kind: str, name: str | None) -> None:
        for failure in self._failures:
            if failure.verb == verb and failure.kind in (None, kind) and \
                    failure.name in (None, name):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise failure.error

    def _record(self, verb: str, obj: Mapping[str, Any]) -> None:
        self.writes.append(Write(verb, obj["kind"], obj["metadata"]["name"]))

    def _create(self, obj: Mapping[str, Any]) -> Obj:
        new = copy.deepcopy(dict(obj))
        meta = new.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "name or generateName is required", "Invalid")
            meta["name"] = f"{meta['generateName']}{next(self._names):05d}"
        key = self._key(new)
        if key in self.objects:
            raise ApiError(409, f'{new["kind"]} "{meta["name"]}" already exists',
                           "AlreadyExists")
        if new["kind"] == "Secret" and "stringData" in new:
            data = dict(new.get("data") or {})
            for k, v in new.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            new["data"] = data
        meta.pop("resourceVersion", None)
        meta["uid"] = f"uid-{next(self._uids)}"
        meta["creationTimestamp"] = NOW
        meta["resourceVersion"] = str(next(self._rv))
        if "spec" in new:
            meta["generation"] = 1
        self.objects[key] = new
        return new

    def _patch(self, obj: Mapping[str, Any], patch: Obj, *, status_only: bool) -> Obj:
        key = self._key(obj)
        current = self.objects.get(key)
        if current is None:
            raise ApiError(404, f'{obj["kind"]} "{obj["metadata"]["name"]}" not found',
                           "NotFound")
        if status_only:
            patch = {"status": patch.get("status")}
        else:
            patch = {k: v for k, v in patch.items() if k != "status"}
        return self._store(current, merge_patch(current, patch))

    def _store(self, current: Obj, new: Obj) -> Obj:
        """`new` replaces `current` (same key); identity fields stay, versions move."""
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        old_meta = current["metadata"]
        for field in ("uid", "creationTimestamp", "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        if new == current:
            return current  # a no-op write: the server keeps the resourceVersion
        if new.get("spec") != current.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 0)) + 1
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[self._key(new)] = new
        return new
