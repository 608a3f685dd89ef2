"""The floor's writes as server-side applies, as creates, and kcm's phase, in turns.

    python -m bench.floors N [ROUNDS]

Each round, in one control plane and each in a namespace of its own: the floor of the
benchmark (create the Artifact, apply each child, patch the status once), the same with each
child created (POST) instead of applied, and kube-controller-manager's phase (the same
Deployments created and synced). Prints each one's time, its time per artifact against kcm's
per Deployment, and the CPU seconds the control plane's processes and this client used in
it. It answers whether server-side apply is what separates the floor from kcm. Between the
phases kcm is let catch up, so that none pays for the one before. Read the rounds side by
side: the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from .__main__ import (
    FLOOR_AGENT,
    CpuMeter,
    artifact,
    control_plane,
    create_namespace,
    run_floor,
    run_kcm,
    wait_kcm_caught_up,
)


async def main_async(n: int, rounds: int) -> None:
    async with control_plane(FLOOR_AGENT) as (cp, kube):
        docs = [artifact(i) for i in range(n)]
        kcm_per_deployment = 0.0  # of the round's kcm phase, which comes first

        async def applies(ns: str) -> tuple[float, int]:
            return await run_floor(kube, ns, docs), n

        async def creates(ns: str) -> tuple[float, int]:
            return await run_floor(kube, ns, docs, creates=True), n

        async def kcm(ns: str) -> tuple[float, int]:
            return await run_kcm(kube, ns, docs)

        phases: list[tuple[str, Callable[[str], Awaitable[tuple[float, int]]]]] = [
            ("kcm", kcm), ("floor-applies", applies), ("floor-creates", creates)]
        for r in range(rounds):
            for name, phase in phases:
                namespace = f"{name}-{r}"
                await create_namespace(kube, namespace)
                meter = CpuMeter(cp, bench=os.getpid())
                seconds, count = await phase(namespace)
                used = meter.used()
                await wait_kcm_caught_up(kube, namespace, timeout=max(120, n * 0.6))
                if name == "kcm":
                    kcm_per_deployment = seconds / count
                    against = ""
                else:
                    against = f", {seconds / n / kcm_per_deployment:.2f}x kcm per Deployment"
                print(f"round {r} {name}: {seconds:.1f} s{against}; CPU s {used}", flush=True)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    asyncio.run(main_async(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 2))


if __name__ == "__main__":
    main()
