"""The operator's churn capacity: the churn of tests/integration/test_churn.py at a series of
total rates, on one population, to find the rate it answers within the latency bound.

    python -m bench.churn [--artifacts 1000] [--clients 32] [--step 90] [--rates 10 20 30 40]

Starts its own control plane (as the tests do, with an audit log) and the operator as its own
process, creates the population, then for each rate runs the clients (`Churn`, paced by
`Pacer`) and the timed probe for `--step` seconds and prints one line: the operations offered,
the probe's latency p50/p99/max, reconciles a second, the spec changes waiting for a slot (the
operator's urgent lane, its largest value in each third of the step: flat or growing), the
API writes a second by client (audit log), and the load average. Between steps it waits
until every change is answered. Read with the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import config
from tests.conftest import Cluster, create_artifact, install_crd
from tests.integration import test_churn
from tests.integration.test_faults import OPERATOR_ENV, converged, create_all
from tests.support.controlplane import ControlPlane, default_assets
from tests.support.metrics import reconciles, scrape, value
from tests.support.operator import OperatorProcess
from tests.support.wait import wait_for


def waiting(proc: OperatorProcess) -> tuple[int, int]:
    samples = scrape(proc.metrics_port)
    return (int(value(samples, "artifact_operator_queue_waiting", lane="urgent")),
            int(value(samples, "artifact_operator_queue_waiting", lane="other")))


def answered(cluster: Cluster, namespace: str) -> bool:
    """Every artifact's spec answered in its status (the queue drained, whatever version of
    the operator runs: older ones have no queue gauge)."""
    items = cluster.custom.list_namespaced_custom_object(
        "workload.dev", "v1alpha1", namespace, "artifacts")["items"]
    return all((a.get("status") or {}).get("observedGeneration") == a["metadata"]["generation"]
               for a in items)


def writes_by_client(cp: ControlPlane, since: int) -> tuple[Counter[str], int]:
    """Write requests in the audit log after line `since`, by the client's user agent."""
    counts: Counter[str] = Counter()
    n = 0
    with open(cp.audit_log) as f:
        for n, line in enumerate(f, 1):
            if n > since:
                agent = json.loads(line).get("userAgent", "")
                counts[agent.split("/")[0] or "?"] += 1
    return counts, n


def step(cluster: Cluster, cp: ControlPlane, proc: OperatorProcess, namespace: str,
         rate: float, seconds: float, clients: int) -> dict[str, Any]:
    _, audit_at = writes_by_client(cp, 1 << 62)
    until = time.monotonic() + seconds
    churn = test_churn.Churn(cluster, namespace, until, rate)
    depth: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2):
            depth.append(waiting(proc)[0])

    sampler = threading.Thread(target=sample, daemon=True)
    threads = [threading.Thread(target=churn.client, args=(seed,), daemon=True)
               for seed in range(clients)]
    started, reconciled = time.monotonic(), reconciles(proc)
    sampler.start()
    for t in threads:
        t.start()
    latencies, _ = test_churn.probe_latencies(cluster, namespace, until, proc)
    for t in threads:
        t.join(timeout=60)
    done.set()
    sampler.join()
    elapsed = time.monotonic() - started
    writes, _ = writes_by_client(cp, audit_at)
    latencies.sort()
    ops = sum(churn.ops[op] for op in ("create", "update", "delete"))
    return {
        "rate": rate, "offered": round(ops / seconds, 1), "ops": churn.ops,
        "p50": round(latencies[len(latencies) // 2], 2),
        "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max": round(latencies[-1], 2), "probes": len(latencies),
        "reconciles_per_s": round((reconciles(proc) - reconciled) / elapsed, 1),
        "urgent_waiting_by_third": [max(depth[i * len(depth) // 3:(i + 1) * len(depth) // 3],
                                        default=0) for i in range(3)],
        "writes_per_s": {k: round(v / elapsed, 1) for k, v in writes.most_common()},
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.churn")
    parser.add_argument("--artifacts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--step", type=float, default=90, help="seconds per rate")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 30, 40],
                        help="total operations a second; 0: unbounded")
    parser.add_argument("--workdir", default="bench/results/logs")
    args = parser.parse_args()
    test_churn.ARTIFACTS = args.artifacts  # the clients pick among this many names

    assets = default_assets()
    assert assets is not None, "../shared/k8s/bin (or KUBEBUILDER_ASSETS) is needed"
    cp = ControlPlane(assets, audit=True)
    cp.start()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    proc: OperatorProcess | None = None
    try:
        api = config.new_client_from_config(str(cp.kubeconfig))
        install_crd(api)
        cluster = Cluster(cp.kubeconfig, api, cp)
        namespace = f"churn-{uuid.uuid4().hex[:6]}"
        cluster.core.create_namespace({"metadata": {"name": namespace}})
        proc = OperatorProcess(cp.kubeconfig, [namespace], workdir / "churn-operator.log",
                               env=OPERATOR_ENV).start()
        probe = test_churn.manifest(0)
        probe["metadata"]["name"] = "probe"
        create_artifact(cluster, namespace, probe)
        started = time.monotonic()
        create_all(cluster, namespace,
                   [test_churn.manifest(i) for i in range(args.artifacts)], args.clients)
        wait_for(converged(cluster, namespace), timeout=600, interval=1,
                 what="the population converged")
        print(f"{args.artifacts} artifacts converged in {time.monotonic() - started:.0f} s "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
        for rate in args.rates:
            print(json.dumps(step(cluster, cp, proc, namespace, rate, args.step,
                                  args.clients)), flush=True)
            wait_for(lambda: answered(cluster, namespace), timeout=900, interval=1,
                     what="every change answered")
    finally:
        if proc is not None:
            proc.stop()
        cp.stop()


if __name__ == "__main__":
    main()
