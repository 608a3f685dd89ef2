"""`artifact-operator run`: kopf (lifecycle, webhook) with our watches and work queue, health
and metrics servers, and optional leader election.

With `--leader-election` every replica runs kopf (watches and indexes warm, webhook served) but
only the Lease holder reconciles. A leader that loses its Lease stops reconciling at once and
exits with status 1, so its pod restarts as a clean standby instead of carrying on with state
that another replica now owns. On SIGTERM the leader hands the Lease back, so a rolling update
fails over without waiting for the Lease to expire.

On SIGTERM the operator first steps down (no more writes, the Lease handed back), then keeps
answering the webhook for `webhook_drain_seconds` before kopf stops: until the endpoints
controller and kube-proxy have taken the terminating pod out of the webhook Service, requests
still arrive here, and each one refused is a user's failed `kubectl apply`. A second SIGTERM,
or SIGINT, stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kopf._core.engines.peering import Identity  # not re-exported by kopf

from artifact_operator.app.context import Context, load_legacy_approver
from artifact_operator.app.observability import Health, configure_logging, serve
from artifact_operator.kube.client import Kube
from artifact_operator.kube.leader import LeaderElector, default_identity, default_namespace
from artifact_operator.settings import Config
from artifact_operator.webhook import server as webhook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """The `run` flags other than configuration (see `artifact-operator run --help`)."""

    namespaces: list[str] = field(default_factory=list)  # empty: all namespaces
    verbose: bool = False
    log_format: str = "text"
    liveness: str | None = None
    health_port: int = 8081
    metrics_port: int = 8080
    bind_address: str = "0.0.0.0"
    leader_election: bool = False
    leader_election_namespace: str | None = None
    leader_election_id: str = "artifact-operator-leader"


def run(config: Config, options: RunOptions) -> int:
    configure_logging(verbose=options.verbose, log_format=options.log_format)
    webhooks = webhook.enabled(config.webhook)
    if webhooks:
        webhook.register(config.webhook, options.namespaces)
    # The old HMAC approvals are only verified now (migration); nothing signs any more.
    context = Context(config, Health(), load_legacy_approver(config.approval),
                      leader_election=options.leader_election, webhooks=webhooks,
                      namespaces=list(options.namespaces),
                      lease_namespace=options.leader_election_namespace or default_namespace())

    @kopf.on.startup(id="artifact-operator-startup")
    async def startup(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
        await context.start(memo, settings)

    @kopf.on.cleanup(id="artifact-operator-cleanup")
    async def cleanup(**_: Any) -> None:
        await context.close()

    return asyncio.run(_operate(context, options))


# How long a stopping leader waits for its cancelled reconciles before it hands the Lease
# back: none of their writes may land after a standby has taken over.
STEP_DOWN_SECONDS = 5.0


async def _step_down(context: Context, elector: LeaderElector,
                     campaign: asyncio.Task[None]) -> None:
    """Stop reconciling and hand the Lease back. Run at the start of kopf's cleanup, on
    SIGTERM: kopf's own shutdown takes seconds more, and a standby need not wait for it
    (docs/benchmarks.md, the leader takeover). Again at exit; the second time is a no-op."""
    campaign.cancel()
    reconciler = context.reconciler
    if reconciler is not None:
        reconciler.deactivate()
        deadline = asyncio.get_running_loop().time() + STEP_DOWN_SECONDS
        while not reconciler.queue.idle and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    await elector.release()


async def _drain_then_stop(context: Context, stop: asyncio.Event, seconds: float,
                           step_down: Callable[[], Awaitable[None]] | None) -> None:
    context.health.stopping = True
    if step_down is not None:
        await step_down()
    if seconds:
        log.info("SIGTERM: stepped down; answering the webhook %.0f s more, until the Service "
                 "stops routing here", seconds)
        # Ends early when a second signal has stopped the operator.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    stop.set()


def _on_sigterm(context: Context, stop: asyncio.Event, seconds: float,
                step_down: Callable[[], Awaitable[None]] | None) -> Callable[[int], None]:
    draining: list[asyncio.Task[None]] = []

    def handle(signum: int) -> None:
        if draining or signum != signal.SIGTERM:
            log.info("%s: stopping now", signal.Signals(signum).name)
            stop.set()
            return
        draining.append(asyncio.create_task(_drain_then_stop(context, stop, seconds, step_down)))
    return handle


async def _operate(context: Context, options: RunOptions) -> int:
    health = context.health
    ready, stop = asyncio.Event(), asyncio.Event()
    runners = await serve(health, health_port=options.health_port,
                          metrics_port=options.metrics_port, address=options.bind_address)
    # An explicit identity: kopf's default asks the passwd database for the user name, which
    # crashes an image that runs as a uid with no passwd entry (ours runs as 65532).
    operator = asyncio.create_task(kopf.operator(
        clusterwide=not options.namespaces, namespaces=options.namespaces, standalone=True,
        memo=kopf.Memo(), identity=Identity(default_identity()),
        liveness_endpoint=options.liveness, ready_flag=ready, stop_flag=stop))
    health.alive = lambda: not operator.done()
    elector: LeaderElector | None = None
    elector_task: asyncio.Task[None] | None = None
    lost = False

    def on_lost() -> None:
        nonlocal lost
        lost = True
        if context.reconciler is not None:
            context.reconciler.deactivate()
        stop.set()

    try:
        started = asyncio.create_task(ready.wait())
        await asyncio.wait([operator, started], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        health.started = ready.is_set()
        if options.leader_election and ready.is_set() and context.reconciler is not None:
            # Its own client: the Lease must outlive kopf's cleanup, which closes the others.
            elector = LeaderElector(
                await Kube.connect(client_login=context.config.settings.client_login),
                options.leader_election_namespace or default_namespace(),
                options.leader_election_id, default_identity(),
                on_started=context.reconciler.activate, on_lost=on_lost)
            elector_task = asyncio.create_task(elector.run())
            context.on_stop.append(lambda: _step_down(context, elector, elector_task))
        if ready.is_set():
            # Replaces kopf's handlers, installed before it raised `ready`: kopf would stop
            # the webhook server at once.
            step_down = None
            if elector is not None and elector_task is not None:
                step_down = functools.partial(_step_down, context, elector, elector_task)
            drain = context.config.webhook.webhook_drain_seconds if context.webhooks else 0.0
            handle = _on_sigterm(context, stop, drain, step_down)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, handle, signum)
        await operator
    finally:
        if elector is not None and elector_task is not None:
            await _step_down(context, elector, elector_task)
            await elector.kube.close()
        for runner in runners:
            await runner.cleanup()
    return 1 if lost else 0
