"""Garbage collection of the builds in a separate build namespace. No owner reference can
cross namespaces, so Kubernetes' garbage collector cannot delete them with their artifact:
the operator does, for an artifact that is gone (at once) and for any left while it was down
(on each resync).

A build is deleted only when the API server itself says its artifact is gone (404, or
another object of that name: another uid), and only that incarnation of the build (a uid
precondition): a lagging cache never deletes the build of a live artifact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.base import API_GROUP, API_VERSION, KIND
from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic import builds as logic

log = logging.getLogger(__name__)

Key = tuple[str, str]


def owner_of(build: Mapping[str, Any]) -> tuple[Key, str] | None:
    """((namespace, artifact), artifact uid) of a build in the build namespace."""
    labels = build.get("metadata", {}).get("labels") or {}
    namespace = labels.get(logic.LABEL_ARTIFACT_NAMESPACE)
    name = labels.get(naming.LABEL_ARTIFACT)
    uid = labels.get(logic.LABEL_ARTIFACT_UID)
    if not (namespace and name and uid):
        return None
    return (namespace, name), uid


class BuildCollector:
    def __init__(self, kube: Kube, watch: ListWatch, active: Callable[[], bool],
                 interval: float) -> None:
        self.kube = kube
        self.watch = watch
        self.active = active  # only the leader deletes
        self.interval = interval
        self._gone: set[Key] = set()
        self._wake = asyncio.Event()

    def artifact_gone(self, key: Key) -> None:
        self._gone.add(key)
        self._wake.set()

    async def run(self) -> None:
        await self.watch.synced.wait()
        everything = True  # the first pass: what was left while the operator was down
        while True:
            if self.active():
                keys = None if everything else set(self._gone)
                self._gone.clear()
                try:
                    await self.collect(keys)
                except Exception:
                    log.exception("collecting the builds of deleted artifacts failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                everything = False
            except TimeoutError:
                everything = True
            self._wake.clear()

    async def collect(self, keys: set[Key] | None = None) -> int:
        """Delete the builds of the artifacts in `keys` (all, for None) that are gone."""
        deleted = 0
        alive: dict[tuple[Key, str], bool] = {}
        for build in self.watch.all():
            owner = owner_of(build)
            if owner is None or (keys is not None and owner[0] not in keys):
                continue
            if owner not in alive:
                alive[owner] = await self._exists(*owner)
            if alive[owner]:
                continue
            if await self.kube.delete(build, uid=build["metadata"].get("uid")):
                deleted += 1
                metrics.WRITES.labels(verb="delete", kind=build["kind"]).inc()
                log.info("build %s/%s deleted: its artifact %s/%s is gone",
                         build["metadata"]["namespace"], build["metadata"]["name"], *owner[0])
        return deleted

    async def _exists(self, key: Key, uid: str) -> bool:
        try:
            found = await self.kube.get(f"{API_GROUP}/{API_VERSION}", KIND, *key)
        except ApiError as exc:
            log.warning("cannot tell whether %s/%s still exists: %s", *key, exc)
            return True  # in doubt, keep
        return found is not None and found["metadata"].get("uid") == uid
