"""The builds in a build namespace are deleted only when the API server says their artifact is
gone: a 404, or another object of the same name (another uid); never in doubt (an error), and
only those of the artifacts asked about."""

from __future__ import annotations

import asyncio
from typing import Any

from artifact_operator.controller.build_gc import BuildCollector, owner_of

from ..support.fake_kube import FakeKube


class _Watch:
    """The collector reads only `all()` and `synced` of its ListWatch."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        self.synced = asyncio.Event()
        self.synced.set()

    def all(self) -> list[dict[str, Any]]:
        return list(self.fake.of_kind("Job"))


def _job(name: str, artifact: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": name, "namespace": "builds", "labels": {
            "workload.dev/artifact": artifact, "workload.dev/artifact-namespace": "team-a",
            "workload.dev/artifact-uid": uid}}, "spec": {}}


def _artifact(name: str) -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name, "namespace": "team-a"}, "spec": {}}


def _collector(fake: FakeKube) -> BuildCollector:
    return BuildCollector(fake.as_kube(), _Watch(fake), lambda: True, 600)  # type: ignore[arg-type]


def test_owner_of_reads_the_labels() -> None:
    assert owner_of(_job("b", "shop", "u1")) == (("team-a", "shop"), "u1")
    assert owner_of({"metadata": {"labels": {"workload.dev/artifact": "shop"}}}) is None


async def test_only_the_builds_of_gone_artifacts_are_deleted() -> None:
    fake = FakeKube()
    live = fake.seed(_artifact("live"))
    renamed = fake.seed(_artifact("again"))  # the same name, re-created: another uid
    fake.seed(_job("live-build-1", "live", live["metadata"]["uid"]))
    fake.seed(_job("again-build-1", "again", "the-old-uid"))
    fake.seed(_job("gone-build-1", "gone", "u-gone"))
    assert renamed["metadata"]["uid"] != "the-old-uid"
    collector = _collector(fake)
    # Asked about one artifact: only its builds are looked at.
    assert await collector.collect({("team-a", "gone")}) == 1
    assert {o["metadata"]["name"] for o in fake.of_kind("Job")} == {"live-build-1",
                                                                     "again-build-1"}
    # All of them: the re-created artifact's old build goes, the live one's stays.
    assert await collector.collect() == 1
    assert [o["metadata"]["name"] for o in fake.of_kind("Job")] == ["live-build-1"]


async def test_in_doubt_a_build_is_kept() -> None:
    fake = FakeKube()
    fake.seed(_job("gone-build-1", "gone", "u-gone"))
    fake.fail("get", "Artifact", 500, "etcd is away")
    assert await _collector(fake).collect() == 0
    assert len(fake.of_kind("Job")) == 1

