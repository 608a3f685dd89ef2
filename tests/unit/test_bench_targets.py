"""The benchmark's verdicts on issue #14's targets (bench/targets.py), and the saved run in
docs/benchmarks.json judged as its table says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench import targets

DOCS_RUN = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.json"


def run(n: int, **overrides: Any) -> dict[str, Any]:
    """One size's results, every target met (times per artifact flat from 1000 up)."""
    result: dict[str, Any] = {
        "n": n, "ratio_operator_to_floor": 1.2,
        "ratio_operator_per_artifact_to_kcm_per_deployment": 0.9,
        "restart_pass_s": 0.5 + n / 400, "restart_writes": 0, "takeover_s": n / 1000,
        "takeover_writes": 0, "peak_rss_mb": 60 + n / 50, "ms_per_artifact": 30.0,
        "mb_per_1000_artifacts": 20.0, "operator_writes_per_artifact": 3.75,
        "minimum_writes_per_artifact": 3.75, "idle_writes": 0, "update_p99_s": 0.4}
    result.update(overrides)
    return result


def verdicts(*results: dict[str, Any]) -> dict[str, targets.Verdict]:
    return {v.target: v for v in targets.evaluate(results)}


def test_a_run_that_meets_every_target_is_judged_met_throughout() -> None:
    judged = verdicts(run(100), run(1000), run(3000))
    assert len(judged) == 13
    assert {v.met for v in judged.values()} == {True}


@pytest.mark.parametrize(("n", "overrides", "target"), [
    (1000, {"ratio_operator_to_floor": 1.51}, "creation at N=1000: at most 1.5x the floor"),
    (1000, {"restart_pass_s": 5.1}, "restart pass at N=1000: at most 5 s"),
    # 10x the artifacts and 16x the time: superlinear, even within 5 s.
    (100, {"restart_pass_s": 0.19}, "restart pass: N=1000 at most 12x N=100"),
    (3000, {"takeover_writes": 1}, "zero writes on restart and on takeover"),
    # 114.4 MiB is 120 MB.
    (1000, {"peak_rss_mb": 114.5}, "peak RSS at N=1000 under 120 MB"),
    (3000, {"ms_per_artifact": 39.1},
     "scale: time per artifact flat from N=1000 to N=3000 (at most 1.3x)"),
    (100, {"operator_writes_per_artifact": 3.76},
     "minimum writes per artifact (one per child, one status write)"),
    (1000, {"idle_writes": 1}, "zero idle writes"),
    (3000, {"update_p99_s": 1.0}, "update latency p99 under 1 s"),
])
def test_each_target_is_missed_by_a_run_just_past_it(
        n: int, overrides: dict[str, Any], target: str) -> None:
    sizes = {size: run(size, **(overrides if size == n else {})) for size in (100, 1000, 3000)}
    judged = verdicts(*sizes.values())
    assert judged[target].met is False
    assert [t for t, v in judged.items() if v.met is False] == [target]


def test_targets_at_sizes_the_run_lacks_are_not_measured_rather_than_met() -> None:
    judged = verdicts(run(100))
    assert judged["creation at N=1000: at most 1.5x the floor"].met is None
    assert judged["restart pass: N=1000 at most 12x N=100"].met is None
    assert judged["scale: memory per artifact flat from N=1000 to N=3000 (at most 1.3x)"
                  ].met is None
    assert judged["zero idle writes"].met is True
    assert "| not measured |" in targets.table(judged.values())


def test_the_documented_run_carries_the_verdicts_of_its_own_results() -> None:
    """docs/benchmarks.json is the run docs/benchmarks.md reports: its stored verdicts are
    what its results say, so neither is edited apart from the other."""
    report = json.loads(DOCS_RUN.read_text())
    stored = [targets.Verdict(**v) for v in report["targets"]]
    assert stored == targets.evaluate(report["results"])
