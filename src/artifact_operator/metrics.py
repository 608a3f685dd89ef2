"""Prometheus metrics of the operator (served by app/observability.py when a metrics port is
set). A leaf module: every layer may count, it imports nothing of ours."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "artifact_operator_reconciles_total", "Reconciles of Artifacts by result.", ["result"])
RECONCILE_DURATION = Histogram(
    "artifact_operator_reconcile_duration_seconds", "Time one reconcile of an Artifact takes.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ARTIFACTS = Gauge(
    "artifact_operator_artifacts", "Artifacts by phase, as last reconciled.", ["phase"])
API_ERRORS = Counter(
    "artifact_operator_api_errors_total", "Failed Kubernetes API requests.", ["method", "code"])
WRITES = Counter(
    "artifact_operator_api_writes_total", "Write requests made to the API server.",
    ["verb", "kind"])
EVENTS_DROPPED = Counter(
    "artifact_operator_events_dropped_total",
    "Kubernetes Events not posted because the posting queue was full.")
QUEUE_WAITING = Gauge(
    "artifact_operator_queue_waiting",
    "Artifacts waiting for a reconcile slot, by lane (urgent: a spec change not yet answered).",
    ["lane"])
