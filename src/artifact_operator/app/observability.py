"""Health and metrics endpoints, and logging (text or JSON lines).

Both servers run on the operator's own event loop, so a blocked loop fails liveness, which is
what a liveness probe is for. `/healthz` answers while the operator runs; `/readyz` once kopf
has started (its indexes are filled before any handler runs) and every extra readiness check
(e.g. the webhook server) passes. Standby replicas are ready too: they serve the webhook.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from artifact_operator.controller.queue import log_object


class Health:
    def __init__(self) -> None:
        self.started = False
        self.stopping = False  # after SIGTERM: out of the Service's endpoints, still serving
        self.alive: Callable[[], bool] = lambda: True
        self.readiness_checks: dict[str, Callable[[], bool]] = {}

    def not_ready(self) -> list[str]:
        if self.stopping:
            return ["stopping"]
        failing = [] if self.started else ["operator"]
        failing += [name for name, check in self.readiness_checks.items() if not check()]
        return failing


async def _healthz(request: web.Request) -> web.Response:
    health: Health = request.app["health"]
    if not health.alive():
        return web.Response(status=500, text="operator stopped\n")
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    failing = request.app["health"].not_ready()
    if failing:
        return web.Response(status=503, text=f"not ready: {', '.join(failing)}\n")
    return web.Response(text="ok\n")


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(health: Health, *, health_port: int, metrics_port: int,
                address: str = "0.0.0.0") -> list[web.AppRunner]:
    """Start the health and metrics servers (a port of 0 turns that server off)."""
    runners = []
    for port, routes in ((health_port, [web.get("/healthz", _healthz),
                                        web.get("/readyz", _readyz)]),
                         (metrics_port, [web.get("/metrics", _metrics)])):
        if not port:
            continue
        app = web.Application()
        app["health"] = health
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, address, port).start()
        runners.append(runner)
    return runners


class _JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, and the object when known."""

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        ref = getattr(record, "k8s_ref", None)  # set by kopf's per-object loggers
        if isinstance(ref, dict) and ref.get("name"):
            log_record.setdefault("namespace", ref.get("namespace"))
            log_record.setdefault("name", ref["name"])
        else:
            current = log_object.get()
            if current is not None:
                log_record.setdefault("namespace", current[0])
                log_record.setdefault("name", current[1])


def configure_logging(*, verbose: bool, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonLines(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "taskName", "k8s_skip", "k8s_ref", "settings"]))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

