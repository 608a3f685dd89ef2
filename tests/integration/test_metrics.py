"""Health and metrics endpoints of a running operator, scraped as Prometheus and kubelet do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.builders import service_artifact
from ..support.metrics import get, scrape, value
from ..support.operator import OperatorProcess
from ..support.wait import wait_for

pytestmark = pytest.mark.cluster


def test_metrics_move_with_reconciles_and_probes_answer(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    assert get(operator.health_port, "/healthz") == (200, "ok\n")
    assert get(operator.health_port, "/readyz") == (200, "ok\n")
    before = scrape(operator.metrics_port)

    for name in ("m1", "m2", "m3"):
        create_artifact(cluster, namespace, service_artifact(name))
    for name in ("m1", "m2", "m3"):
        wait_for(lambda n=name: get_artifact(cluster, namespace, n).get("status", {})  # type: ignore[misc]
                 .get("phase"), timeout=30, what=f"status of {name}")

    def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        after = scrape(operator.metrics_port)
        ok = (value(after, "artifact_operator_reconciles_total", result="ok")
              - value(before, "artifact_operator_reconciles_total", result="ok"))
        assert ok >= 3, f"only {ok} successful reconciles counted"
        return after

    after = wait_for(moved, timeout=30, what="the reconcile counter to count 3 artifacts")
    count_delta = (value(after, "artifact_operator_reconcile_duration_seconds_count")
                   - value(before, "artifact_operator_reconcile_duration_seconds_count"))
    sum_delta = (value(after, "artifact_operator_reconcile_duration_seconds_sum")
                 - value(before, "artifact_operator_reconcile_duration_seconds_sum"))
    assert count_delta >= 3 and sum_delta > 0
    # Every reconcile lands in the +Inf bucket, and the finite buckets are cumulative.
    assert value(after, "artifact_operator_reconcile_duration_seconds_bucket", le="+Inf") == \
        value(after, "artifact_operator_reconcile_duration_seconds_count")
    phases = sum(v for (n, _), v in after.items() if n == "artifact_operator_artifacts")
    assert phases == 3, "each artifact is counted under exactly one phase"
    writes = (value(after, "artifact_operator_api_writes_total", verb="apply", kind="Deployment")
              - value(before, "artifact_operator_api_writes_total", verb="apply",
                      kind="Deployment"))
    assert writes == 3


def test_json_logs_name_the_artifact(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op.log",
                         args=["--log-format", "json", "--verbose"]) as op:
        create_artifact(cluster, namespace, service_artifact("good"))
        wait_for(lambda: get_artifact(cluster, namespace, "good").get("status"), timeout=30,
                 what="status of good")
        _, metrics_text = get(op.metrics_port, "/metrics")
    lines = [line for line in op.logs().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    assert "artifact_operator_reconciles_total" in metrics_text
    about_good = [r for r in records if r.get("name") == "good"]
    assert about_good and all(r["namespace"] == namespace for r in about_good)
