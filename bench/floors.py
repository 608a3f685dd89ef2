"""The operator, the floor and kcm's phase, in turns, round after round in one control plane.

    python -m bench.floors N [ROUNDS] [--phases kcm,floor,creates,operator]

Each round runs the phases named (all four by default), each in a namespace of its own of
one control plane:

- `kcm`: kube-controller-manager's phase of the benchmark (the same Deployments created and
  synced);
- `floor`: the floor of the benchmark (create the Artifact, apply each child, patch the
  status once);
- `creates`: the same with each child created (POST) instead of applied;
- `operator`: the operator (`artifact-operator run`, as users run it, started before the
  clock) creating the N artifacts, until every one is observed with all its children, as in
  the benchmark.

Prints each one's time, its time per artifact against the round's kcm per Deployment, and
against the round's floor, and the CPU seconds the control plane's processes, this client and
the operator used in it; then, over the rounds, the operator's ratio to the floor of its own
round. The phases' order alternates from one round to the next, so that a machine that grows
quieter or busier over a run does not favour one side. Between the phases kcm is let catch up,
so that none pays for the one before. It answers how much of one run's operator / floor ratio
is the machine: read the rounds side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.support.operator import OperatorProcess

from .__main__ import (
    FLOOR_AGENT,
    CpuMeter,
    artifact,
    control_plane,
    create_artifacts,
    create_namespace,
    run_floor,
    run_kcm,
    wait_done,
    wait_kcm_caught_up,
)

PHASES = ("kcm", "floor", "creates", "operator")


async def main_async(n: int, rounds: int, phases: list[str], workdir: Path) -> None:
    async with control_plane(FLOOR_AGENT) as (cp, kube):
        docs = [artifact(i) for i in range(n)]
        timeout = max(120, n * 0.6)
        deployments = 0  # of kcm's phase

        # Each phase returns its time and the CPU seconds each process used in it.
        async def floor(ns: str) -> tuple[float, dict[str, float]]:
            meter = CpuMeter(cp, bench=os.getpid())
            return await run_floor(kube, ns, docs), meter.used()

        async def creates(ns: str) -> tuple[float, dict[str, float]]:
            meter = CpuMeter(cp, bench=os.getpid())
            return await run_floor(kube, ns, docs, creates=True), meter.used()

        async def kcm(ns: str) -> tuple[float, dict[str, float]]:
            nonlocal deployments
            meter = CpuMeter(cp, bench=os.getpid())
            seconds, deployments = await run_kcm(kube, ns, docs)
            return seconds, meter.used()

        async def operator(ns: str) -> tuple[float, dict[str, float]]:
            op = OperatorProcess(cp.kubeconfig, [ns], workdir / f"{ns}.log",
                                 env={"ARTIFACT_OPERATOR_RESYNC_SECONDS": "3600"}).start()
            assert op.proc is not None
            try:
                meter = CpuMeter(cp, bench=os.getpid(), operator=op.proc.pid)
                start = time.monotonic()
                await create_artifacts(kube, ns, docs)
                return await wait_done(kube, ns, docs, timeout=timeout) - start, meter.used()
            finally:
                op.stop()

        run: dict[str, Callable[[str], Awaitable[tuple[float, dict[str, float]]]]] = {
            "kcm": kcm, "floor": floor, "creates": creates, "operator": operator}
        ratios: list[float] = []
        for r in range(rounds):
            times: dict[str, float] = {}
            # kcm first (the others are read against it), then the rest in turns.
            rest = [p for p in phases if p != "kcm"]
            order = (["kcm"] if "kcm" in phases else []) + (rest if r % 2 == 0 else rest[::-1])
            for name in order:
                namespace = f"{name}-{r}"
                await create_namespace(kube, namespace)
                times[name], used = await run[name](namespace)
                await wait_kcm_caught_up(kube, namespace, timeout=timeout)
                print(f"round {r} {name}: {times[name]:.1f} s; CPU s {used}", flush=True)
            for name, seconds in times.items():
                against = []
                if "kcm" in times and name != "kcm":
                    against.append(f"{seconds / n / (times['kcm'] / deployments):.2f}x kcm "
                                   "per Deployment")
                if "floor" in times and name not in ("floor", "kcm"):
                    against.append(f"{seconds / times['floor']:.2f}x the floor")
                if against:
                    print(f"round {r} {name}: " + ", ".join(against), flush=True)
            if "operator" in times and "floor" in times:
                ratios.append(times["operator"] / times["floor"])
        if ratios:
            print(f"operator / floor over {len(ratios)} rounds: "
                  + " ".join(f"{x:.2f}x" for x in ratios)
                  + f"; median {statistics.median(ratios):.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int)
    parser.add_argument("rounds", type=int, nargs="?", default=2)
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, of {', '.join(PHASES)}")
    args = parser.parse_args()
    phases = args.phases.split(",")
    if not phases or any(p not in PHASES for p in phases):
        parser.error(f"--phases: each of {', '.join(PHASES)}")
    workdir = Path("bench/results/floors")
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.n, args.rounds, phases, workdir))


if __name__ == "__main__":
    main()
