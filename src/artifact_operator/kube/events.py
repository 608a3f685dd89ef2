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

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.kube.client import Kube

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Events wait in a bounded queue for a few posting workers: a burst of thousands of children
# must neither hold thousands of pending requests in memory nor take the connections the
# reconciles need. When the queue is full, new Events are dropped (and counted in
# artifact_operator_events_dropped_total).
QUEUE_SIZE = 1000
WORKERS = 2


class EventRecorder:
    def __init__(self, kube: Kube, enabled: bool = True) -> None:
        self.kube = kube
        self.enabled = enabled
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._workers: list[asyncio.Task[None]] = []

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
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_SIZE)
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._send()) for _ in range(WORKERS)]
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            metrics.EVENTS_DROPPED.inc()
            log.debug("event queue full; dropped %s on %s", reason, meta["name"])

    async def _send(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self.kube.create(event)
            except Exception as exc:
                log.debug("could not post event %s: %s", event["reason"], exc)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Post what is queued (for a few seconds at most), then stop the workers."""
        if self._queue is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout=5)
            except TimeoutError:
                log.info("%d events not posted at shutdown", self._queue.qsize())
        for worker in self._workers:
            worker.cancel()
