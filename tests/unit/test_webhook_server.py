"""The webhook server's bounds on per-request state: requests in flight, and body size."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp.web
import pytest
from aiohttp.test_utils import make_mocked_request

from artifact_operator.kube.webhook_server import MAX_BODY, BoundedWebhookServer


def request(length: int = 2) -> aiohttp.web.Request:
    return make_mocked_request("POST", "/validate-artifact",
                               headers={"Content-Length": str(length)},
                               match_info={"id": "validate-artifact"})


async def test_requests_past_the_bound_are_refused_at_once_and_served_again_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = BoundedWebhookServer(max_in_flight=1, insecure=True)
    release = asyncio.Event()

    async def slow(*_: Any, **__: Any) -> dict[str, Any]:
        await release.wait()
        return {"ok": True}

    async def text(self: Any) -> str:
        return "{}"

    monkeypatch.setattr(aiohttp.web.Request, "text", text)  # a mocked request has no body
    first = asyncio.create_task(server._serve(slow, request()))
    await asyncio.sleep(0)  # the first request is now in flight
    with pytest.raises(aiohttp.web.HTTPServiceUnavailable):
        await server._serve(slow, request())
    release.set()
    assert (await first).status == 200
    assert (await server._serve(slow, request())).status == 200


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read() -> None:
    server = BoundedWebhookServer(max_in_flight=4, insecure=True)

    async def never(*_: Any, **__: Any) -> dict[str, Any]:
        raise AssertionError("must not be called")

    with pytest.raises(aiohttp.web.HTTPRequestEntityTooLarge):
        await server._serve(never, request(MAX_BODY + 1))
