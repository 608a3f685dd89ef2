"""Faults a production cluster throws at the operator, on a control plane of the test's own
(so that killing its API server or etcd disturbs no other test), with the operator running as
users run it (a process, `artifact-operator run --namespace`). Each test asserts the end state
(`Invariants`): every artifact converged, every child it should have present once, nothing of
ours left without its artifact, no shared cache claim lost or leaked, no version number
skipped or given twice. docs/reliability.md holds the table these tests back.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from artifact_operator.api import naming

from ..conftest import Cluster, install_crd
from ..support.accounts import sa_user, two_replicas
from ..support.builders import NIM_IMAGE, OTHER_NIM_IMAGE, nim_artifact, service_artifact
from ..support.controlplane import ControlPlane, default_assets
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"
NS = "faults"
CONVERGE = 240.0  # seconds for every artifact to converge after a fault, on a loaded machine
# Shared caches are deleted with their last user here, so that a claim left over is a leak.
# No Job controller runs here, so no cache warm-up would end: the shared caches' Deployments
# are rendered at once (warm-ups are tests/integration/test_warmup.py's).
OPERATOR_ENV = {"ARTIFACT_OPERATOR_CACHE_RETENTION": "delete",
                "ARTIFACT_OPERATOR_CACHE_WARM_UP": "off"}
NIM_IMAGES = (NIM_IMAGE, OTHER_NIM_IMAGE)


@pytest.fixture(scope="module")
def own() -> Iterator[Cluster]:
    """A control plane for this module alone: its processes get killed."""
    if os.environ.get("ARTIFACT_TEST_USE_KUBECONFIG") == "1":
        reason = "kills the API server and etcd of a control plane of its own"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"under CI=true this may not be skipped: {reason}", pytrace=False)
        pytest.skip(reason)
    assets = default_assets()
    assert assets is not None, "../shared/k8s/bin is needed"
    cp = ControlPlane(assets, audit=True)
    cp.start()
    api = config.new_client_from_config(str(cp.kubeconfig))
    install_crd(api)
    try:
        yield Cluster(cp.kubeconfig, api, cp)
    finally:
        api.close()
        cp.stop()


@pytest.fixture
def namespace(own: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"{NS}-{request.node.name.split('_')[1][:12]}-{int(time.time()) % 100000}"
    own.core.create_namespace({"metadata": {"name": name}})
    yield name
    with contextlib.suppress(client.ApiException):
        own.core.delete_namespace(name)


def operator(cluster: Cluster, namespace: str, log: Path) -> OperatorProcess:
    return OperatorProcess(cluster.kubeconfig, [namespace], log, env=OPERATOR_ENV)


# -- what is created, and what must hold after any fault ------------------------------------


def mix(i: int) -> dict[str, Any]:
    """The i-th artifact of a mixed population: services (some with two groups), NIMs with
    a dedicated claim or a shared cache of one of two images; every fifth locked, in one of
    two repositories (versions are numbered per repository)."""
    name = f"a{i:03d}"
    extra: dict[str, Any] = {}
    if i % 5 == 0:
        extra = {"lifecycle": "locked", "repository": ("shop", "blog")[i % 2]}
    if i % 4 == 0:
        return nim_artifact(name, NIM_IMAGES[i % 2], mode="dedicatedPvc", **extra)
    if i % 4 == 1:
        return nim_artifact(name, NIM_IMAGES[(i // 4) % 2], mode="nimCache", **extra)
    if i % 4 == 2:
        return service_artifact(name, replicas=1 + i % 3, **extra)
    manifest = service_artifact(name, **extra)
    manifest["spec"]["containerGroups"].append(
        {"name": "worker", "containers": [{"name": "w", "imageUri": "busybox:1.36"}]})
    return manifest


def create_all(cluster: Cluster, namespace: str, manifests: list[dict[str, Any]],
               clients: int = 16) -> None:
    def one(manifest: dict[str, Any]) -> None:
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                       manifest)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, manifests))


def artifacts(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return list(cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"])


def with_status(cluster: Cluster, namespace: str) -> int:
    return sum(1 for a in artifacts(cluster, namespace) if a.get("status", {}).get("phase"))


@dataclass
class Invariants:
    """The end state after a fault, read from the API server."""

    artifacts: int
    children: int

    @classmethod
    def check(cls, cluster: Cluster, namespace: str) -> Invariants:
        arts = artifacts(cluster, namespace)
        by_uid = {a["metadata"]["uid"]: a for a in arts}
        unconverged = [a["metadata"]["name"] for a in arts
                       if a.get("status", {}).get("observedGeneration")
                       != a["metadata"]["generation"]]
        assert not unconverged, f"not converged: {unconverged}"
        kinds = {
            "Deployment": cluster.apps.list_namespaced_deployment(namespace).items,
            "Service": cluster.core.list_namespaced_service(namespace).items,
            "PersistentVolumeClaim": [
                c for c in cluster.core.list_namespaced_persistent_volume_claim(namespace).items
                if c.metadata.deletion_timestamp is None],
        }
        live = {(k, o.metadata.name): o for k, objs in kinds.items() for o in objs}
        expected: set[tuple[str, str]] = set()
        caches: Counter[str] = Counter()
        for a in arts:
            name, spec = a["metadata"]["name"], a["spec"]
            for g in spec["containerGroups"]:
                obj = naming.group_object_name(name, g["name"])
                expected.add(("Deployment", obj))
                if any(c.get("primary") for c in g["containers"]):
                    expected.add(("Service", obj))
            if spec.get("type") == "nim":
                if spec["storage"]["mode"] == "dedicatedPvc":
                    expected.add(("PersistentVolumeClaim", naming.dedicated_claim_name(name)))
                else:
                    image = spec["containerGroups"][0]["containers"][0]["imageUri"]
                    caches[naming.cache_claim_name(image)] += 1
        expected |= {("PersistentVolumeClaim", c) for c in caches}
        missing = sorted(expected - set(live))
        assert not missing, f"missing: {missing}"
        extra = sorted(set(live) - expected)
        assert not extra, f"left over (orphaned or leaked): {extra}"
        for (kind, name), obj in live.items():
            if kind == "PersistentVolumeClaim" and name.startswith(naming.CACHE_CLAIM_PREFIX):
                continue  # shared: owned by no artifact, kept by its users
            owners = [r.uid for r in obj.metadata.owner_references or []]
            assert len(owners) == 1 and owners[0] in by_uid, \
                f"{kind} {name} has owners {owners}, none of them a live artifact"
        versions: dict[str, list[int]] = {}
        for a in arts:
            if a["spec"].get("lifecycle") == "locked":
                version = a.get("status", {}).get("version")
                assert isinstance(version, int), f"{a['metadata']['name']} has no version"
                versions.setdefault(a["spec"].get("repository") or "", []).append(version)
        for repository, numbers in versions.items():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), \
                f"versions of {repository!r} skipped or doubled: {sorted(numbers)}"
        return cls(artifacts=len(arts), children=len(live))


def converged(cluster: Cluster, namespace: str) -> Callable[[], Invariants]:
    return lambda: Invariants.check(cluster, namespace)


def kill_when(proc: OperatorProcess, ready: Callable[[], bool], what: str) -> None:
    wait_for(ready, timeout=120, interval=0.2, what=what)
    proc.stop(kill=True)


# -- the faults -----------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_operator_killed_mid_creation_mode_switch_and_lock_loses_nothing(
        own: Cluster, namespace: str, tmp_path: Path) -> None:
    """SIGKILL three times: while 200 artifacts are created, while NIM artifacts switch
    storage mode both ways, while drafts are locked. After each restart everything converges
    and nothing is duplicated, orphaned, lost or leaked."""
    count = 200
    first = operator(own, namespace, tmp_path / "operator-1.log").start()
    create_all(own, namespace, [mix(i) for i in range(count)])
    kill_when(first, lambda: with_status(own, namespace) >= count // 3,
              "a third of the artifacts with a status")
    done = with_status(own, namespace)
    assert done < count, "the kill came after the operator had finished: nothing shown"
    second = operator(own, namespace, tmp_path / "operator-2.log").start()
    restarted = time.monotonic()
    result = wait_for(converged(own, namespace), timeout=CONVERGE, interval=1,
                      what="convergence after the kill during creation")
    assert result.artifacts == count
    print(f"killed with {done}/{count} artifacts done: all converged "
          f"{time.monotonic() - restarted:.1f} s after the restart")

    # Every NIM artifact switches mode, and the last one of an image's cache users goes
    # with it (retention: delete); the kill comes while the switches are being reconciled.
    nims = [a for a in artifacts(own, namespace) if a["spec"].get("type") == "nim"
            and a["spec"].get("lifecycle") != "locked"]
    marks = {a["metadata"]["name"]: a["metadata"]["generation"] for a in nims}
    for a in nims:
        mode = a["spec"]["storage"]["mode"]
        other = "nimCache" if mode == "dedicatedPvc" else "dedicatedPvc"
        own.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, a["metadata"]["name"],
            {"spec": {"storage": {"mode": other}}})

    def some_switched() -> bool:
        seen = {a["metadata"]["name"]: a.get("status", {}).get("observedGeneration")
                for a in artifacts(own, namespace)}
        return sum(1 for n, g in marks.items() if (seen.get(n) or 0) > g) >= len(marks) // 4

    kill_when(second, some_switched, "a quarter of the mode switches reconciled")
    third = operator(own, namespace, tmp_path / "operator-3.log").start()
    wait_for(converged(own, namespace), timeout=CONVERGE, interval=1,
             what="convergence after the kill during mode switches")

    # Drafts locked in a burst, the kill among the version assignments.
    drafts = [a["metadata"]["name"] for a in artifacts(own, namespace)
              if a["spec"].get("lifecycle") != "locked"][:60]
    for i, name in enumerate(drafts):
        own.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name,
            {"spec": {"lifecycle": "locked", "repository": ("shop", "blog")[i % 2]}})

    def some_versioned() -> bool:
        got = [a for a in artifacts(own, namespace) if a["metadata"]["name"] in drafts
               and a.get("status", {}).get("version")]
        return len(got) >= 10

    kill_when(third, some_versioned, "ten of the newly locked artifacts numbered")
    fourth = operator(own, namespace, tmp_path / "operator-4.log").start()
    try:
        result = wait_for(converged(own, namespace), timeout=CONVERGE, interval=1,
                          what="convergence after the kill during locking")
        assert result.artifacts == count
        print(f"200 artifacts, 3 SIGKILLs: {result.children} children, 0 lost, 0 leaked, "
              "versions 1..n per repository")
    finally:
        fourth.stop()


@pytest.mark.timeout(900)
def test_api_server_and_etcd_restarts_are_survived_without_an_operator_restart(
        own: Cluster, namespace: str, tmp_path: Path) -> None:
    """The API server killed and started again (its watch cache starts over, so resumed
    watches get 410 Gone and re-list), then etcd: the operator never exits, and changes
    made around each outage, before its watches are back, are picked up."""
    assert own.control_plane is not None
    proc = operator(own, namespace, tmp_path / "operator.log").start()
    try:
        create_all(own, namespace, [mix(i) for i in range(1, 41) if i % 5])
        wait_for(converged(own, namespace), timeout=CONVERGE, interval=1, what="convergence")
        for round_, process in enumerate(("kube-apiserver", "etcd")):
            own.control_plane.kill(process)
            time.sleep(3)  # an outage of some length, not a condition to poll for
            own.control_plane.revive(process)
            back = time.monotonic()
            if process == "etcd":  # the API server answers again once etcd is back
                wait_for(lambda: artifacts(own, namespace) is not None, timeout=60,
                         what="the API server to reach etcd again")
            # At once, before the operator's watches are back.
            for i in range(1, 11):
                if i % 5:
                    own.custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, f"a{i:03d}",
                        {"spec": {"description": f"after outage {round_}"}})
            create_all(own, namespace, [mix(100 + 10 * round_ + i) for i in range(1, 5)])
            own.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                       f"a{20 + round_ * 10 + 1:03d}")
            result = wait_for(converged(own, namespace), timeout=CONVERGE, interval=1,
                              what=f"convergence after the {process} restart")
            assert proc.running, f"the operator exited:\n{proc.logs()[-3000:]}"
            print(f"{process} killed for 3 s: {result.artifacts} artifacts converged "
                  f"{time.monotonic() - back:.1f} s after it was back, no operator restart")
    finally:
        proc.stop()
        print(proc.logs()[-4000:])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("operator_running", [True, False], ids=["running", "stopped"])
def test_a_namespace_with_artifacts_is_deleted(own: Cluster, tmp_path: Path,
                                               operator_running: bool) -> None:
    """No finalizer of ours holds a namespace: it goes, with its artifacts (locked ones too)
    and their children, whether the operator runs or not."""
    name = f"doomed-{'on' if operator_running else 'off'}-{int(time.time()) % 100000}"
    own.core.create_namespace({"metadata": {"name": name}})
    proc = operator(own, name, tmp_path / "operator.log").start()
    try:
        create_all(own, name, [mix(i) for i in range(10)])
        wait_for(converged(own, name), timeout=CONVERGE, interval=1, what="convergence")
        if not operator_running:
            proc.stop()
        own.core.delete_namespace(name)

        def gone() -> bool:
            try:
                own.core.read_namespace(name)
            except client.ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, timeout=180, interval=1, what=f"namespace {name} gone")
        if operator_running:
            assert proc.running, proc.logs()[-3000:]
    finally:
        proc.stop()


def _writes_by(audit_log: Path, namespace: str, users: set[str]) -> list[tuple[str, str, str]]:
    """(stageTimestamp, user, what) of every write in `namespace` by `users`, leases apart
    (the election itself), in the order the API server completed them."""
    out = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        user = (event.get("user") or {}).get("username", "")
        if user in users and ref.get("namespace") == namespace and \
                ref.get("resource") != "leases" and \
                (event.get("responseStatus") or {}).get("code", 0) < 300:
            out.append((event["stageTimestamp"], user,
                        f"{event['verb']} {ref.get('resource')}/{ref.get('name')}"))
    return sorted(out)


@pytest.mark.timeout(600)
def test_a_frozen_api_server_never_lets_two_leaders_write_at_once(
        own: Cluster, namespace: str, tmp_path: Path) -> None:
    """Two replicas with leader election; the API server frozen (SIGSTOP) for longer than the
    lease. The leader gives up at its renew deadline (its renewals get no answer) and exits,
    the standby takes over after the thaw, and in the audit log every write of the old
    leader completed before the first write of the new one."""
    assert own.control_plane is not None
    lease = client.CoordinationV1Api(own.api)

    def holder() -> str | None:
        got = lease.read_namespaced_lease("artifact-operator-leader", namespace)
        return got.spec.holder_identity  # type: ignore[no-any-return]

    with two_replicas(own, namespace, tmp_path, env=OPERATOR_ENV) as replicas:
        leader = wait_for(lambda: found(holder), timeout=60, what="a leader")
        standby = next(n for n in replicas if n != leader)
        create_all(own, namespace, [mix(i) for i in range(1, 31) if i % 5])
        wait_for(converged(own, namespace), timeout=CONVERGE, interval=1, what="convergence")
        # Work in flight when the server stops answering.
        for i in range(1, 21):
            if i % 5:
                own.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, f"a{i:03d}",
                    {"spec": {"description": "before the freeze"}})
        own.control_plane.freeze("kube-apiserver")
        try:
            time.sleep(20)  # longer than the 15 s lease: the fault itself, not a wait
        finally:
            own.control_plane.thaw("kube-apiserver")
        wait_for(lambda: not replicas[leader].running, timeout=30,
                 what="the old leader to have exited")
        assert "lost lease" in replicas[leader].logs()
        wait_for(lambda: holder() == standby, timeout=60, what="the standby to take over")
        for i in range(21, 31):
            if i % 5:
                own.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, f"a{i:03d}",
                    {"spec": {"description": "after the freeze"}})
        wait_for(converged(own, namespace), timeout=CONVERGE, interval=1,
                 what="convergence under the new leader")
        old, new = sa_user(namespace, leader), sa_user(namespace, standby)
        writes = _writes_by(own.control_plane.audit_log, namespace, {old, new})
        first_new = next(i for i, w in enumerate(writes) if w[1] == new)
        overlap = [w for w in writes[first_new:] if w[1] == old]
        assert not overlap, f"the old leader wrote after the new one began: {overlap}"
        print(f"frozen 20 s: {sum(1 for w in writes if w[1] == old)} writes by the old "
              f"leader, all before the first of {len(writes) - first_new} by the new one")
