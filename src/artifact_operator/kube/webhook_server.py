"""kopf's webhook server with bounded per-request state. Here, in `kube`, because it speaks
HTTP (aiohttp), which only this layer does; `webhook/server.py` configures it."""

from __future__ import annotations

from typing import Any

import aiohttp.web
import kopf

# aiohttp's own limit on a request body (web.Application's client_max_size), which kopf's
# server keeps; a declared larger body is refused before it is read.
MAX_BODY = 1024 ** 2


class BoundedWebhookServer(kopf.WebhookServer):
    """kopf's server with a bound on requests in flight: past it, a request is refused at
    once (503, the API server's failurePolicy decides) instead of waiting in memory. With
    bodies bounded by MAX_BODY, a flood costs at most `max_in_flight * MAX_BODY`."""

    def __init__(self, *, max_in_flight: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_in_flight = max_in_flight
        self._in_flight = 0

    async def _serve(  # type: ignore[override]
            self, fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        if self._in_flight >= self.max_in_flight:
            raise aiohttp.web.HTTPServiceUnavailable(reason="too many admission requests")
        if (request.content_length or 0) > MAX_BODY:
            raise aiohttp.web.HTTPRequestEntityTooLarge(
                max_size=MAX_BODY, actual_size=request.content_length or 0)
        self._in_flight += 1  # one event loop: no lock needed between check and increment
        try:
            return await kopf.WebhookServer._serve(fn, request)
        finally:
            self._in_flight -= 1
