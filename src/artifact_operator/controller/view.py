"""The operator's picture of the cluster: the indexes of our children, the Artifacts as last
seen, and our own writes laid over both until the watches catch up.

Children come from our own watches of each child kind (kube/watch.py), indexed by
`child_keys` ((namespace, artifact) and a few others); a reconcile waits until every one has
listed (Reconciler.reconcile): after a restart the first reconcile already sees every
existing child and re-creates nothing. Our own writes are overlaid until the watch delivers
them, so the echo of a write we just made is not mistaken for drift, and a write is never
repeated because the watch lags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.kube.watch import Packed, PackedDict, pack, unpack
from artifact_operator.logic.credentials import referenced_secrets

Key = tuple[str, str]  # (namespace, artifact name)
Obj = dict[str, Any]
Ref = tuple[str, str]  # (kind, name)

# The kinds of our children, (apiVersion, kind): each is watched by the label managed-by.
CHILD_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "PersistentVolumeClaim"),
               ("v1", "Secret"), ("networking.k8s.io/v1", "Ingress"))
MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGER}"


def owner_key(namespace: str | None, labels: Mapping[str, Any]) -> Key | None:
    """The artifact a child belongs to, by its label."""
    artifact = labels.get(naming.LABEL_ARTIFACT)
    return (namespace, str(artifact)) if namespace and artifact else None


def approval_keys(body: Mapping[str, Any]) -> list[Key]:
    """The key an ArtifactApproval is found by: (namespace, the artifact it names). Whether
    it holds is decided per reconcile (logic/approval.decide), and its uid checked there."""
    namespace = (body.get("metadata") or {}).get("namespace")
    artifact = (body.get("spec") or {}).get("artifact") or {}
    name = artifact.get("name") if isinstance(artifact, Mapping) else None
    return [(str(namespace), str(name))] if namespace and name else []


def child_keys(body: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The keys a child is found by in its kind's index: (namespace, artifact) of its owner;
    a shared cache claim also ("claim", namespace, name), and a Deployment that mounts one
    ("cache", namespace, hash of the claim), for the claim's users."""
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace")
    labels = meta.get("labels") or {}
    out: list[tuple[str, ...]] = []
    key = owner_key(namespace, labels)
    if key is not None:
        out.append(key)
    if namespace and naming.LABEL_CACHE in labels:
        if body.get("kind") == "PersistentVolumeClaim":
            out.append(("claim", namespace, str(meta.get("name"))))
        elif body.get("kind") == "Deployment":
            out.append(("cache", namespace, str(labels[naming.LABEL_CACHE])))
    return out


def spec_unanswered(body: Mapping[str, Any] | None) -> bool:
    """A new artifact, or one whose `generation` is ahead of `status.observedGeneration`: a
    change to its spec that no reconcile has answered yet, which a user waits on."""
    if body is None:
        return False
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    observed = (body.get("status") or {}).get("observedGeneration")
    try:
        return observed is None or int(meta.get("generation") or 0) > int(observed)
    except (TypeError, ValueError):
        return True


def slim(body: Mapping[str, Any]) -> Obj:
    """The parts of an object the operator reads; managedFields and Secret data stay out of
    memory (and so out of any log line that might print an object)."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    out: Obj = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": meta}
    if body.get("kind") == "Secret":
        out["type"] = body.get("type")
        out["dataKeys"] = sorted((body.get("data") or {}).keys())
        return out
    for key in ("spec", "status"):
        if key in body:
            out[key] = body[key]
    return out


def slim_secret(body: Mapping[str, Any]) -> Obj:
    """What the operator keeps of a user's Secret: who it is and its key names. Annotations
    stay out too: `kubectl apply` leaves the whole Secret, values included, in one."""
    meta = body.get("metadata", {})
    return {"kind": "Secret", "type": body.get("type"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences",
                                              "resourceVersion") if k in meta},
            "dataKeys": sorted((body.get("data") or {}).keys())}


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


def merge_patched(obj: Mapping[str, Any], patch: Mapping[str, Any]) -> Obj:
    """`obj` with a JSON merge patch (RFC 7386) applied."""
    out = dict(obj)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patched(out[key], value)
        else:
            out[key] = value
    return out


def changed_by_others(read: Mapping[str, Any], patch: Mapping[str, Any],
                      stored: Mapping[str, Any]) -> bool:
    """Whether `stored`, the answer to our `patch` of the artifact as we `read` it, holds
    more than that patch: a change someone made in between, which the reconcile did not see.
    (Its resourceVersion and managedFields always differ.)"""
    def essence(obj: Mapping[str, Any]) -> Obj:
        meta = {k: v for k, v in obj.get("metadata", {}).items()
                if k not in ("resourceVersion", "managedFields")}
        return {**{k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")},
                "metadata": meta}
    return essence(merge_patched(read, patch)) != essence(stored)


def controlled_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in obj.get("metadata", {}).get("ownerReferences", []))


class ClusterView:
    """Artifacts by key, children by owner, with our own writes overlaid (see the module)."""

    def __init__(self) -> None:
        # Packed, as the children are (kube/watch.py): most of a body is read once per reconcile.
        self.artifacts: PackedDict[Key] = PackedDict()
        # kind -> index (child_keys -> the bodies under that key; see kube/watch.KeyIndex)
        self.indexes: dict[str, Mapping[Any, Any]] = {}
        # ArtifactApprovals by (namespace, artifact they name): kept apart from the children,
        # which the operator applies and prunes; approvals it only reads.
        self.approval_index: Mapping[Any, Any] | None = None
        # Packed too: in a burst of creations, thousands wait for their watch to catch up.
        self._written: dict[tuple[str, str, str], Packed | None] = {}
        # The same writes by owning artifact, so a reconcile looks only at its own.
        self._written_by_owner: dict[Key, set[Ref]] = {}
        self._writer_owner: dict[tuple[str, str, str], Key] = {}
        # The resourceVersion of each write, read on every child event without unpacking it.
        self._written_version: dict[tuple[str, str, str], int] = {}
        # The artifacts that read each credential Secret, (namespace, secret) -> keys: a
        # Secret's change wakes its readers without scanning every artifact (which made the
        # initial listing of S opted-in Secrets cost S x N).
        self._readers: dict[Key, set[Key]] = {}
        self._reads: dict[Key, frozenset[str]] = {}

    def bind(self, indexes: Mapping[str, Any], approvals: Mapping[Any, Any] | None = None
             ) -> None:
        self.indexes.update(indexes)
        if approvals is not None:
            self.approval_index = approvals

    def approvals(self, key: Key) -> list[Obj]:
        """The ArtifactApprovals that name this artifact (by name; `decide` checks the uid)."""
        index = self.approval_index
        if index is None or key not in index:
            return []
        return list(index[key])

    def note_artifact(self, body: Mapping[str, Any]) -> bool:
        """Hold `body` unless it is the artifact we already hold, or older: False then. The
        watch brings back each of our own writes, whose answer we noted already."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.artifacts.get(key)
        if current is not None and _rv(body) <= _rv(current) and \
                current["metadata"].get("uid") == meta.get("uid"):
            return False  # our own write coming back, or an event it overtook
        new = slim(body)
        self.artifacts[key] = new
        if current is None or current.get("spec") != new.get("spec"):
            self._index_reads(key, frozenset(referenced_secrets(new.get("spec"))))
        return True

    def forget_artifact(self, key: Key, uid: str | None = None) -> None:
        """With `uid`: only that incarnation (one re-created meanwhile stays)."""
        current = self.artifacts.get(key)
        if current is not None and (uid is None or current["metadata"].get("uid") == uid):
            del self.artifacts[key]
            self._index_reads(key, frozenset())

    def secret_readers(self, namespace: str, secret: str) -> set[Key]:
        """The artifacts whose spec references this credential Secret."""
        return set(self._readers.get((namespace, secret), ()))

    def _index_reads(self, key: Key, secrets: frozenset[str]) -> None:
        old = self._reads.get(key, frozenset())
        if old == secrets:
            return
        namespace = key[0]
        for secret in old - secrets:
            readers = self._readers.get((namespace, secret))
            if readers is not None:
                readers.discard(key)
                if not readers:
                    del self._readers[(namespace, secret)]
        for secret in secrets - old:
            self._readers.setdefault((namespace, secret), set()).add(key)
        if secrets:
            self._reads[key] = secrets
        else:
            self._reads.pop(key, None)

    def note_written(self, obj: Mapping[str, Any]) -> None:
        self._note(obj, slim(obj))

    def note_deleted(self, obj: Mapping[str, Any]) -> None:
        self._note(obj, None)

    def watched(self, new: Mapping[str, Any]) -> None:
        """The watch delivered `new`: a write of ours it has caught up with is the index's
        from now on. Forgotten here, not at the next reconcile: a deletion that follows
        before that reconcile must not be hidden by the write (it was, and a deleted child
        was not put back until the next event)."""
        meta = new["metadata"]
        wkey = (new["kind"], meta["namespace"], meta["name"])
        written = self._written_version.get(wkey)
        if written is not None and _rv(new) >= written:
            self._forget_write(*wkey)

    def _note(self, obj: Mapping[str, Any], written: Obj | None) -> None:
        meta = obj["metadata"]
        wkey = (obj["kind"], meta["namespace"], meta["name"])
        owner = owner_key(meta["namespace"], meta.get("labels") or {})
        version = None if written is None else _rv(written)
        if version is not None and owner is not None and self._shown(wkey, owner, version):
            # Its watch event overtook our answer: the index has it, and a write held here
            # would stand in for the object after a deletion (see `watched`).
            self._forget_write(*wkey)
            return
        self._written[wkey] = None if written is None else pack(written)
        if version is None:
            self._written_version.pop(wkey, None)
        else:
            self._written_version[wkey] = version
        if owner is not None:
            self._writer_owner[wkey] = owner
            self._written_by_owner.setdefault(owner, set()).add((obj["kind"], meta["name"]))

    def _shown(self, wkey: tuple[str, str, str], owner: Key, version: int) -> bool:
        """Whether the index holds this object of `owner`'s at `version` or later."""
        kind, _, name = wkey
        return any(o["metadata"]["name"] == name and _rv(o) >= version
                   for o in self._indexed(kind, owner))

    def _forget_write(self, kind: str, namespace: str, name: str) -> None:
        self._written.pop((kind, namespace, name), None)
        self._written_version.pop((kind, namespace, name), None)
        owner = self._writer_owner.pop((kind, namespace, name), None)
        refs = self._written_by_owner.get(owner) if owner else None
        if owner is not None and refs is not None:
            refs.discard((kind, name))
            if not refs:
                del self._written_by_owner[owner]

    def _indexed(self, kind: str, key: tuple[str, ...]) -> list[Obj]:
        index = self.indexes.get(kind)
        if index is None or key not in index:
            return []
        return list(index[key])

    def _overlay(self, kind: str, namespace: str, name: str, seen: Obj | None) -> Obj | None:
        wkey = (kind, namespace, name)
        if wkey not in self._written:
            return seen
        packed = self._written[wkey]
        if packed is None:
            if seen is None:
                self._forget_write(kind, namespace, name)
            # A deletion we made; the watch may still show the object for a moment.
            return None
        written = unpack(packed)
        if seen is not None and _rv(seen) >= _rv(written):
            self._forget_write(kind, namespace, name)  # the watch has caught up
            return seen
        return written

    def children(self, key: Key) -> dict[Ref, Obj]:
        namespace = key[0]
        out: dict[Ref, Obj] = {}
        for kind in self.indexes:
            for obj in self._indexed(kind, key):
                out[(obj["kind"], obj["metadata"]["name"])] = obj
        for kind, name in list(self._written_by_owner.get(key, ())):
            packed = self._written.get((kind, namespace, name))
            if (kind, name) in out:
                continue
            if packed is not None:
                out[(kind, name)] = unpack(packed)
            else:
                # A deletion we made that the watch has delivered: nothing left to hide.
                self._forget_write(kind, namespace, name)
        for ref in list(out):
            merged = self._overlay(ref[0], namespace, ref[1], out[ref])
            if merged is None:
                del out[ref]
            else:
                out[ref] = merged
        return out

    def claim(self, namespace: str, name: str) -> Obj | None:
        found = self._indexed("PersistentVolumeClaim", ("claim", namespace, name))
        return self._overlay("PersistentVolumeClaim", namespace, name,
                             found[0] if found else None)
