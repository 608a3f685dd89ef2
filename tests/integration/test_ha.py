"""Two replicas with leader election: one reconciles, the other takes over when it dies."""

from __future__ import annotations

import os
import pwd
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from ..conftest import Cluster, create_artifact, get_artifact, require_audit_log
from ..support.accounts import audit_writes, sa_user, two_replicas
from ..support.builders import service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from ..support.webhook import make_serving_cert, serving_webhooks, webhook_operator

pytestmark = pytest.mark.cluster

LEASE = "artifact-operator-leader"
TAKEOVER_BOUND = 30.0  # lease 15 s + retry 2 s, with room for a loaded machine


def _holder(cluster: Cluster, namespace: str) -> str | None:
    lease = found(client.CoordinationV1Api(cluster.api).read_namespaced_lease, LEASE, namespace)
    return lease.spec.holder_identity if lease else None  # type: ignore[no-any-return]


def _deployment(cluster: Cluster, namespace: str, name: str) -> object:
    return found(cluster.apps.read_namespaced_deployment, name, namespace)


def test_one_replica_reconciles_and_the_other_takes_over(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    audit_log = require_audit_log(cluster)
    # Each replica gets its own ServiceAccount, so the audit log tells their writes apart.
    with two_replicas(cluster, namespace, tmp_path) as replicas:
        leader = wait_for(lambda: _holder(cluster, namespace), timeout=30, what="a leader")
        standby = next(n for n in replicas if n != leader)

        names = [f"art{i}" for i in range(4)]
        for name in names:
            create_artifact(cluster, namespace, service_artifact(name))
        for name in names:
            wait_for(lambda n=name: get_artifact(cluster, namespace, n).get("status"),  # type: ignore[misc]
                     timeout=30, what=f"status of {name}")

        # The test itself and kube-controller-manager write as admin; the replicas as their SA.
        writes = [w for w in audit_writes(audit_log, namespace)
                  if w.user.startswith("system:serviceaccount:")]
        assert not [w for w in writes if w.user == sa_user(namespace, standby)], \
            "the standby made writes"
        for name in names:
            writers = {w.user for w in writes if w.name.startswith(name) and
                       w.resource in ("deployments", "services", "artifacts")}
            assert writers == {sa_user(namespace, leader)}, (name, writers)

        # The leader dies without a chance to hand the Lease back.
        replicas[leader].stop(kill=True)
        killed_at = time.monotonic()
        create_artifact(cluster, namespace, service_artifact("after"))
        wait_for(lambda: _deployment(cluster, namespace, "after-api"),
                 timeout=TAKEOVER_BOUND + 15, what="the standby to reconcile a new artifact")
        takeover = time.monotonic() - killed_at
        print(f"takeover after SIGKILL of the leader: {takeover:.1f}s")
        assert _holder(cluster, namespace) == standby
        assert takeover < TAKEOVER_BOUND, f"takeover took {takeover:.1f}s"
        writers = {w.user for w in audit_writes(audit_log, namespace)
                   if w.name.startswith("after") and w.resource in ("deployments", "artifacts")
                   and w.user.startswith("system:serviceaccount:")}
        assert writers == {sa_user(namespace, standby)}


def test_graceful_shutdown_hands_the_lease_over(cluster: Cluster, namespace: str,
                                                tmp_path: Path) -> None:
    args = ["--leader-election", "--leader-election-namespace", namespace]
    first = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "a.log",
                            env={"POD_NAME": "first"}, args=args).start()
    second = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "b.log",
                             env={"POD_NAME": "second"}, args=args)
    try:
        wait_for(lambda: _holder(cluster, namespace) == "first", timeout=30, what="first leads")
        second.start()
        stopped_at = time.monotonic()
        first.stop()  # SIGTERM, as a rolling update sends
        wait_for(lambda: _holder(cluster, namespace) == "second", timeout=15,
                 what="the lease to pass to the second replica")
        handover = time.monotonic() - stopped_at
        print(f"handover after SIGTERM of the leader: {handover:.1f}s")
        assert handover < 10, "the lease was not released on shutdown"
        create_artifact(cluster, namespace, service_artifact("later"))
        wait_for(lambda: _deployment(cluster, namespace, "later-api"),
                 timeout=30, what="the new leader to reconcile")
    finally:
        first.stop()
        second.stop()


def _readyz(proc: OperatorProcess) -> int:
    try:
        with urllib.request.urlopen(
                f"http://127.0.0.1:{proc.health_port}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_stopping_replica_steps_down_at_once_and_answers_the_webhook_until_it_exits(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """A rolling update: the Service keeps routing to a terminating pod for a moment, so after
    SIGTERM the replica is unready and leaderless at once, yet every review that reaches it is
    still answered (a refusal in the rule's words, not "connection refused")."""
    cert = make_serving_cert(tmp_path / "certs")
    proc = webhook_operator(
        cluster.kubeconfig, namespace, tmp_path / "op.log", cert,
        env={"POD_NAME": "stopping", "ARTIFACT_OPERATOR_WEBHOOK_DRAIN_SECONDS": "20"},
        extra_args=["--leader-election", "--leader-election-namespace", namespace])
    with serving_webhooks(cluster.api, namespace, proc, cert.ca):
        wait_for(lambda: _holder(cluster, namespace) == "stopping", timeout=30, what="a leader")
        assert proc.proc is not None
        os.killpg(proc.proc.pid, signal.SIGTERM)
        wait_for(lambda: _readyz(proc) == 503, timeout=10, what="/readyz to turn 503")
        wait_for(lambda: _holder(cluster, namespace) is None, timeout=10,
                 what="the Lease handed back")
        assert proc.running
        invalid = service_artifact("refused")
        invalid["spec"]["containerGroups"][0]["containers"][0].pop("port")
        with pytest.raises(client.ApiException) as refusal:
            create_artifact(cluster, namespace, invalid)
        assert refusal.value.status == 422, refusal.value.body
        assert "a primary container must set port" in refusal.value.body
        create_artifact(cluster, namespace, service_artifact("admitted"))
        assert proc.running, "the replica stopped before the reviews above were answered"
        proc.wait_stopped()
        assert proc.proc.returncode == 0
        # It made no write after stepping down: nothing reconciled the admitted artifact.
        assert not get_artifact(cluster, namespace, "admitted").get("status")


def test_runs_as_a_uid_without_a_passwd_entry(cluster: Cluster, namespace: str,
                                              tmp_path: Path) -> None:
    """The image runs as uid 65532, which has no passwd entry there (nor here): nothing in the
    operator may ask the passwd database who it is (kopf's default identity did, and crashed)."""
    uid = 65532
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)  # the precondition: as in the image, the uid has no name
    # No name in the environment either, as in a container (getpass reads these first).
    names = {var: "" for var in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    proc = OperatorProcess(
        cluster.kubeconfig, [namespace], tmp_path / "op.log", user=uid, env={**names, "HOME": "/"},
        args=["--leader-election", "--leader-election-namespace", namespace])
    try:
        proc.start()
        assert wait_for(lambda: _holder(cluster, namespace), timeout=30, what="a leader")
        create_artifact(cluster, namespace, service_artifact("nameless"))
        wait_for(lambda: _deployment(cluster, namespace, "nameless-api"),
                 timeout=30, what="the operator running as uid 65532 to reconcile")
        assert proc.running
    finally:
        proc.stop()
        print(proc.logs()[-5000:])
