"""Versions of locked artifacts.

A locked artifact gets `status.version` once: one more than the highest version held by an
artifact of the same `spec.repository` in its namespace. Artifacts without a repository are
numbered among themselves, as the namespace's "no repository" group.

Two replicas can both believe they lead (a partitioned leader before it notices, or replicas
run without leader election), so a number is never handed out on one process's word. Each
group has a counter: a Lease in the operator's own namespace (where its leader-election
rights already are) whose annotation holds the numbers handed out and not yet stored
(artifact uid -> version). A number is handed out only by a write of that Lease with its
resourceVersion (a compare-and-swap: 409 when someone wrote it since), and the number is
one more than every version stored and every number pending:

- The artifacts are listed *after* the Lease is read, so a pending number that a writer
  dropped because it saw it stored is in our list as stored (lists are consistent reads).
- Any number handed out after our read changed the Lease, so our write fails and we retry.

So every number in use is either stored or pending in the Lease we write over, and ours is
above all of them: two artifacts never get the same version, whoever asks. The status
write that stores a version carries the artifact's resourceVersion too (reconcile.py), so
an artifact that got its version meanwhile is never given a second one. A pending number is
dropped once it is stored, or when its artifact is gone or no longer waits for one.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.api.base import API_GROUP, API_VERSION, KIND
from artifact_operator.kube.client import ApiError, Kube

Obj = dict[str, Any]
Group = tuple[str, str]  # (namespace, repository or "" for none)

LEASE_API = "coordination.k8s.io/v1"
ANNOTATION_PENDING = f"{naming.PREFIX}/versions-pending"
ANNOTATION_GROUP = f"{naming.PREFIX}/versions-of"
# Compare-and-swap attempts within one call; past them the reconcile is retried with backoff.
ATTEMPTS = 20


def _repository(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("repository") or "")


def _version(obj: Mapping[str, Any]) -> int:
    version = (obj.get("status") or {}).get("version")
    return version if isinstance(version, int) else 0


def lease_name(group: Group) -> str:
    return f"artifact-versions-{naming.short_hash(f'{group[0]}/{group[1]}', 16)}"


class Versions:
    def __init__(self, kube: Kube, lease_namespace: str) -> None:
        self.kube = kube
        self.lease_namespace = lease_namespace
        # Within one process the calls of a group queue up, instead of failing each other's
        # compare-and-swap.
        self._locks: defaultdict[Group, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def assign(self, body: Mapping[str, Any]) -> int:
        """The version of a locked artifact that has none yet (see the module)."""
        meta = body["metadata"]
        group = (str(meta["namespace"]), _repository(body))
        uid = str(meta.get("uid"))
        async with self._locks[group]:
            for _ in range(ATTEMPTS):
                version = await self._try(group, uid)
                if version is not None:
                    return version
            raise ApiError(409, f"the version counter of {group[0]}/{group[1] or '-'} kept "
                           "changing; retrying", "Conflict")

    async def _try(self, group: Group, uid: str) -> int | None:
        """The version, or None when another writer changed the counter first."""
        name = lease_name(group)
        lease = await self.kube.get(LEASE_API, "Lease", self.lease_namespace, name)
        items = await self.kube.list(f"{API_GROUP}/{API_VERSION}", KIND, group[0])
        members = [o for o in items if _repository(o) == group[1]]
        stored = {str(o["metadata"].get("uid")): _version(o) for o in members if _version(o)}
        if uid in stored:
            return stored[uid]  # our view was behind a status write
        waiting = {str(o["metadata"].get("uid")) for o in members
                   if not _version(o) and (o.get("spec") or {}).get("lifecycle") == "locked"}
        annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
        try:
            pending = {str(k): int(v) for k, v in
                       json.loads(annotations.get(ANNOTATION_PENDING) or "{}").items()}
        except (ValueError, TypeError, AttributeError):
            pending = {}
        kept = {u: v for u, v in pending.items() if u in waiting}
        if uid in kept and kept == pending:
            return kept[uid]  # handed out before, not stored yet: nothing to write
        version = kept.get(uid) or max([*stored.values(), *kept.values()], default=0) + 1
        kept[uid] = version
        try:
            await self._write(lease, group, name, kept)
        except ApiError as exc:
            if exc.conflict:
                return None
            raise
        return version

    async def _write(self, lease: Obj | None, group: Group, name: str,
                     pending: dict[str, int]) -> None:
        annotations = {ANNOTATION_PENDING: json.dumps(pending, sort_keys=True),
                       ANNOTATION_GROUP: f"{group[0]}/{group[1]}"}
        if lease is None:
            # 409 when another replica created it first: then we read it and try again.
            await self.kube.create_new({
                "apiVersion": LEASE_API, "kind": "Lease",
                "metadata": {"name": name, "namespace": self.lease_namespace,
                             "labels": {naming.LABEL_MANAGED_BY: naming.MANAGER},
                             "annotations": annotations},
                "spec": {}})
            return
        meta = lease["metadata"]
        await self.kube.replace({
            "apiVersion": LEASE_API, "kind": "Lease",
            "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}),
                                                 **annotations}},
            "spec": lease.get("spec") or {}})
