"""`kubectl artifact` against the real control plane, run as its own process with a user's
kubeconfig (a ServiceAccount token bound to the shipped roles, its context naming the
namespace), the way a user runs it; the operator runs as its own process too."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.builders import PINNED_IMAGE, primary, service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from .test_admission import install_roles, webhooks  # noqa: F401

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
PLUGIN = str(BIN / "kubectl-artifact")
RESOURCE = "artifacts.workload.dev"


def artifact(name: str, repository: str | None = "shop", **spec: Any) -> dict[str, Any]:
    """The shop's web front, with the fields `kubectl artifact` shows and copies."""
    app = primary(environmentVars=[{"name": "MODE", "value": "prod"}],
                  readinessProbe={"path": "/ready"})
    extra = {"repository": repository} if repository else {}
    return service_artifact(name, app=app, replicas=1, displayName=f"{name} display",
                            description="the shop's web front", **extra, **spec)


def user(cluster: Cluster, namespace: str, tmp_path: Path, name: str, role: str) -> Path:
    """A kubeconfig for ServiceAccount `name` bound to ClusterRole `role` in `namespace`,
    whose context names the namespace (so the plugin needs no -n)."""
    install_roles(cluster)
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    cluster.core.create_namespaced_secret(namespace, {
        "metadata": {"name": f"{name}-token",
                     "annotations": {"kubernetes.io/service-account.name": name}},
        "type": "kubernetes.io/service-account-token"})

    def token() -> str:
        data = cluster.core.read_namespaced_secret(f"{name}-token", namespace).data or {}
        return base64.b64decode(data["token"]).decode() if "token" in data else ""

    value = wait_for(token, timeout=30, what=f"the token of {name}")
    cluster.rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": f"{name}-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": name, "user": {"token": value}}]
    for ctx in config["contexts"]:
        ctx["context"].update({"user": name, "namespace": namespace})
    path = tmp_path / f"kubeconfig-{name}"
    path.write_text(yaml.safe_dump(config))
    return path


def plugin(kubeconfig: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([PLUGIN, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


def observed(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj = get_artifact(cluster, namespace, name)
    status = obj.get("status") or {}
    return status if status.get("observedGeneration") == obj["metadata"]["generation"] else {}


def test_an_editor_locks_clones_and_lists_versions(
        cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path) -> None:
    editor = user(cluster, namespace, tmp_path, "erin", "artifact-editor")
    create_artifact(cluster, namespace, artifact("web"))

    # lock: waits for the operator's version and prints it.
    assert ok(plugin(editor, "lock", "web")) == f"{RESOURCE}/web locked: version 1\n"
    web = get_artifact(cluster, namespace, "web")
    assert (web["spec"]["lifecycle"], web["status"]["version"]) == ("locked", 1)

    # clone: a draft with the source's spec and a display name of its own, no status.
    assert ok(plugin(editor, "clone", "web", "web-2", "--display-name", "Web, next")) == \
        f"{RESOURCE}/web-2 created (a draft clone of web)\n"
    clone = get_artifact(cluster, namespace, "web-2")
    assert clone["spec"] == {**web["spec"], "lifecycle": "draft", "displayName": "Web, next"}
    assert clone["metadata"]["labels"] == {"workload.dev/repository": "shop"}
    assert wait_for(lambda: observed(cluster, namespace, "web-2"), timeout=30,
                    what="the clone reconciled").get("version") is None

    # versions: drafts after the numbered ones.
    table = rows(ok(plugin(editor, "versions", "shop")))
    assert table[0] == ["NAME", "VERSION", "LIFECYCLE", "PHASE", "AGE"]
    assert [r[:3] for r in table[1:]] == [["web", "1", "locked"], ["web-2", "<none>", "draft"]]

    assert ok(plugin(editor, "lock", "web-2", "--timeout", "60s")) == \
        f"{RESOURCE}/web-2 locked: version 2\n"
    create_artifact(cluster, namespace, artifact("blog", repository="blog", lifecycle="locked"))
    table = rows(ok(plugin(editor, "versions", "shop")))
    assert [r[:3] for r in table[1:]] == [["web", "1", "locked"], ["web-2", "2", "locked"]]
    phases = {n: get_artifact(cluster, namespace, n)["status"]["phase"] for n in ("web", "web-2")}
    assert {r[0]: r[3] for r in table[1:]} == phases

    listed = json.loads(ok(plugin(editor, "versions", "shop", "-o", "json")))
    assert listed["kind"] == "List"
    assert [(o["metadata"]["name"], o["status"]["version"]) for o in listed["items"]] == \
        [("web", 1), ("web-2", 2)]
    assert all("managedFields" not in o["metadata"] for o in listed["items"])
    as_yaml = yaml.safe_load(ok(plugin(editor, "versions", "shop", "-o", "yaml")))
    assert [o["metadata"]["name"] for o in as_yaml["items"]] == ["web", "web-2"]

    # Locking a locked artifact prints the version it has; nothing else changes.
    assert ok(plugin(editor, "lock", "web")) == f"{RESOURCE}/web locked: version 1\n"
    none = plugin(editor, "versions", "nothing-here")
    assert (ok(none), none.stderr) == (
        "", f"No artifacts of repository nothing-here in namespace {namespace}.\n")


def test_lock_says_why_no_version_comes(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    admin = user(cluster, namespace, tmp_path, "ops", "artifact-admin")
    create_artifact(cluster, namespace, artifact("web"))
    create_artifact(cluster, namespace, artifact("quick"))
    # No operator in this namespace: the lock is stored, the wait ends with the reason.
    err = failed(plugin(admin, "lock", "web", "--timeout", "2s"))
    assert err == (f"error: web is locked, but no version was assigned within 2s; is the "
                   f"artifact-operator running for namespace {namespace}? (kubectl get art web "
                   "shows it when it comes)\n")
    assert get_artifact(cluster, namespace, "web")["spec"]["lifecycle"] == "locked"
    assert ok(plugin(admin, "lock", "quick", "--wait=false")) == f"{RESOURCE}/quick locked\n"
    assert get_artifact(cluster, namespace, "quick")["spec"]["lifecycle"] == "locked"


def test_lock_of_an_invalid_artifact_fails_at_once_with_the_violation(
        cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path) -> None:
    admin = user(cluster, namespace, tmp_path, "ops", "artifact-admin")
    # A cross-field violation the 1.20 schema lets through (no webhook here).
    bad = artifact("bad")
    del bad["spec"]["containerGroups"][0]["containers"][0]["port"]
    create_artifact(cluster, namespace, bad)
    err = failed(plugin(admin, "lock", "bad", "--timeout", "5m"))
    assert err == ("error: bad is locked but its spec is invalid, so it gets no version: "
                   "spec.containerGroups[0].containers[0].port: a primary container must set "
                   "port\n")


def test_errors_name_the_object_and_carry_the_servers_message(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    viewer = user(cluster, namespace, tmp_path, "vic", "artifact-viewer")
    admin = user(cluster, namespace, tmp_path, "ops", "artifact-admin")
    create_artifact(cluster, namespace, artifact("web"))
    sa = f"system:serviceaccount:{namespace}:vic"

    # Forbidden: the user's own permissions, with the API server's words.
    assert failed(plugin(viewer, "lock", "web")) == (
        f'Error from server (Forbidden): {RESOURCE} "web" is forbidden: User "{sa}" cannot '
        f'patch resource "artifacts" in API group "workload.dev" in the namespace '
        f'"{namespace}"\n')
    assert get_artifact(cluster, namespace, "web")["spec"]["lifecycle"] == "draft"
    assert failed(plugin(viewer, "clone", "web", "web-2")).startswith(
        f'Error from server (Forbidden): {RESOURCE} is forbidden: User "{sa}" cannot create '
        'resource "artifacts"')
    ok(plugin(viewer, "versions", "shop"))  # viewers may list

    # Not found, already exists, an invalid new name: nothing is created or changed.
    missing = f'Error from server (NotFound): {RESOURCE} "nope" not found\n'
    assert failed(plugin(admin, "lock", "nope")) == missing
    assert failed(plugin(admin, "clone", "nope", "web-2")) == missing
    assert failed(plugin(admin, "clone", "web", "web")) == \
        f'Error from server (AlreadyExists): {RESOURCE} "web" already exists\n'
    assert failed(plugin(admin, "clone", "web", "Web_2")) == (
        "error: the clone would be invalid:\n  metadata.name: must consist of lowercase "
        "letters, digits and '-', start with a letter and end with a letter or digit\n")
    names = [o["metadata"]["name"] for o in cluster.custom.list_namespaced_custom_object(
        "workload.dev", "v1alpha1", namespace, "artifacts")["items"]]
    assert names == ["web"]

    # -n overrides the context's namespace (where this user has no rights).
    assert 'in the namespace "default"' in failed(plugin(admin, "lock", "web", "-n", "default"))


def test_the_webhook_judges_a_clone_as_the_users(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess,  # noqa: F811
        tmp_path: Path) -> None:
    editor = user(cluster, namespace, tmp_path, "erin", "artifact-editor")
    admin = user(cluster, namespace, tmp_path, "ada", "artifact-admin")
    elevated = artifact("net")
    elevated["spec"]["containerGroups"][0]["containers"][0].update(
        imageUri=PINNED_IMAGE, securityContext={"capabilities": {"add": ["NET_ADMIN"]}})
    create_artifact(cluster, namespace, elevated)  # by the cluster admin

    err = failed(plugin(editor, "clone", "net", "net-2"))
    assert err.startswith("Error from server (Forbidden): admission webhook")
    assert "spec.containerGroups[0].containers[0].securityContext.capabilities.add" in err
    ok(plugin(admin, "clone", "net", "net-2"))
    # The clone is another artifact (another uid): it runs with the capability once the
    # admin approves it.
    ok(plugin(admin, "approve", "net-2"))

    def capability() -> Any:
        d = found(cluster.apps.read_namespaced_deployment, "net-2-api", namespace)
        return d and d.spec.template.spec.containers[0].security_context.capabilities.add

    assert wait_for(capability, timeout=30, what="the clone's Deployment") == ["NET_ADMIN"]


def test_kubectl_finds_the_plugin_on_path(cluster: Cluster, namespace: str,
                                          tmp_path: Path) -> None:
    admin = user(cluster, namespace, tmp_path, "ops", "artifact-admin")
    web = artifact("web", lifecycle="locked")
    web["metadata"]["labels"] = {"workload.dev/repository": "shop"}  # the operator's label
    create_artifact(cluster, namespace, web)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["kubectl", "artifact", "versions", "shop", "--kubeconfig",
                             str(admin)], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert [r[:3] for r in rows(result.stdout)] == [["NAME", "VERSION", "LIFECYCLE"],
                                                   ["web", "<none>", "locked"]]
