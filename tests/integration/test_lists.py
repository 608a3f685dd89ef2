"""The operator's client takes a list in pages (kube/client.py LIST_PAGE), on the real API
server: the pages are one snapshot, and a watch from its resourceVersion sees what came after."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from artifact_operator.kube.client import Kube

from ..conftest import Cluster

pytestmark = pytest.mark.cluster

SELECTOR = "artifact-test/list=yes"


def secret(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={"artifact-test/list": "yes"}),
        string_data={"k": "v"}))


async def test_a_list_in_pages_is_one_snapshot_and_a_watch_resumes_after_it(
        cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        secret(cluster, namespace, f"s{i}")
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    kube = await Kube.connect()
    pages: list[tuple[list[str], str]] = []
    try:
        async for items, version in kube.list_pages("v1", "Secret", namespace, SELECTOR,
                                                    page=2):
            pages.append(([o["metadata"]["name"] for o in items], version))
            if len(pages) == 1:
                secret(cluster, namespace, "late")  # after the snapshot: not in its pages
        events: list[tuple[str, Any]] = []
        async for kind, obj in kube.watch("v1", "Secret", namespace, SELECTOR, pages[-1][1],
                                          timeout_seconds=5):
            events.append((kind, obj["metadata"].get("name")))
            if kind == "ADDED":
                break
    finally:
        await kube.close()
    assert [names for names, _ in pages] == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert len({version for _, version in pages}) == 1
    assert ("ADDED", "late") in events
