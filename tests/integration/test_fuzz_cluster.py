"""A sample of the property-based Artifacts (tests/unit/test_fuzz.py) applied to the real
control plane with the operator running: the API server stores or refuses each (naming the
field), the operator never crashes or stalls, an artifact beside them keeps reconciling, and
each invalid one ends `Failed` with exactly the violations `validate` gives."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from kubernetes import client

from artifact_operator.api.validation import InvalidArtifact, parse

from ..conftest import Cluster, create_artifact, get_artifact, patch_artifact
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.schema_strategy import from_schema
from ..support.wait import wait_for
from ..unit.test_fuzz import SPEC, document

pytestmark = pytest.mark.cluster

SAMPLE = 30


def reconciled(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = get_artifact(cluster, namespace, name)
    status = body.get("status") or {}
    assert status.get("observedGeneration") == body["metadata"]["generation"], status
    return dict(status)


@pytest.mark.timeout(900)
def test_a_sample_of_fuzzed_artifacts_on_the_cluster(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    names = (f"fuzz-{k}" for k in itertools.count())
    outcomes = {"refused by the API server": 0, "Failed": 0, "accepted": 0}
    try:
        create_artifact(cluster, namespace, service_artifact("canary"))

        @seed(20261130)  # the same sample every run
        @settings(max_examples=SAMPLE, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(spec=from_schema(SPEC))
        def one(spec: dict[str, Any]) -> None:
            name = next(names)
            doc = document(name, spec)
            manifest = {k: doc[k] for k in ("apiVersion", "kind", "spec")}
            manifest["metadata"] = {"name": name}
            try:
                create_artifact(cluster, namespace, manifest)
            except client.ApiException as exc:
                assert exc.status == 422 and "spec." in (exc.body or ""), exc.body
                outcomes["refused by the API server"] += 1
                return
            status = wait_for(lambda: reconciled(cluster, namespace, name), timeout=60,
                              what=f"{name} reconciled")
            try:
                parse(doc)
            except InvalidArtifact as exc:
                ready = next(c for c in status["conditions"] if c["type"] == "Ready")
                assert (status["phase"], ready["reason"]) == ("Failed", "InvalidSpec"), status
                assert ready["message"] == str(exc)
                outcomes["Failed"] += 1
                return
            assert status["phase"] != "Failed", status
            outcomes["accepted"] += 1

        one()
        assert proc.running, proc.logs()[-3000:]
        patch_artifact(cluster, namespace, "canary", {"spec": {"description": "still here"}})
        wait_for(lambda: reconciled(cluster, namespace, "canary"), timeout=30,
                 what="the canary reconciled after the sample")
        print(f"{SAMPLE} fuzzed artifacts: {outcomes}")
        assert outcomes["Failed"] and outcomes["accepted"], outcomes
    finally:
        proc.stop()
