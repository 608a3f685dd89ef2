"""Kubernetes Events on Artifacts: one per child created, updated or deleted, and per failure.

Posting is fire-and-forget: a lost Event must never fail or slow a reconcile. Messages are
built by the caller from object names and server messages only, never from Secret data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import naming
from .kube import Kube

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: Kube, enabled: bool = True) -> None:
        self.kube = kube
        self.enabled = enabled
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, artifact: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.enabled:
            return
        meta = artifact["metadata"]
        stamp = now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": artifact["apiVersion"], "kind": artifact["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": naming.MANAGER},
            "reportingComponent": naming.MANAGER, "reportingInstance": naming.MANAGER,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        task = asyncio.get_running_loop().create_task(self._send(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: dict[str, Any]) -> None:
        try:
            await self.kube.create(event)
        except Exception as exc:
            log.debug("could not post event %s: %s", event["reason"], exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
