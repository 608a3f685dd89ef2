"""Reading a running operator's /metrics, for tests that wait for the operator to have
handled something (its reconcile counter moving) before they assert that nothing else
happened."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .operator import OperatorProcess
from .wait import until_ok

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
RECONCILES = "artifact_operator_reconciles_total"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def reconciles(operator: OperatorProcess, result: str | None = None) -> float:
    """Reconciles the operator process counted (of one `result`, or all)."""
    samples = scrape(operator.metrics_port)
    return sum(v for (name, labels), v in samples.items()
               if name == RECONCILES and (result is None or ("result", result) in labels))


def wait_reconciles(operator: OperatorProcess, at_least: float, *, result: str | None = None,
                    timeout: float = 60, what: str = "") -> float:
    """Wait until the operator has counted `at_least` reconciles (of `result`)."""
    def enough() -> float:
        got = reconciles(operator, result)
        assert got >= at_least, f"{got} reconciles counted"
        return got
    return until_ok(enough, timeout=timeout,
                    what=what or f"{at_least:.0f} reconciles{f' ({result})' if result else ''}")


def wait_artifacts_seen(operator: OperatorProcess, count: int, *, timeout: float = 60) -> int:
    """Wait until the operator has reconciled `count` distinct artifacts through to their
    status (`artifact_operator_artifacts` counts each by its phase, once)."""
    def seen() -> int:
        samples = scrape(operator.metrics_port)
        got = int(sum(v for (name, _), v in samples.items()
                      if name == "artifact_operator_artifacts"))
        assert got >= count, f"{got} artifacts reconciled"
        return got
    return until_ok(seen, timeout=timeout, what=f"{count} artifacts reconciled")
