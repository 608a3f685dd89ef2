"""EventRecorder: one Event per artifact, type and reason within a reconcile's batch."""

from __future__ import annotations

import asyncio
from typing import Any

from artifact_operator.kube.events import MESSAGE_LIMIT, EventRecorder, merged


class _Kube:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj


def _artifact(name: str) -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"}}


def _posted(kube: _Kube) -> list[tuple[str, str, str, str]]:
    return sorted((e["involvedObject"]["name"], e["type"], e["reason"], e["message"])
                  for e in kube.created)


async def test_a_batch_posts_one_event_per_artifact_type_and_reason() -> None:
    kube = _Kube()
    events = EventRecorder(kube)  # type: ignore[arg-type]
    web = _artifact("web")
    with events.batch():
        events.post(web, "Normal", "Created", "Created Deployment web-api")
        events.post(web, "Normal", "Created", "Created Service web-api")
        events.post(web, "Normal", "Deleted", "Deleted Deployment web-old")
        events.post(web, "Warning", "ApplyFailed", "Service web-x was rejected: a, b")
        events.post(web, "Warning", "ApplyFailed", "Ingress web-y was rejected")
        assert kube.created == []  # nothing leaves before the batch ends
    await events.drain()
    assert _posted(kube) == [
        ("web", "Normal", "Created", "Created Deployment web-api, Service web-api"),
        ("web", "Normal", "Deleted", "Deleted Deployment web-old"),
        ("web", "Warning", "ApplyFailed",
         "Service web-x was rejected: a, b; Ingress web-y was rejected")]


async def test_concurrent_batches_keep_their_artifacts_apart_and_posts_outside_go_alone() -> None:
    kube = _Kube()
    events = EventRecorder(kube)  # type: ignore[arg-type]
    both_posted = asyncio.Barrier(2)

    async def reconcile(name: str) -> None:
        with events.batch():
            events.post(_artifact(name), "Normal", "Created", f"Created Deployment {name}-api")
            await both_posted.wait()  # interleaved: each batch is its own task's
            events.post(_artifact(name), "Normal", "Created", f"Created Service {name}-api")

    await asyncio.gather(reconcile("a"), reconcile("b"))
    events.post(_artifact("a"), "Normal", "Deleted", "Deleted Service a-api")
    events.post(_artifact("a"), "Normal", "Deleted", "Deleted Deployment a-api")
    await events.drain()
    assert _posted(kube) == [
        ("a", "Normal", "Created", "Created Deployment a-api, Service a-api"),
        ("a", "Normal", "Deleted", "Deleted Deployment a-api"),
        ("a", "Normal", "Deleted", "Deleted Service a-api"),
        ("b", "Normal", "Created", "Created Deployment b-api, Service b-api")]


async def test_a_batch_left_by_an_exception_still_posts() -> None:
    kube = _Kube()
    events = EventRecorder(kube)  # type: ignore[arg-type]
    try:
        with events.batch():
            events.post(_artifact("web"), "Normal", "Created", "Created Deployment web-api")
            raise RuntimeError("the reconcile failed after a write")
    except RuntimeError:
        pass
    await events.drain()
    assert _posted(kube) == [("web", "Normal", "Created", "Created Deployment web-api")]


def test_a_merged_message_keeps_to_the_api_servers_limit() -> None:
    names = [f"Created Deployment artifact-with-a-long-name-{i:03d}" for i in range(100)]
    text = merged("Created", names)
    assert len(text) == MESSAGE_LIMIT and text.endswith("...")
    assert text.startswith("Created Deployment artifact-with-a-long-name-000, Deployment ")
