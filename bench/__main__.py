"""Benchmark: artifact-operator against the floor and kube-controller-manager, in one run.

    python -m bench [--sizes 100 1000 3000] [--idle-seconds 60] [--updates 100] [--json PATH]
    python -m bench --report PATH    # a saved run's tables again, its targets judged

Starts its own control plane (../shared/k8s or KUBEBUILDER_ASSETS) with an audit log, then for
each N measures, on the same machine and in the same run:

- operator: N Artifacts (half with two groups, a quarter nim) created at once, until every one
  has observedGeneration == generation and all its children exist (watched, not polled:
  the instrument must not load the API server the operator shares);
- floor: a bare async client making exactly the writes the operator makes for the same N
  Artifacts (create the Artifact, apply each child, patch status once), same concurrency;
- kcm: kube-controller-manager's Deployment controller turning the same number of Deployments
  into ReplicaSets with status (its client limits raised, flags reported), watched the same
  way; and the floor's time per artifact against it, for reference;
- writes per artifact (audit log, by user agent), idle writes over a quiet minute and during a
  restart, update latency p50/p99 (and, as its peer, kcm's time to the first pod of the
  changed template, which the status waits for), and the operator's peak RSS;
- a leader takeover: two replicas with leader election, the leader stopped, until the standby
  has reconciled every artifact (and the writes it made, the Lease aside);
- the scale curve: time and memory per artifact at each N, and their ratio from 1000 to 3000;
- the CPU seconds kube-apiserver (and etcd, kcm, the operator) used in each phase: on cores
  they share, where each phase's time went. Between phases kcm is let catch up, so that no
  phase pays for the Deployments of the one before.

Then each of issue #14's targets, what the run measured for it and whether it was met
(bench/targets.py).

Ratios are what to read: the machine is shared and noisy, absolute seconds are not comparable
across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import platform
import signal
import statistics
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane, default_assets
from tests.support.operator import OperatorProcess

from artifact_operator.api import naming
from artifact_operator.api.crd import build_approval_crd, build_crd
from artifact_operator.api.validation import parse
from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.kube.kinds import KINDS
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from . import targets

REPO = Path(__file__).resolve().parent.parent
KCM_FLAGS = ["--kube-api-qps=1000", "--kube-api-burst=2000",
             "--concurrent-deployment-syncs=50", "--concurrent-replicaset-syncs=50"]
FLOOR_AGENT = "bench-floor"
CONCURRENCY = 50  # client-side concurrency of the bench's own writers (floor and creation)


def artifact(i: int) -> dict[str, Any]:
    """Half the artifacts have two groups, a quarter are nim (dedicated claims)."""
    name = f"a{i:05d}"
    groups: list[dict[str, Any]] = [{"name": "api", "containers": [
        {"name": "app", "imageUri": f"registry.example/app:{i % 7}", "primary": True,
         "port": 8080, "readinessProbe": {"path": "/ready"},
         "environmentVars": [{"name": "MODE", "value": "bench"}]}]}]
    if i % 2 == 0:  # half have two groups; nim artifacts (odd i) have one
        groups.append({"name": "worker", "containers": [
            {"name": "worker", "imageUri": "registry.example/worker:1"}]})
    spec: dict[str, Any] = {"containerGroups": groups}
    if i % 4 == 3:
        spec["type"] = "nim"
        spec["storage"] = {"mode": "dedicatedPvc", "pvcSize": "10Gi"}
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name}, "spec": spec}


def expected_children(doc: dict[str, Any], namespace: str) -> list[tuple[str, str]]:
    body = json.loads(json.dumps(doc))
    body["metadata"].update(namespace=namespace, uid="00000000-0000-0000-0000-000000000000")
    return [(o["kind"], o["metadata"]["name"])
            for o in render(parse(body), Settings()).objects]


async def gather_limited(coros: list[Any], limit: int = CONCURRENCY) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def create_artifacts(kube: Kube, namespace: str, docs: list[dict[str, Any]]) -> None:
    """POST the artifacts `docs` into `namespace`, CONCURRENCY at a time."""
    await gather_limited([kube.request(
        "POST", f"/apis/workload.dev/v1alpha1/namespaces/{namespace}/artifacts",
        body={**d, "metadata": {**d["metadata"], "namespace": namespace}}) for d in docs])


async def install_crds(kube: Kube) -> None:
    """Both CRDs of an install (Artifact, ArtifactApproval), once established."""
    for crd in (build_crd(), build_approval_crd()):
        await kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                           body=crd)
    for crd in (build_crd(), build_approval_crd()):
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        for _ in range(300):
            got = await kube.request("GET", path) or {}
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   # A CRD just created may show `conditions: null`.
                   for c in (got.get("status") or {}).get("conditions") or []):
                break
            await asyncio.sleep(0.1)


async def create_namespace(kube: Kube, name: str) -> None:
    await kube.request("POST", "/api/v1/namespaces",
                       body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def wait_done(kube: Kube, namespace: str, docs: list[dict[str, Any]],
                    timeout: float) -> float:
    """The time every artifact was observed (`status.observedGeneration == generation`) with
    all its children present.

    The children are listed once every artifact is observed (the operator writes the status
    after applying them), and again until all are there.
    """
    want = {d["metadata"]["name"]: set(expected_children(d, namespace)) for d in docs}

    async def done() -> float:
        last = await watch_until(kube, "workload.dev/v1alpha1", "Artifact", namespace,
                                 set(want), observed)
        while True:
            have: set[tuple[str, str]] = set()
            for kind, api_version in (("Deployment", "apps/v1"), ("Service", "v1"),
                                      ("PersistentVolumeClaim", "v1")):
                have |= {(kind, o["metadata"]["name"])
                         for o in await kube.list(api_version, kind, namespace)}
            if all(kids <= have for kids in want.values()):
                return last
            await asyncio.sleep(0.25)
            last = time.monotonic()

    return await asyncio.wait_for(done(), timeout)


def observed(obj: dict[str, Any]) -> bool:
    return bool(obj.get("status", {}).get("observedGeneration") ==
                obj["metadata"].get("generation"))


async def list_all(kube: Kube, api_version: str, kind: str, namespace: str
                   ) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    version = ""
    async for page, page_version in kube.list_pages(api_version, kind, namespace, ""):
        items.extend(page)
        version = page_version
    return items, version


async def watch_until(kube: Kube, api_version: str, kind: str, namespace: str,
                      names: set[str] | None, done: Callable[[dict[str, Any]], bool]) -> float:
    """The time each of `names` (None: each object the first list has) was last seen turning
    `done`: a list, then a watch.

    Each phase's end is watched, as any client would, not polled: a list of 1000 artifacts
    and of their 2750 children every 0.25 s loaded the API server the operator under test
    shares (the operator took 53-58 s against 36-39 s when watched, in turns, in one control
    plane), while the floor, which waits on nothing, paid none of it.
    """
    items, rv = await list_all(kube, api_version, kind, namespace)
    wanted = names if names is not None else {o["metadata"]["name"] for o in items}

    def listed(items: list[dict[str, Any]]) -> set[str]:
        return {o["metadata"]["name"] for o in items if done(o)} & wanted

    seen, last = listed(items), time.monotonic()
    while len(seen) < len(wanted):
        try:
            async with contextlib.aclosing(
                    kube.watch(api_version, kind, namespace, "", rv)) as events:
                async for event, obj in events:
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    name = obj.get("metadata", {}).get("name")
                    if event == "BOOKMARK" or name not in wanted:
                        continue
                    if event != "DELETED" and done(obj):
                        if name not in seen:
                            seen.add(name)
                            last = time.monotonic()
                    else:
                        seen.discard(name)
                    if len(seen) == len(wanted):
                        break
        except ApiError as exc:
            if exc.status != 410:  # too old: list again
                raise
            items, rv = await list_all(kube, api_version, kind, namespace)
            seen, last = listed(items), time.monotonic()
    return last


def caught_up(obj: dict[str, Any]) -> bool:
    """kube-controller-manager has observed the Deployment and made its pods."""
    status = obj.get("status", {})
    return observed(obj) and status.get("updatedReplicas", 0) >= obj["spec"].get("replicas", 1)


async def wait_kcm_caught_up(kube: Kube, namespace: str, timeout: float) -> None:
    """Until kube-controller-manager has made the pods of every Deployment in `namespace`."""
    await asyncio.wait_for(
        watch_until(kube, "apps/v1", "Deployment", namespace, None, caught_up), timeout)


def audit_writes(cp: ControlPlane, since: int, agent_prefix: str) -> Counter[str]:
    """Write requests in the audit log after line `since`, by the given client, by kind."""
    counts: Counter[str] = Counter()
    with open(cp.audit_log) as f:
        for i, line in enumerate(f):
            if i < since:
                continue
            e = json.loads(line)
            if not e.get("userAgent", "").startswith(agent_prefix):
                continue
            ref = e.get("objectRef", {})
            res = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource")
                                              else "")
            counts[f"{e['verb']} {res}"] += 1
    return counts


def audit_lines(cp: ControlPlane) -> int:
    if not cp.audit_log.exists():
        return 0
    with open(cp.audit_log) as f:
        return sum(1 for _ in f)


async def run_floor(kube: Kube, namespace: str, docs: list[dict[str, Any]], *,
                    creates: bool = False) -> float:
    """The same writes the operator makes, by a bare client: create the artifact, apply each
    child, patch the status once. With `creates`, each child is created (POST) instead of
    applied: what server-side apply costs (`python -m bench.floors`)."""
    settings = Settings()

    async def one(doc: dict[str, Any]) -> None:
        created = await kube.create({**doc, "metadata": {**doc["metadata"],
                                                         "namespace": namespace}})
        for obj in render(parse(created), settings).objects:
            if creates or obj["kind"] == "Secret":
                await kube.create(obj)
            else:
                await kube.apply(obj)
        await kube.patch(created, {"status": {"observedGeneration": created["metadata"][
            "generation"], "phase": "Progressing"}}, subresource="status")

    start = time.monotonic()
    await gather_limited([one(d) for d in docs])
    return time.monotonic() - start


async def run_kcm(kube: Kube, namespace: str, docs: list[dict[str, Any]]) -> tuple[float, int]:
    """kube-controller-manager's Deployment controller: N Deployments until each has a
    ReplicaSet and observedGeneration == generation."""
    deployments = []
    for doc in docs:
        body = json.loads(json.dumps(doc))
        body["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
        for obj in render(parse(body), Settings()).objects:
            if obj["kind"] == "Deployment":
                obj["metadata"].pop("ownerReferences", None)
                deployments.append(obj)
    start = time.monotonic()
    await gather_limited([kube.create(d) for d in deployments])
    names = {d["metadata"]["name"] for d in deployments}
    # A new Deployment's first sync creates its ReplicaSet before it writes observedGeneration;
    # the ReplicaSets are still checked.
    last = await watch_until(kube, "apps/v1", "Deployment", namespace, names, observed)
    while True:
        rs = await kube.request("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets")
        owners = {ref["name"] for r in (rs or {}).get("items", [])
                  for ref in r["metadata"].get("ownerReferences", [])}
        if names <= owners:
            return last - start, len(names)
        await asyncio.sleep(0.25)
        last = time.monotonic()


def reconciles(op: OperatorProcess) -> float:
    """Reconciles the operator has run so far, from its own /metrics."""
    with urllib.request.urlopen(
            f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("artifact_operator_reconciles_total{"))


async def wait_reconciled(op: OperatorProcess, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while reconciles(op) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the operator ran fewer than {count} reconciles")
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of the control plane's processes (and others named) over a phase: which
    process a phase's time went to, on the cores they all share."""

    def __init__(self, cp: ControlPlane, **others: int) -> None:
        self.pids = {name: p.pid for name, p in cp.processes.items()} | others
        self.start = self.now()

    def now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def used(self) -> dict[str, float]:
        return {name: round(t - self.start[name], 1) for name, t in self.now().items()}


def rss_mb(pid: int, field: str) -> float:
    """VmHWM (the peak) or VmRSS (now) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    return rss_mb(pid, "VmHWM")


async def measure_takeover(cp: ControlPlane, namespace: str, n: int, env: dict[str, str],
                           workdir: Path, args: argparse.Namespace,
                           result: dict[str, Any]) -> OperatorProcess:
    """A leader takeover: two replicas with leader election, the standby's watches warm; the
    leader is stopped (SIGTERM, as a rolling upgrade does), and the time runs until the
    standby has reconciled every artifact once. Returns the new leader, running."""
    election = ["--leader-election", "--leader-election-namespace", namespace]
    leader = OperatorProcess(cp.kubeconfig, [namespace], workdir / f"operator-{n}-leader.log",
                             env={**env, "POD_NAME": "leader"}, args=election).start()
    await wait_reconciled(leader, n)  # it leads (no lease was held)
    standby = OperatorProcess(cp.kubeconfig, [namespace], workdir / f"operator-{n}-standby.log",
                              env={**env, "POD_NAME": "standby"}, args=election).start()
    try:
        await asyncio.sleep(args.restart_quiet_seconds)  # the standby lists and watches
        if reconciles(standby):
            raise RuntimeError("the standby reconciled while the leader held the lease")
        before = audit_lines(cp)
        start = time.monotonic()
        assert leader.proc is not None
        os.killpg(leader.proc.pid, signal.SIGTERM)  # and go on while it shuts down
        await wait_reconciled(standby, n)
        result["takeover_s"] = time.monotonic() - start
        await asyncio.sleep(args.restart_quiet_seconds)
        writes = audit_writes(cp, before, "artifact-operator/")
        result["takeover_writes"] = sum(v for k, v in writes.items() if "leases" not in k)
    except BaseException:
        standby.stop()
        raise
    finally:
        leader.stop()
    return standby


class Timeline:
    """Each watch event of one object, with the time it arrived: when a step of a rollout
    happened, without polling for it."""

    def __init__(self, kube: Kube, api_version: str, kind: str, namespace: str,
                 name: str) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(
            self._watch(kube, api_version, kind, namespace, f"metadata.name={name}"))

    async def _watch(self, kube: Kube, api_version: str, kind: str, namespace: str,
                     selector: str) -> None:
        listed = await kube.request("GET", KINDS[(api_version, kind)].path(namespace),
                                    query=[("fieldSelector", selector)])
        rv = str((listed or {}).get("metadata", {}).get("resourceVersion", ""))
        while True:
            async for event, obj in kube.watch(api_version, kind, namespace, "", rv,
                                               field_selector=selector):
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if event != "BOOKMARK":
                    self.events.append((time.monotonic(), obj))
                    self.arrived.set()

    async def first(self, since: float, done: Callable[[dict[str, Any]], bool],
                    timeout: float = 60) -> float:
        """When the first event after `since` that is `done` arrived."""
        async def wait() -> float:
            while True:
                for at, obj in self.events:
                    if at >= since and done(obj):
                        return at
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(wait(), timeout)

    def close(self) -> None:
        self.task.cancel()


async def update_latencies(kube: Kube, namespace: str, name: str, count: int
                           ) -> tuple[list[float], list[float]]:
    """Each update's latency (the env of group `api` changed, until the status acknowledges
    the generation), and, as its peer, kcm's: from the same patch until the Deployment
    controller reported the first pod of the new template. The status waits for that pod
    (the settle hold, at most `status_settle_seconds`), so kcm's part is inside ours."""
    api = naming.group_object_name(name, "api")
    deployment = Timeline(kube, "apps/v1", "Deployment", namespace, api)
    ours, kcm = [], []
    try:
        for i in range(count):
            art = await kube.get("workload.dev/v1alpha1", "Artifact", namespace, name)
            live = await kube.get("apps/v1", "Deployment", namespace, api)
            assert art is not None and live is not None
            groups = art["spec"]["containerGroups"]
            groups[0]["containers"][0]["environmentVars"] = [{"name": "MODE", "value": f"u{i}"}]
            before = live["metadata"]["generation"]
            start = time.monotonic()
            patched = await kube.patch(art, {"spec": {"containerGroups": groups}})
            gen = patched["metadata"]["generation"]
            while True:
                got = await kube.get("workload.dev/v1alpha1", "Artifact", namespace, name)
                if got and got.get("status", {}).get("observedGeneration") == gen:
                    break
                await asyncio.sleep(0.005)
            ours.append(time.monotonic() - start)
            rolled = await deployment.first(start, functools.partial(rolling, after=before))
            kcm.append(rolled - start)
    finally:
        deployment.close()
    return ours, kcm


def rolling(d: dict[str, Any], *, after: int) -> bool:
    """The Deployment, changed since generation `after`, has its first pod of the change."""
    return bool(d["metadata"]["generation"] > after and observed(d)
                and d.get("status", {}).get("updatedReplicas", 0) >= 1)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 (of 100 samples, the largest)."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def bench_size(cp: ControlPlane, kube: Kube, n: int, args: argparse.Namespace,
                     workdir: Path) -> dict[str, Any]:
    docs = [artifact(i) for i in range(n)]
    tag = uuid.uuid4().hex[:5]
    result: dict[str, Any] = {"n": n}

    ns_floor = f"floor-{n}-{tag}"
    await create_namespace(kube, ns_floor)
    before = audit_lines(cp)
    meter = CpuMeter(cp, bench=os.getpid())
    result["floor_s"] = await run_floor(kube, ns_floor, docs)
    result["cpu_floor"] = meter.used()
    floor_writes = sum(audit_writes(cp, before, FLOOR_AGENT).values())
    result["floor_writes_per_artifact"] = floor_writes / n
    # kcm works through the floor's Deployments after the floor is done: the next phase must
    # not pay for them (until it waited, kcm's time did, at N=3000 most).
    await wait_kcm_caught_up(kube, ns_floor, timeout=max(120, n * 0.6))

    ns_kcm = f"kcm-{n}-{tag}"
    await create_namespace(kube, ns_kcm)
    meter = CpuMeter(cp, bench=os.getpid())
    result["kcm_s"], result["kcm_deployments"] = await run_kcm(kube, ns_kcm, docs)
    result["cpu_kcm"] = meter.used()
    await wait_kcm_caught_up(kube, ns_kcm, timeout=max(120, n * 0.6))

    ns_op = f"op-{n}-{tag}"
    await create_namespace(kube, ns_op)
    env = {"ARTIFACT_OPERATOR_RESYNC_SECONDS": "3600"}
    op = OperatorProcess(cp.kubeconfig, [ns_op], workdir / f"operator-{n}.log", env=env)
    op.start()
    assert op.proc is not None
    result["idle_rss_mb"] = rss_mb(op.proc.pid, "VmRSS")
    try:
        before = audit_lines(cp)
        meter = CpuMeter(cp, bench=os.getpid(), operator=op.proc.pid)
        start = time.monotonic()
        await create_artifacts(kube, ns_op, docs)
        end = await wait_done(kube, ns_op, docs, timeout=max(120, n * 0.6))
        result["cpu_operator"] = meter.used()
        result["operator_s"] = end - start
        await asyncio.sleep(2)  # let in-flight status writes of this phase land in the log
        writes = audit_writes(cp, before, "artifact-operator/")
        result["operator_writes"] = dict(writes)
        events = sum(v for k, v in writes.items() if k.endswith(" events"))
        result["operator_writes_per_artifact"] = (sum(writes.values()) - events) / n
        result["operator_events_per_artifact"] = events / n
        children = sum(len(expected_children(d, ns_op)) for d in docs)
        result["minimum_writes_per_artifact"] = (children + n) / n  # children + one status

        # Quiet means nothing changes: kube-controller-manager may still be working through
        # the Deployments (at N=3000 on a loaded machine, minutes), and each step it makes is
        # a status change the operator reports. Those writes are counted apart.
        before = audit_lines(cp)
        await wait_kcm_caught_up(kube, ns_op, timeout=max(120, n * 0.6))
        await asyncio.sleep(5)
        result["writes_while_kcm_caught_up"] = sum(
            audit_writes(cp, before, "artifact-operator/").values())
        before = audit_lines(cp)
        await asyncio.sleep(args.idle_seconds)
        result["idle_writes"] = sum(audit_writes(cp, before, "artifact-operator/").values())
        assert op.proc is not None
        result["peak_rss_mb"] = peak_rss_mb(op.proc.pid)

        op.stop()
        before = audit_lines(cp)
        start = time.monotonic()
        op = OperatorProcess(cp.kubeconfig, [ns_op], workdir / f"operator-{n}-restart.log",
                             env=env)
        op.start()
        # The restart pass: every existing artifact is reconciled once (without writes).
        await wait_reconciled(op, n)
        result["restart_pass_s"] = time.monotonic() - start
        await asyncio.sleep(args.restart_quiet_seconds)
        result["restart_writes"] = sum(audit_writes(cp, before, "artifact-operator/").values())
        # A restart lists everything at once: its own peak, not the creation's, may be the
        # higher (it was, before lists came in pages).
        assert op.proc is not None
        result["restart_peak_rss_mb"] = peak_rss_mb(op.proc.pid)
        op.stop()
        op = await measure_takeover(cp, ns_op, n, env, workdir, args, result)

        if args.updates:
            ours, kcm = await update_latencies(kube, ns_op, docs[0]["metadata"]["name"],
                                               args.updates)
            result["update_p50_s"], result["update_p99_s"] = percentiles(ours)
            result["update_kcm_p50_s"], result["update_kcm_p99_s"] = percentiles(kcm)
    finally:
        op.stop()
    result["ratio_operator_to_floor"] = result["operator_s"] / result["floor_s"]
    result["ms_per_artifact"] = result["operator_s"] / n * 1000
    result["mb_per_1000_artifacts"] = (result["peak_rss_mb"] - result["idle_rss_mb"]) / n * 1000
    per_obj_op = result["operator_s"] / n
    per_obj_kcm = result["kcm_s"] / result["kcm_deployments"]
    result["ratio_operator_per_artifact_to_kcm_per_deployment"] = per_obj_op / per_obj_kcm
    # The same for the floor: how far a bare client making our writes is from the target.
    result["ratio_floor_per_artifact_to_kcm_per_deployment"] = (
        result["floor_s"] / n / per_obj_kcm)
    # Where those times went: the API server's CPU per artifact against per Deployment. A
    # floor's artifact has 1.5 Deployments, and kcm's work for them runs in its phase too.
    api = "kube-apiserver"
    result["ratio_apiserver_cpu_floor_per_artifact_to_kcm_per_deployment"] = (
        result["cpu_floor"][api] / n) / (result["cpu_kcm"][api] / result["kcm_deployments"])
    for phase in ("floor", "kcm", "operator"):
        result[f"apiserver_cpu_{phase}_s"] = result[f"cpu_{phase}"][api]
    result["operator_cpu_s"] = result["cpu_operator"]["operator"]
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("N", "n", "{}"),
        ("operator time (s)", "operator_s", "{:.1f}"),
        ("floor time (s)", "floor_s", "{:.1f}"),
        ("operator / floor", "ratio_operator_to_floor", "{:.2f}x"),
        ("kcm time for its Deployments (s)", "kcm_s", "{:.1f}"),
        ("operator per artifact / kcm per Deployment",
         "ratio_operator_per_artifact_to_kcm_per_deployment", "{:.2f}x"),
        ("floor per artifact / kcm per Deployment",
         "ratio_floor_per_artifact_to_kcm_per_deployment", "{:.2f}x"),
        ("kube-apiserver CPU (s): floor phase", "apiserver_cpu_floor_s", "{:.1f}"),
        ("kube-apiserver CPU (s): kcm phase", "apiserver_cpu_kcm_s", "{:.1f}"),
        ("kube-apiserver CPU (s): operator phase", "apiserver_cpu_operator_s", "{:.1f}"),
        ("operator's own CPU (s) in its phase", "operator_cpu_s", "{:.1f}"),
        ("API server CPU: floor per artifact / kcm per Deployment",
         "ratio_apiserver_cpu_floor_per_artifact_to_kcm_per_deployment", "{:.2f}x"),
        ("writes per artifact (excl. Events)", "operator_writes_per_artifact", "{:.2f}"),
        ("minimum writes per artifact", "minimum_writes_per_artifact", "{:.2f}"),
        ("Events per artifact", "operator_events_per_artifact", "{:.2f}"),
        ("writes while kcm caught up (status changes)", "writes_while_kcm_caught_up", "{}"),
        ("idle writes (quiet period)", "idle_writes", "{}"),
        ("restart: time to reconcile all artifacts once (s)", "restart_pass_s", "{:.1f}"),
        ("writes on restart", "restart_writes", "{}"),
        ("leader takeover: SIGTERM to all reconciled by the standby (s)", "takeover_s",
         "{:.1f}"),
        ("writes on takeover (excl. the Lease)", "takeover_writes", "{}"),
        ("update latency p50 (s)", "update_p50_s", "{:.3f}"),
        ("update latency p99 (s)", "update_p99_s", "{:.3f}"),
        ("update: kcm's first pod of the new template p50 (s)", "update_kcm_p50_s", "{:.3f}"),
        ("update: kcm's first pod of the new template p99 (s)", "update_kcm_p99_s", "{:.3f}"),
        ("operator peak RSS (MiB)", "peak_rss_mb", "{:.0f}"),
        ("restarted operator's peak RSS (MiB)", "restart_peak_rss_mb", "{:.0f}"),
        ("operator RSS before the artifacts (MiB)", "idle_rss_mb", "{:.0f}"),
        ("memory per 1000 artifacts (MiB, peak - before)", "mb_per_1000_artifacts", "{:.0f}"),
        ("operator time per artifact (ms)", "ms_per_artifact", "{:.0f}"),
    ]
    header = "| metric | " + " | ".join(f"N={r['n']}" for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    for label, key, fmt in rows[1:]:
        cells = [fmt.format(r[key]) if key in r else "-" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def control_plane(user_agent: str, *, audit: bool = False
                        ) -> AsyncIterator[tuple[ControlPlane, Kube]]:
    """A control plane of its own with kcm's limits raised, the CRDs installed, and a client
    (the operator's own, with its connection limit) as `user_agent`."""
    assets = default_assets()
    if assets is None:
        sys.exit("no control plane binaries: set KUBEBUILDER_ASSETS")
    cp = ControlPlane(assets, audit=audit, extra_kcm_args=KCM_FLAGS)
    cp.start()
    try:
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        kube = await Kube.connect(user_agent=user_agent)
        try:
            await install_crds(kube)
            yield cp, kube
        finally:
            await kube.close()
    finally:
        cp.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    async with control_plane(FLOOR_AGENT, audit=True) as (cp, kube):
        for n in args.sizes:
            r = await bench_size(cp, kube, n, args, workdir)
            print(json.dumps(r), flush=True)
            results.append(r)
    return {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "kcm_flags": KCM_FLAGS,
        "results": results,
        "scale": targets.scale(results),
        "targets": [dataclasses.asdict(v) for v in targets.evaluate(results)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--restart-quiet-seconds", type=float, default=10)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--json", default="bench/results/latest.json")
    parser.add_argument("--workdir", default="bench/results/logs")
    parser.add_argument("--report", metavar="PATH",
                        help="run nothing: print the tables of a saved run (its --json)")
    args = parser.parse_args()
    if args.report:
        report = json.loads(Path(args.report).read_text())
    else:
        report = asyncio.run(main_async(args))
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    print()
    print(table(report["results"]))
    print()
    # Judged again rather than read back, so that a run saved before the targets were
    # stored in the JSON is judged too.
    print(targets.table(targets.evaluate(report["results"])))
    print(f"\n{report['command']} on {report['machine']}")


if __name__ == "__main__":
    main()
