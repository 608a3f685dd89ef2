"""Issue #14's targets, judged from one run's results: what each asks, what the run measured,
and whether it was met.

Pure (results in, verdicts out), so that a saved run is judged the same way it was printed:
`python -m bench --report docs/benchmarks.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Issue #14 states memory in MB; the bench measures VmHWM in MiB.
MIB_PER_MB = 1e6 / 2**20


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    # None: the run lacks the sizes the target is stated at (e.g. `--sizes 100`).
    met: bool | None

    @property
    def word(self) -> str:
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


Result = dict[str, Any]

# What the scale curve compares per artifact, by name.
SCALE_KEYS = {"time": "ms_per_artifact", "memory": "mb_per_1000_artifacts"}


def scale(results: Iterable[Result]) -> dict[str, float]:
    """Per-artifact time and memory at the largest N over those at N=1000 (flat: ~1)."""
    by_n = {r["n"]: r for r in results}
    top = max(by_n, default=0)
    if 1000 not in by_n or top <= 1000:
        return {}
    return {f"{what}_per_artifact_{top}_over_1000": by_n[top][key] / by_n[1000][key]
            for what, key in SCALE_KEYS.items()}


def evaluate(results: Iterable[Result]) -> list[Verdict]:
    results = list(results)
    by_n = {r["n"]: r for r in results}
    sizes = sorted(by_n)
    at_1000 = by_n.get(1000)
    verdicts: list[Verdict] = []

    def at_n(target: str, key: str, show: Callable[[float], str],
             ok: Callable[[float], bool]) -> None:
        """A target stated at N=1000."""
        if at_1000 is None or key not in at_1000:
            verdicts.append(Verdict(target, "-", None))
            return
        verdicts.append(Verdict(target, show(at_1000[key]), ok(at_1000[key])))

    def every_n(target: str, keys: tuple[str, ...], fmt: str,
                ok: Callable[[Result], bool]) -> None:
        """A target that holds at every N of the run."""
        measured = [r for r in (by_n[n] for n in sizes) if all(k in r for k in keys)]
        if not measured:
            verdicts.append(Verdict(target, "-", None))
            return
        cells = " / ".join(fmt.format(*(r[k] for k in keys)) for r in measured)
        ns = "/".join(str(r["n"]) for r in measured)
        verdicts.append(Verdict(target, f"{cells} (N={ns})", all(ok(r) for r in measured)))

    def linear(target: str, key: str) -> None:
        """The N=1000 pass at most 12x the N=100 one: 10x the artifacts, not worse than
        linear with room for the fixed costs that dominate at N=100."""
        small, big = by_n.get(100), at_1000
        if small is None or big is None or key not in small or key not in big:
            verdicts.append(Verdict(target, "-", None))
            return
        ratio = big[key] / small[key]
        verdicts.append(Verdict(target, f"{big[key]:.1f} s / {small[key]:.1f} s = {ratio:.1f}x",
                                ratio <= 12))

    at_n("creation at N=1000: at most 1.5x the floor", "ratio_operator_to_floor", "{:.2f}x".format,
         lambda v: v <= 1.5)
    at_n("creation at N=1000: at most kcm's time per object (per artifact / per Deployment)",
         "ratio_operator_per_artifact_to_kcm_per_deployment", "{:.2f}x".format,
         lambda v: v <= 1)
    at_n("restart pass at N=1000: at most 5 s", "restart_pass_s", "{:.1f} s".format,
         lambda v: v <= 5)
    linear("restart pass: N=1000 at most 12x N=100", "restart_pass_s")
    at_n("leader takeover at N=1000: at most 5 s", "takeover_s", "{:.1f} s".format,
         lambda v: v <= 5)
    linear("leader takeover: N=1000 at most 12x N=100", "takeover_s")
    every_n("zero writes on restart and on takeover", ("restart_writes", "takeover_writes"),
            "{} and {}", lambda r: r["restart_writes"] == 0 and r["takeover_writes"] == 0)
    at_n("peak RSS at N=1000 under 120 MB", "peak_rss_mb",
         lambda v: f"{v:.0f} MiB = {v / MIB_PER_MB:.0f} MB", lambda v: v < 120 * MIB_PER_MB)
    top, ratios = max(sizes, default=0), scale(results)
    for what in SCALE_KEYS:
        target = f"scale: {what} per artifact flat from N=1000 to N=3000 (at most 1.3x)"
        ratio = ratios.get(f"{what}_per_artifact_{top}_over_1000")
        if ratio is None or top < 3000:
            verdicts.append(Verdict(target, "-", None))
            continue
        verdicts.append(Verdict(target, f"{ratio:.2f}x (N={top} over N=1000)", ratio <= 1.3))
    every_n("minimum writes per artifact (one per child, one status write)",
            ("operator_writes_per_artifact", "minimum_writes_per_artifact"), "{:.2f} of {:.2f}",
            # The audit counts are whole writes; per artifact they are exact to 1e-9.
            lambda r: r["operator_writes_per_artifact"]
            <= r["minimum_writes_per_artifact"] + 1e-9)
    every_n("zero idle writes", ("idle_writes",), "{}", lambda r: r["idle_writes"] == 0)
    every_n("update latency p99 under 1 s", ("update_p99_s",), "{:.3f} s",
            lambda r: r["update_p99_s"] < 1)
    return verdicts


def table(verdicts: Iterable[Verdict]) -> str:
    lines = ["| target (issue #14) | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | {v.word} |" for v in verdicts]
    return "\n".join(lines)
