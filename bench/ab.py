"""A/B of operator code trees in one control plane: creation, memory, restart.

    python -m bench.ab N NAME=SRC[+VAR=VALUE...] [NAME=SRC ...]

Each SRC is a `src/` directory (e.g. of a `git worktree` at another commit); its operator runs
with `PYTHONPATH=SRC` and the `VAR=VALUE`s given after it (settings, e.g.
`+ARTIFACT_OPERATOR_STATUS_SETTLE_SECONDS=0`), one after the other, each in a namespace of its
own of the same control plane, on N artifacts of the benchmark's mix. For each it prints the
creation time, the operator's CPU seconds, peak and current RSS and open sockets once all are
done, then the same after a restart pass. Read the pairs within one run: the machine is shared
and noisy.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.operator import OperatorProcess

from artifact_operator.kube.client import Kube

from .__main__ import (
    artifact,
    control_plane,
    cpu_seconds,
    create_artifacts,
    create_namespace,
    wait_done,
    wait_reconciled,
)


def process_facts(pid: int) -> dict[str, Any]:
    """CPU seconds, peak and current RSS (kB) and open sockets of a process."""
    facts: dict[str, Any] = {}
    facts["cpu_s"] = round(cpu_seconds(pid), 2)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            facts[key] = value.strip()
    fds = Path(f"/proc/{pid}/fd")
    facts["sockets"] = sum(1 for fd in fds.iterdir()
                           if os.readlink(fd).startswith("socket:"))
    return facts


async def one(kube: Kube, cp: ControlPlane, name: str, src: str, n: int,
              workdir: Path) -> None:
    namespace = f"{name}-{n}"
    await create_namespace(kube, namespace)
    src, *settings = src.split("+")
    env = {"ARTIFACT_OPERATOR_RESYNC_SECONDS": "3600", "PYTHONPATH": src,
           **dict(setting.split("=", 1) for setting in settings)}
    op = OperatorProcess(cp.kubeconfig, [namespace], workdir / f"{namespace}.log", env=env)
    op.start()
    assert op.proc is not None
    docs = [artifact(i) for i in range(n)]
    start = time.monotonic()
    await create_artifacts(kube, namespace, docs)
    created = await wait_done(kube, namespace, docs, timeout=max(120, n * 0.6)) - start
    await asyncio.sleep(5)  # the last status writes' echoes
    after_creation = process_facts(op.proc.pid)
    op.stop()
    start = time.monotonic()
    op = OperatorProcess(cp.kubeconfig, [namespace], workdir / f"{namespace}-restart.log",
                         env=env)
    op.start()
    assert op.proc is not None
    await wait_reconciled(op, n)
    restart = time.monotonic() - start
    after_restart = process_facts(op.proc.pid)
    op.stop()
    print(f"{name} N={n}: created in {created:.1f} s {after_creation}; "
          f"restart pass {restart:.2f} s {after_restart}", flush=True)


async def main_async(n: int, variants: list[tuple[str, str]], workdir: Path) -> None:
    async with control_plane("bench-ab") as (cp, kube):
        for name, src in variants:
            await one(kube, cp, name, src, n, workdir)


def main() -> None:
    if len(sys.argv) < 3 or not all("=" in v for v in sys.argv[2:]):
        sys.exit(__doc__)
    variants = [(v.split("=", 1)[0], v.split("=", 1)[1]) for v in sys.argv[2:]]
    workdir = Path("bench/results/ab")
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(int(sys.argv[1]), variants, workdir))


if __name__ == "__main__":
    main()
