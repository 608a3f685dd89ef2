"""Which optional APIs the server serves (logic/served.py): the Gateway API's HTTPRoute for
`runtime.<group>.expose.httpRoute`, the Prometheus Operator's ServiceMonitor for
`runtime.<group>.metrics`. Asked at start, like the HPA's version (controller/autoscalers.py);
while one is missing, asked again every `Settings.api_discovery_seconds`, so installing its
CRDs later takes no restart: `changed` then starts the watch of the new kind and renders it
(app/context.py). The build engine is asked again the same way (`ask_until`; auto mode on
the Job fallback: controller/builds.py `Builds.take_up_shipwright`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.logic.served import OPTIONAL, ServedApis

log = logging.getLogger(__name__)


async def served_version(kube: Kube, kind: str) -> str | None:
    """The newest version of an optional kind the server serves; None for none."""
    plural, versions = OPTIONAL[kind]
    for version in versions:
        if await kube.serves(version, plural):
            return version
    return None


async def served_apis(kube: Kube) -> ServedApis:
    return ServedApis(http_route=await served_version(kube, "HTTPRoute"),
                      service_monitor=await served_version(kube, "ServiceMonitor"))


async def ask_until(interval: float, ask: Callable[[], Awaitable[bool]], what: str) -> None:
    """Call `ask` every `interval` seconds until it says it is done (True). A failure (of
    the question, or of taking up the answer) is logged, and asked again."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await ask():
                return
        except ApiError as exc:
            log.warning("%s failed, asking again: %s", what, exc)
        except Exception:
            log.exception("%s failed; asking again", what)


async def discover_forever(kube: Kube, current: ServedApis, interval: float,
                           changed: Callable[[ServedApis], Awaitable[None]]) -> None:
    """Ask again every `interval` seconds until every optional API is served; call `changed`
    with what is served whenever more is. An API that goes away is not noticed (its watch
    then fails and retries, logging why): removing a CRD the operator uses takes a restart."""

    async def ask() -> bool:
        nonlocal current
        found = await served_apis(kube)
        more = ServedApis(http_route=current.http_route or found.http_route,
                          service_monitor=current.service_monitor or found.service_monitor)
        if more != current:
            log.info("now served: %s", ", ".join(f"{kind} ({version})" for version, kind
                                                 in more.kinds() if (version, kind)
                                                 not in current.kinds()))
            await changed(more)  # if it fails, asked again
            current = more
        return current.complete

    if not current.complete:
        await ask_until(interval, ask, "asking which optional APIs are served (and watching "
                        "the newly served ones)")
