"""Leader election with a `coordination.k8s.io/v1` Lease, so only one replica reconciles.

Every replica runs kopf (its watches and indexes stay warm, and every replica can serve the
webhook), but only the holder of the Lease reconciles. The protocol is client-go's: a
candidate takes the Lease when it is free or when its record has not changed for a whole
lease duration *by the candidate's own clock* (so clock skew between nodes does not matter);
the holder renews it every `renew_period`; writes are compare-and-swap on resourceVersion, so
two candidates never both win. Between its attempts a candidate watches the Lease: one handed
back (a leader stepping down at SIGTERM, as in a rolling upgrade) is taken at once, not at the
next `retry_period`.

A holder that cannot renew within `renew_deadline` (shorter than the lease duration, so it
stops before anyone else may start) calls `on_lost`; the operator then stops reconciling at
once and exits, and its pod restarts as a clean standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artifact_operator.kube.client import ApiError, Kube

log = logging.getLogger(__name__)

LEASE_API = "coordination.k8s.io/v1"
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity() -> str:
    """The pod name in a pod (downward API `POD_NAME`), else hostname and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def default_namespace() -> str:
    """The operator's own namespace: `POD_NAMESPACE`, the service account's, or `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return _SA_NAMESPACE.read_text().strip()
    except OSError:
        return "default"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseTiming:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    renew_period: float = 5.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, *,
                 on_started: Callable[[], None], on_lost: Callable[[], None],
                 timing: LeaseTiming = LeaseTiming()) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.on_started = on_started
        self.on_lost = on_lost
        self.timing = timing
        self.leading = False
        # The last record seen and when (monotonic) it was first seen unchanged.
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        # The resourceVersion of the Lease as last read: where a watch for its release starts.
        self._version: str | None = None

    async def run(self) -> None:
        """Campaign until elected, then renew until the lease is lost or the task cancelled."""
        log.info("leader election: %s campaigning for lease %s/%s", self.identity,
                 self.namespace, self.name)
        while not await self._attempt(self.timing.renew_deadline):
            await self._until_released(self.timing.retry_period)
        self.leading = True
        log.info("leader election: %s is the leader", self.identity)
        self.on_started()
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(self.timing.renew_period)
            # Each attempt is cut off at the renew deadline: an API server that hangs (it
            # answers nothing, as when it is frozen) must not keep a leader past it, since
            # a standby may take over once the lease duration has passed.
            while not await self._attempt(
                    self.timing.renew_deadline - (time.monotonic() - last_renew)):
                if time.monotonic() - last_renew >= self.timing.renew_deadline:
                    self.leading = False
                    log.error("leader election: %s lost lease %s/%s", self.identity,
                              self.namespace, self.name)
                    self.on_lost()
                    return
                await asyncio.sleep(self.timing.retry_period)
            last_renew = time.monotonic()

    async def _until_released(self, within: float) -> None:
        """Wait `within` seconds, or until the Lease is handed back or deleted, if sooner."""
        deadline = time.monotonic() + within
        if self._version is not None:
            try:
                await asyncio.wait_for(self._released(self._version, within), within)
                return
            except TimeoutError:
                return
            except ApiError as exc:
                # An install whose role predates the watch (403), a version too old (410):
                # the rest of the retry period, as without the watch.
                log.debug("leader election: lease %s/%s not watched: %s", self.namespace,
                          self.name, exc)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def _released(self, version: str, within: float) -> None:
        events = self.kube.watch(LEASE_API, "Lease", self.namespace, "", version,
                                 timeout_seconds=int(within) + 1,
                                 field_selector=f"metadata.name={self.name}")
        async with contextlib.aclosing(events):
            async for kind, lease in events:
                if kind == "DELETED" or (kind == "MODIFIED" and
                                         not (lease.get("spec") or {}).get("holderIdentity")):
                    return
        await asyncio.sleep(within)  # the server ended the watch first: the period's end

    async def _attempt(self, timeout: float) -> bool:
        if timeout <= 0:
            return False
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(), timeout)
        except TimeoutError:
            log.warning("leader election: lease %s/%s: no answer within %.1f s",
                        self.namespace, self.name, timeout)
            return False

    async def release(self) -> None:
        """Hand the lease back on a clean shutdown, so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.kube.get(LEASE_API, "Lease", self.namespace, self.name)
            if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
                return
            # A 1 s lease that has already expired: the next candidate's check succeeds.
            lease["spec"].update({"leaseDurationSeconds": 1, "renewTime": _micro_time()})
            lease["spec"].pop("holderIdentity", None)
            await self.kube.replace(lease)
            log.info("leader election: %s released the lease", self.identity)
        except ApiError as exc:
            log.warning("leader election: could not release the lease: %s", exc)

    def _spec(self, transitions: int, acquire_time: str) -> dict[str, Any]:
        return {"holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": acquire_time, "renewTime": _micro_time(),
                "leaseTransitions": transitions}

    async def _try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.kube.get(LEASE_API, "Lease", self.namespace, self.name)
            self._version = (lease or {}).get("metadata", {}).get("resourceVersion")
            if lease is None:
                # Two candidates creating at once: one wins, the other sees it exists.
                return await self.kube.create({
                    "apiVersion": LEASE_API, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(0, _micro_time())}, exists_ok=True) is not None
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            now = time.monotonic()
            if record != self._observed:
                self._observed, self._observed_at = record, now
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            if holder and holder != self.identity and now - self._observed_at < duration:
                return False  # someone else holds a lease that has not expired
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder == self.identity:
                new_spec = self._spec(transitions, spec.get("acquireTime") or _micro_time())
            else:
                new_spec = self._spec(transitions + 1, _micro_time())
            await self.kube.replace({**lease, "spec": new_spec})
            return True
        except ApiError as exc:
            # 409: another candidate wrote first; anything else: try again next period.
            if not exc.conflict:
                log.warning("leader election: lease %s/%s: %s", self.namespace, self.name, exc)
            return False
