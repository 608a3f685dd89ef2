"""The composition root: the one place where the operator's objects are built and wired.

`Context.start` runs inside kopf's startup (it needs the running loop) and puts what the
handlers need into kopf's memo, where the controller's and the webhook's handlers find it
with typed accessors (`reconciler_of`, `admission_of`). `Context.close` undoes it at cleanup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from artifact_operator.api import naming
from artifact_operator.api.approval import APPROVAL_KIND
from artifact_operator.api.base import API_GROUP, API_VERSION
from artifact_operator.app.kopf_config import configure_kopf
from artifact_operator.app.observability import Health
from artifact_operator.controller.apis import ask_until, discover_forever, served_apis
from artifact_operator.controller.autoscalers import served_version
from artifact_operator.controller.builds import Builds, resolve_engine
from artifact_operator.controller.reconcile import Reconciler
from artifact_operator.controller.view import (
    CHILD_KINDS,
    MANAGED_SELECTOR,
    ClusterView,
    Obj,
    approval_keys,
    child_keys,
    slim,
    slim_secret,
)
from artifact_operator.controller.warmup import WarmUps
from artifact_operator.kube.client import Kube
from artifact_operator.kube.events import EventRecorder
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic.approval import LegacyApprover
from artifact_operator.logic.served import OPTIONAL, ServedApis
from artifact_operator.settings import ApprovalSettings, BuildEngine, CacheWarmUp, Config
from artifact_operator.webhook import server as webhook

log = logging.getLogger(__name__)


def _nothing(namespace: str, name: str) -> None:
    """For watches whose `observe` says all."""


def _version(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {"metadata": {k: meta.get(k) for k in ("namespace", "name", "uid", "resourceVersion")}}


def load_legacy_approver(settings: ApprovalSettings) -> LegacyApprover:
    """The key of the old HMAC approvals, from the environment or its file. Only verified,
    for artifacts approved before ArtifactApprovals (they keep running until their next
    change); without it, those need an ArtifactApproval at once."""
    key: bytes | None = None
    if settings.approval_key is not None:
        key = settings.approval_key.get_secret_value().encode()
    elif settings.approval_key_file is not None:
        try:
            key = settings.approval_key_file.read_bytes().strip()
        except OSError as exc:
            log.warning("cannot read the approval key file %s: %s",
                        settings.approval_key_file, exc.strerror)
    return LegacyApprover(key)


@dataclass
class Context:
    config: Config
    health: Health
    legacy: LegacyApprover
    leader_election: bool
    webhooks: bool
    namespaces: list[str] = field(default_factory=list)  # empty: all namespaces
    # The operator's own namespace: its leader-election Lease, and the version counters.
    lease_namespace: str = "default"
    kube: Kube | None = None
    reconciler: Reconciler | None = None
    admission: webhook.Admission | None = None
    _resync: asyncio.Task[None] | None = field(default=None, repr=False)
    _watches: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _watch_kube: Kube | None = field(default=None, repr=False)
    _builds: asyncio.Task[None] | None = field(default=None, repr=False)
    # The optional APIs (controller/apis.py): asked again while one is missing; the watches
    # of the kinds served only later, by kind.
    _discovery: asyncio.Task[None] | None = field(default=None, repr=False)
    # Auto build engine on the Job fallback: asked again whether Shipwright is served.
    _engine_discovery: asyncio.Task[None] | None = field(default=None, repr=False)
    _late: dict[str, ListWatch] = field(default_factory=dict, repr=False)
    # Run first when the operator stops (app/run.py: the leader steps down).
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    async def start(self, memo: Any, settings: kopf.OperatorSettings) -> None:
        configure_kopf(settings)
        client_login = self.config.settings.client_login
        self.kube = kube = await Kube.connect(client_login=client_login)
        view = ClusterView()
        # The HPAs are watched in the API version the server serves (v2, or v2beta2 before
        # 1.23), and rendered in it: asked once, here.
        ours = self.config.settings
        if ours.hpa_api_version is None:
            ours = ours.model_copy(update={"hpa_api_version": await served_version(kube)})
        assert ours.hpa_api_version is not None
        # Ingresses always (networking.k8s.io/v1, 1.19+); HTTPRoutes and ServiceMonitors where
        # their CRDs are installed.
        apis = await served_apis(kube)
        kinds = (*CHILD_KINDS, (ours.hpa_api_version, "HorizontalPodAutoscaler"), *apis.kinds())
        # The watches hold their connections for as long as they run: a client of their own,
        # so they never take the reconciles' connections (kube/client.py CONNECTIONS). Room
        # for the optional kinds served later.
        scopes = len(self.namespaces) or 1
        self._watch_kube = watch_kube = await Kube.connect(
            connections=(len(kinds) + 4 + len(OPTIONAL)) * scopes,
            client_login=client_login)
        # The Artifacts, and the ArtifactApprovals by the artifact they name.
        ours_api = f"{API_GROUP}/{API_VERSION}"
        # The view holds the Artifacts (with the answers to our writes); the watch only
        # what tells a relist's changes.
        artifacts = ListWatch(watch_kube, ours_api, "Artifact", "", self.namespaces or None,
                              slim, _nothing, observe=self._artifact_changed, keep=_version)
        # Without their CRD no approval holds (elevated groups are withheld), and nothing
        # else waits for it.
        approvals = ListWatch(watch_kube, ours_api, APPROVAL_KIND, "", self.namespaces or None,
                              slim, _nothing, index=approval_keys,
                              observe=self._approval_changed, absent_ok=True)
        # The users' Secrets that opt in to artifacts, by their label; and the model cache
        # warm-up Jobs.
        credentials = ListWatch(
            watch_kube, "v1", "Secret", f"{naming.LABEL_USABLE}=true", self.namespaces or None,
            slim_secret, lambda namespace, name: self._secret_changed(namespace, name))
        # Our children, by the label managed-by, indexed as the view reads them.
        children = [self._child_watch(api_version, kind) for api_version, kind in kinds]
        view.bind({watch.kind: watch.by_key for watch in children}, approvals=approvals.by_key)
        # With leader election the replica starts as a standby; run.py activates it.
        self.reconciler = Reconciler(
            kube, ours, view, EventRecorder(kube, self.config.settings.events),
            self.legacy, credentials=credentials, children=children, approvals=approvals,
            lease_namespace=self.lease_namespace, active=not self.leader_election)
        self.reconciler.apis = apis
        memo.reconciler = self.reconciler
        loop = asyncio.get_running_loop()
        # The build engine is chosen at start; in auto mode on the Job fallback, asked again
        # below, so that installing Shipwright later takes no restart.
        engine = await resolve_engine(kube, self.config.settings.build_engine)
        log.info("image builds: %s engine", engine)
        reconciler = self.reconciler
        # Auto mode on Shipwright: Jobs the fallback started before a restart are followed
        # to their end, never started again as BuildRuns beside them.
        auto = self.config.settings.build_engine == BuildEngine.auto
        builds = Builds(kube, self.config.settings, reconciler.events, engine,
                        self.namespaces or None, reconciler.enqueue,
                        active=lambda: reconciler.queue.active,
                        earlier=[BuildEngine.job] if auto else [])
        self.reconciler.builds = builds
        self._builds = loop.create_task(builds.run())
        # The Artifacts last: a reconcile waits for the others' lists anyway.
        self._watches = [loop.create_task(watch.run())
                         for watch in [credentials, approvals, *children, artifacts]]
        if ours.cache_warm_up != CacheWarmUp.off:
            warmups = WarmUps(kube, ours, view, self.reconciler.events,
                              self.namespaces or None, self.reconciler.enqueue,
                              watch_kube=watch_kube)
            self.reconciler.warmups = warmups
            self._watches.append(loop.create_task(warmups.run()))
        self._resync = loop.create_task(self.reconciler.resync_forever())
        if not apis.complete and ours.api_discovery_seconds > 0:
            self._discovery = loop.create_task(discover_forever(
                kube, apis, ours.api_discovery_seconds, self._apis_served))
        if ours.build_engine == BuildEngine.auto and engine == BuildEngine.job and \
                ours.api_discovery_seconds > 0:
            self._engine_discovery = loop.create_task(ask_until(
                ours.api_discovery_seconds, self._shipwright_served,
                "asking whether Shipwright BuildRuns are served"))
        if self.webhooks:
            webhook.serve(settings, self.config.webhook)
            # Its own client: access reviews must not wait behind a burst of reconciles.
            self.admission = webhook.Admission(await Kube.connect(client_login=client_login))
            memo.admission = self.admission
            # kopf binds the webhook server only after startup: until it listens, the pod
            # must not receive the Service's admission calls.
            self.health.readiness_checks["webhook"] = webhook.listening(
                self.config.webhook.webhook_host, self.config.webhook.webhook_port)

    def _child_watch(self, api_version: str, kind: str) -> ListWatch:
        """The watch of one kind of our children, by the label managed-by, indexed as the
        view reads them."""
        assert self._watch_kube is not None
        return ListWatch(self._watch_kube, api_version, kind, MANAGED_SELECTOR,
                         self.namespaces or None, slim, lambda namespace, name: None,
                         index=child_keys, observe=self._child_changed)

    async def _apis_served(self, apis: ServedApis) -> None:
        """More optional APIs are served now: watch their kinds and, once listed, render them
        (every artifact is reconciled again)."""
        reconciler = self.reconciler
        assert reconciler is not None
        watched = {w.kind for w in reconciler.children}
        for api_version, kind in apis.kinds():
            if kind not in watched and kind not in self._late:
                self._late[kind] = watch = self._child_watch(api_version, kind)
                self._watches.append(asyncio.get_running_loop().create_task(watch.run()))
        for watch in self._late.values():
            await asyncio.wait_for(watch.synced.wait(), timeout=60)
        # Seen by reconciles only once listed, and together with the renderer's knowing of
        # the kind: a child found but not rendered would be pruned.
        for watch in self._late.values():
            if watch not in reconciler.children:
                reconciler.view.bind({watch.kind: watch.by_key})
                reconciler.children.append(watch)
        reconciler.apis = apis
        reconciler.enqueue_all()

    async def _shipwright_served(self) -> bool:
        """Whether the build engine switched to Shipwright; if so every artifact is
        reconciled again (a source only Shipwright builds, oci or with a cloneSecret, is
        built now)."""
        reconciler = self.reconciler
        assert reconciler is not None and reconciler.builds is not None
        if not await reconciler.builds.take_up_shipwright():
            return False
        reconciler.enqueue_all()
        return True

    def _artifact_changed(self, old: Obj | None, new: Obj | None) -> None:
        if self.reconciler is not None:
            self.reconciler.artifact_changed(old, new)

    def _approval_changed(self, old: Obj | None, new: Obj | None) -> None:
        if self.reconciler is not None:
            self.reconciler.approval_changed(old, new)

    def _child_changed(self, old: Obj | None, new: Obj | None) -> None:
        if self.reconciler is not None:
            self.reconciler.child_changed(old, new)

    def _secret_changed(self, namespace: str, name: str) -> None:
        if self.reconciler is not None:
            self.reconciler.secret_changed(namespace, name)

    async def close(self) -> None:
        for step in self.on_stop:
            await step()
        for task in self._watches:
            task.cancel()
        if self._builds is not None:
            self._builds.cancel()
        for discovery in (self._discovery, self._engine_discovery):
            if discovery is not None:
                discovery.cancel()
        if self._resync is not None:
            self._resync.cancel()
        if self.reconciler is not None:
            await self.reconciler.caches.drain()
            await self.reconciler.events.drain()
        if self.kube is not None:
            await self.kube.close()
        if self._watch_kube is not None:
            await self._watch_kube.close()
        if self.admission is not None:
            await self.admission.kube.close()
