"""Versions of locked artifacts.

A locked artifact gets `status.version` once: one more than the highest version held by an
artifact of the same `spec.repository` in its namespace. Artifacts without a repository are
numbered among themselves, as the namespace's "no repository" group.

Numbers are handed out one (namespace, repository) at a time under an asyncio lock, and a
number stays reserved for its artifact (by uid) from the moment it is handed out, before the
status write lands: two artifacts locked at the same moment never share a number, and a
retried status write reuses the number it was given. The highest version is read with a
LIST of the namespace's artifacts rather than from the watch, because right after a restart
the watch may not have delivered every artifact yet; it happens once per artifact lifetime.
Only the leader reconciles, so an in-process lock is enough.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from artifact_operator.api.models import API_GROUP, API_VERSION, KIND
from artifact_operator.kube.client import Kube

Obj = dict[str, Any]
Group = tuple[str, str]  # (namespace, repository or "" for none)


def _repository(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("repository") or "")


def _version(obj: Mapping[str, Any]) -> int:
    version = (obj.get("status") or {}).get("version")
    return version if isinstance(version, int) else 0


class Versions:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._locks: defaultdict[Group, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._reserved: defaultdict[Group, dict[str, int]] = defaultdict(dict)

    async def assign(self, body: Mapping[str, Any]) -> int:
        """The version of a locked artifact that has none yet."""
        meta = body["metadata"]
        group = (str(meta["namespace"]), _repository(body))
        uid = str(meta.get("uid"))
        async with self._locks[group]:
            reserved = self._reserved[group]
            if uid in reserved:
                return reserved[uid]
            items = await self.kube.list(f"{API_GROUP}/{API_VERSION}", KIND, group[0])
            held = [obj for obj in items if _repository(obj) == group[1] and _version(obj)]
            mine = next((o for o in held if o["metadata"].get("uid") == uid), None)
            if mine is not None:
                return _version(mine)  # our view was behind our own status write
            for obj in held:
                # Stored now, so the LIST carries it from here on.
                reserved.pop(str(obj["metadata"].get("uid")), None)
            version = max([_version(o) for o in held] + list(reserved.values()), default=0) + 1
            reserved[uid] = version
            return version
