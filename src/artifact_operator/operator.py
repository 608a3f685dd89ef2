"""`artifact-operator run`: kopf with our handlers, health and metrics servers, and optional
leader election.

With `--leader-election` every replica runs kopf (watches and indexes warm, webhook served) but
only the Lease holder reconciles. A leader that loses its Lease stops reconciling at once and
exits with status 1, so its pod restarts as a clean standby instead of carrying on with state
that another replica now owns. On SIGTERM the leader hands the Lease back, so a rolling update
fails over without waiting for the Lease to expire.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf
from kopf._core.engines.peering import Identity  # not re-exported by kopf

from . import admission
from .approval import Approver
from .kube import Kube
from .leader import LeaderElector, default_identity, default_namespace
from .observability import Health, configure_logging, serve
from .settings import Settings

log = logging.getLogger(__name__)


def run(*, namespaces: list[str], all_namespaces: bool, verbose: bool,
        extra: argparse.Namespace) -> int:
    from . import handlers  # noqa: F401 - registers the handlers

    configure_logging(verbose=verbose, log_format=extra.log_format)
    # One approval key for the webhook (signing) and the reconciler (verifying).
    approver = Approver.from_settings()
    admission.register(admission.settings_from_args(extra), approver)
    clusterwide = all_namespaces or not namespaces
    return asyncio.run(_operate(Settings(), approver, clusterwide=clusterwide,
                                namespaces=[] if clusterwide else namespaces, args=extra))


async def _operate(settings: Settings, approver: Approver, *, clusterwide: bool,
                   namespaces: list[str], args: argparse.Namespace) -> int:
    health = Health()
    memo: Any = kopf.Memo(settings=settings, health=health, approver=approver,
                          leader_election=args.leader_election)
    ready, stop = asyncio.Event(), asyncio.Event()
    runners = await serve(health, health_port=args.health_port, metrics_port=args.metrics_port,
                          address=args.bind_address)
    # An explicit identity: kopf's default asks the passwd database for the user name, which
    # crashes an image that runs as a uid with no passwd entry (ours runs as 65532).
    operator = asyncio.create_task(kopf.operator(
        clusterwide=clusterwide, namespaces=namespaces, standalone=True, memo=memo,
        identity=Identity(default_identity()),
        liveness_endpoint=args.liveness, ready_flag=ready, stop_flag=stop))
    health.alive = lambda: not operator.done()
    elector: LeaderElector | None = None
    elector_task: asyncio.Task[None] | None = None
    lost = False

    def on_lost() -> None:
        nonlocal lost
        lost = True
        memo.reconciler.deactivate()
        stop.set()

    try:
        started = asyncio.create_task(ready.wait())
        await asyncio.wait([operator, started], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        health.started = ready.is_set()
        if args.leader_election and ready.is_set():
            # Its own client: the Lease must outlive kopf's cleanup, which closes memo.kube.
            elector = LeaderElector(
                await Kube.connect(), args.leader_election_namespace or default_namespace(),
                args.leader_election_id, default_identity(),
                on_started=memo.reconciler.activate, on_lost=on_lost)
            elector_task = asyncio.create_task(elector.run())
        await operator
    finally:
        if elector is not None and elector_task is not None:
            elector_task.cancel()
            if "reconciler" in memo:
                memo.reconciler.deactivate()
            await elector.release()
            await elector.kube.close()
        for runner in runners:
            await runner.cleanup()
    return 1 if lost else 0
