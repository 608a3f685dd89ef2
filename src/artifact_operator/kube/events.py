"""Kubernetes Events on Artifacts: the children created, updated or deleted, and failures.

Posting is fire-and-forget: a lost Event must never fail or slow a reconcile. Messages are
built by the caller from object names and server messages only, never from Secret data.

Within a reconcile (`batch()`), Events of one artifact with the same type and reason become
one: "Created Deployment web-api, Service web-api", not one Event per child. That is
Kubernetes' own aggregation key (client-go's EventAggregator groups by source, object, type
and reason, differing only in message), applied at once rather than after ten repeats: the
Events were ~40% more writes than the children themselves (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
MESSAGE_LIMIT = 1024  # the API server's limit on an Event's message

# The Events a reconcile has posted so far, by (artifact uid, type, reason): set by `batch()`.
# A context variable, so that concurrent reconciles (tasks) each have their own.
_batch: contextvars.ContextVar[dict[tuple[Any, ...], list[Any]] | None] = \
    contextvars.ContextVar("event_batch", default=None)


def merged(reason: str, messages: list[str]) -> str:
    """One message for several of one reason: "Created Deployment a, Service a" when each
    starts with the reason, else joined by "; "; cut to the API server's limit."""
    prefix = f"{reason} "
    if len(messages) > 1 and all(m.startswith(prefix) for m in messages):
        text = prefix + ", ".join(m[len(prefix):] for m in messages)
    else:
        text = "; ".join(messages)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 3] + "..."


class EventRecorder:
    def __init__(self, kube: Kube, enabled: bool = True) -> None:
        self.kube = kube
        self.enabled = enabled
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._workers: list[asyncio.Task[None]] = []

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within: Events of one artifact, type and reason are posted as one, on leaving."""
        pending: dict[tuple[Any, ...], list[Any]] = {}
        token = _batch.set(pending)
        try:
            yield
        finally:
            _batch.reset(token)
            for artifact, type_, reason, messages in pending.values():
                self._post(artifact, type_, reason, merged(reason, messages))

    def post(self, artifact: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.enabled:
            return
        pending = _batch.get()
        if pending is None:
            self._post(artifact, type_, reason, message)
            return
        meta = artifact["metadata"]
        key = (meta["namespace"], meta["name"], meta.get("uid"), type_, reason)
        if key in pending:
            pending[key][3].append(message)
        else:
            pending[key] = [artifact, type_, reason, [message]]

    def _post(self, artifact: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = artifact["metadata"]
        stamp = now()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": artifact["apiVersion"], "kind": artifact["kind"],
                               "name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message[:MESSAGE_LIMIT], "type": type_,
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
