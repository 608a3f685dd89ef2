"""Secrets in artifacts: the per-artifact API token and references to users' credentials."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Cluster, create_artifact, delete_artifact, get_artifact, patch_artifact
from ..support.kubelet import make_pods_ready
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"


def with_env(name: str, env: list[dict[str, Any]], image: str = "nginx:1.27") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containerGroups": [{"name": "api",
            "containers": [{"name": "app", "imageUri": image, "primary": True, "port": 8080,
                            "environmentVars": env}]}]}}


def token_of(cluster: Cluster, namespace: str, artifact: str) -> tuple[str, str]:
    """(token, resourceVersion) of the artifact's token Secret."""
    secret = cluster.core.read_namespaced_secret(f"{artifact}-api-token", namespace)
    return base64.b64decode(secret.data["token"]).decode(), secret.metadata.resource_version


def reconciled(cluster: Cluster, namespace: str, name: str, generation: int) -> bool:
    status = get_artifact(cluster, namespace, name).get("status", {})
    return bool(status.get("observedGeneration") == generation)


def ready_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status = get_artifact(cluster, namespace, name).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def test_api_token_is_made_once_never_shown_and_goes_with_the_artifact(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                           args=["--verbose"])
    names = ("tok-a", "tok-b")
    with proc:
        for name in names:
            create_artifact(cluster, namespace, with_env(name, [
                {"name": "API_TOKEN", "source": "dr-api-token"},
                {"name": "MODE", "value": "x"}]))
        for name in names:
            wait_for(lambda n=name: reconciled(cluster, namespace, n, 1), timeout=30,
                     what=f"{name} reconciled")
        tokens = {n: token_of(cluster, namespace, n) for n in names}
        assert tokens["tok-a"][0] != tokens["tok-b"][0]
        assert all(len(t) >= 32 for t, _ in tokens.values())
        env = cluster.apps.read_namespaced_deployment("tok-a-api", namespace) \
            .spec.template.spec.containers[0].env
        assert env[0].value_from.secret_key_ref.name == "tok-a-api-token"
        assert env[0].value_from.secret_key_ref.key == "token"

        # A rollout to ready, a spec change, and a restart: the token stays as it was, and
        # its Secret is never written again.
        make_pods_ready(cluster.core, namespace, "workload.dev/artifact=tok-a")
        wait_for(lambda: ready_condition(cluster, namespace, "tok-a").get("status") == "True",
                 timeout=30, what="tok-a Ready")
        patch_artifact(cluster, namespace, "tok-a", {"spec": {"containerGroups": [
            {"name": "api", "containers": [{"name": "app", "imageUri": "nginx:1.28",
                                            "primary": True, "port": 8080,
                                            "environmentVars": [
                                                {"name": "API_TOKEN", "source": "dr-api-token"},
                                                {"name": "MODE", "value": "y"}]}]}]}})
        wait_for(lambda: reconciled(cluster, namespace, "tok-a", 2), timeout=30,
                 what="the change reconciled")
        proc.stop()
        proc.start()
        patch_artifact(cluster, namespace, "tok-b", {"spec": {"description": "after restart"}})
        wait_for(lambda: reconciled(cluster, namespace, "tok-b", 2), timeout=30,
                 what="a reconcile after the restart")
        assert {n: token_of(cluster, namespace, n) for n in names} == tokens

    # Nowhere to be seen: not in the operator's full (verbose) log, not in any Event, not in
    # any Artifact (status included), in clear or base64.
    secrets = [t for t, _ in tokens.values()]
    secrets += [base64.b64encode(t.encode()).decode() for t in secrets]
    log = proc.logs()
    # The log is there and verbose: it shows the reconciles of these very artifacts.
    assert " DEBUG artifact_operator.controller.reconcile: status of " in log
    assert all(f"/{name}: writing" in log for name in names)
    events = json.dumps(cluster.api.sanitize_for_serialization(
        cluster.core.list_namespaced_event(namespace).items))
    artifacts = json.dumps(cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"])
    assert "tok-a-api-token" in events  # the Secret's creation is told, its content is not
    for secret in secrets:
        assert secret not in log
        assert secret not in events
        assert secret not in artifacts

    # Deleted with its artifact, by garbage collection (the operator is not even running).
    delete_artifact(cluster, namespace, "tok-a")

    wait_for(lambda: found(cluster.core.read_namespaced_secret, "tok-a-api-token",
                           namespace) is None,
             timeout=60, what="the token Secret to go with its artifact")


def test_a_missing_credential_secret_or_key_shows_in_the_conditions(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, with_env("creds", [
        {"name": "DB_PASSWORD", "source": "dr-credential", "drCredentialId": "db-creds",
         "key": "password"}]))
    # Missing: the group is held back, and the status says so (no more than that: a Secret
    # that exists without opting in reads the same, see test_side_doors.py).
    cond = wait_for(lambda: ready_condition(cluster, namespace, "creds").get("reason") ==
                    "SecretNotUsable" and ready_condition(cluster, namespace, "creds"),
                    timeout=30, what="SecretNotUsable")
    assert cond["status"] == "False"
    assert "Secret db-creds does not exist or is not usable" in cond["message"]
    assert "DB_PASSWORD" in cond["message"]
    assert found(cluster.apps.read_namespaced_deployment, "creds-api", namespace) is None

    # The Secret appears, opted in, but without the key: the watch sees it, the group is
    # rendered, and the missing key is named.
    value = "s3cr3t-value-never-shown"
    cluster.core.create_namespaced_secret(namespace, {
        "metadata": {"name": "db-creds", "labels": {"workload.dev/usable-by-artifacts": "true"}},
        "stringData": {"user": value}})
    cond = wait_for(lambda: ready_condition(cluster, namespace, "creds").get("reason") ==
                    "SecretMissing" and ready_condition(cluster, namespace, "creds"),
                    timeout=30, what="SecretMissing")
    assert "Secret db-creds has no key password" in cond["message"]
    env = cluster.apps.read_namespaced_deployment("creds-api", namespace) \
        .spec.template.spec.containers[0].env[0]
    assert (env.value_from.secret_key_ref.name, env.value_from.secret_key_ref.key) == \
        ("db-creds", "password")

    # With the key, nothing is missing any more; the pods decide readiness again.
    cluster.core.patch_namespaced_secret("db-creds", namespace,
                                         {"stringData": {"password": value}})
    wait_for(lambda: ready_condition(cluster, namespace, "creds")["reason"] ==
             "RolloutInProgress", timeout=30, what="the key seen")
    make_pods_ready(cluster.core, namespace, "workload.dev/artifact=creds")
    wait_for(lambda: ready_condition(cluster, namespace, "creds").get("status") == "True",
             timeout=30, what="Ready")
    assert value not in json.dumps(get_artifact(cluster, namespace, "creds"))
    assert value not in operator.logs()
