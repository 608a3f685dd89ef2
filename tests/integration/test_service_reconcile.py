"""Service artifacts become running workloads (issue 3), shown against the real control plane
with `artifact-operator run` as its own process."""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from typing import Any

import pytest

from artifact_operator.api.validation import parse, validate
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..conftest import (
    Cluster,
    create_artifact,
    delete_artifact,
    get_artifact,
    patch_artifact,
    require_audit_log,
)
from ..support.audit import AuditLog
from ..support.kubelet import make_pods_ready
from ..support.operator import OperatorProcess, pause
from ..support.samples import opted_in_secret
from ..support.wait import found, until_ok, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def credentials(cluster: Cluster, namespace: str) -> None:
    """The Secret `two_groups` reads, opted in to artifacts."""
    opted_in_secret(cluster.core, namespace, "db-creds")

NAME = "shop"
SELECTOR = f"workload.dev/artifact={NAME}"


def two_groups() -> dict[str, Any]:
    """`api` has a primary (so a Service) and a sidecar; `worker` has no primary."""
    return {
        "metadata": {"name": NAME},
        "spec": {
            "containerGroups": [
                {"name": "api", "containers": [
                    {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
                     "entrypoint": ["nginx", "-g", "daemon off;"],
                     "environmentVars": [
                         {"name": "MODE", "value": "prod"},
                         {"name": "DB_PASSWORD", "source": "dr-credential",
                          "drCredentialId": "db-creds", "key": "password"},
                         {"name": "API_TOKEN", "source": "dr-api-token"}],
                     "readinessProbe": {"path": "/ready"},
                     "livenessProbe": {"path": "/live", "port": 9000, "periodSeconds": 10},
                     "securityContext": {"readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["NET_RAW"]}}},
                    {"name": "sidecar", "imageUri": "busybox:1.36",
                     "entrypoint": ["sleep", "infinity"]}]},
                {"name": "worker", "containers": [
                    {"name": "queue", "imageUri": "redis:7"}]},
            ],
            "runtime": {"api": {"replicas": 2, "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "0.5"}}}},
        },
    }


def one_group(image: str = "nginx:1.27", port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {"name": NAME},
        "spec": {"containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": image, "primary": True, "port": port}]}]},
    }


def status_of(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(get_artifact(cluster, namespace, NAME).get("status") or {})


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def live_deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    got = cluster.apps.read_namespaced_deployment(name, namespace)
    return dict(cluster.api.sanitize_for_serialization(got))


def live_service(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    got = cluster.core.read_namespaced_service(name, namespace)
    return dict(cluster.api.sanitize_for_serialization(got))


def gone(read: Any, *args: Any) -> bool:
    return found(read, *args) is None


def project(live: Any, like: Any) -> Any:
    """`live` cut down to the keys `like` has, so the two compare with a readable diff."""
    if isinstance(like, dict) and isinstance(live, dict):
        return {k: project(live.get(k), v) for k, v in like.items()}
    if isinstance(like, list) and isinstance(live, list):
        return [project(a, b) for a, b in zip(live, like, strict=False)] + live[len(like):]
    return live


def normalise_quantities(obj: Any) -> Any:
    """The API server canonicalises quantities (0.5 -> 500m); compare in its form."""
    text = json.dumps(obj).replace('"cpu": "0.5"', '"cpu": "500m"')
    return json.loads(text)


def rendered_for(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    body = get_artifact(cluster, namespace, NAME)
    return render(parse(body), Settings()).objects


def wait_phase(cluster: Cluster, namespace: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = status_of(cluster, namespace)
        body = get_artifact(cluster, namespace, NAME)
        if status.get("phase") == phase and \
                status.get("observedGeneration") == body["metadata"]["generation"]:
            return status
        return None
    return wait_for(check, timeout=timeout, what=f"phase {phase} on the current generation")


def raw_events(cluster: Cluster, namespace: str) -> list[tuple[str, str, str]]:
    events = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Artifact,involvedObject.name={NAME}")
    return [(e.type, e.reason, e.message) for e in events.items]


def events_of(cluster: Cluster, namespace: str) -> list[tuple[str, str, str]]:
    """One entry per child an Event names: a reconcile posts one Event per reason, e.g.
    "Created Deployment shop-api, Service shop-api"."""
    out = []
    for type_, reason, message in raw_events(cluster, namespace):
        if message.startswith(f"{reason} "):
            out += [(type_, reason, f"{reason} {part}")
                    for part in message[len(reason) + 1:].split(", ")]
        else:
            out.append((type_, reason, message))
    return out


def kubectl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True, timeout=60)


# -- the rendered objects exist as rendered -----------------------------------------------


def test_two_groups_make_two_deployments_and_a_service_for_the_primary_group(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    created = create_artifact(cluster, namespace, two_groups())
    uid = created["metadata"]["uid"]
    wait_for(lambda: found(live_deployment, cluster, namespace, "shop-worker"), timeout=30,
             what="Deployment shop-worker")
    wait_for(lambda: found(live_service, cluster, namespace, "shop-api"), timeout=30,
             what="Service shop-api")

    rendered = rendered_for(cluster, namespace)
    kinds = Counter((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == Counter({("Deployment", "shop-api"): 1, ("Deployment", "shop-worker"): 1,
                             ("Service", "shop-api"): 1, ("Secret", "shop-api-token"): 1})
    deployments = cluster.apps.list_namespaced_deployment(namespace).items
    services = cluster.core.list_namespaced_service(namespace).items
    assert sorted(d.metadata.name for d in deployments) == ["shop-api", "shop-worker"]
    assert [s.metadata.name for s in services] == ["shop-api"], "worker has no primary"

    owner = {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact", "name": NAME,
             "uid": uid, "controller": True, "blockOwnerDeletion": True}
    for obj in rendered:
        if obj["kind"] == "Secret":
            continue
        name = obj["metadata"]["name"]
        read = live_deployment if obj["kind"] == "Deployment" else live_service
        live = read(cluster, namespace, name)
        group = name.removeprefix(f"{NAME}-")
        assert live["metadata"]["ownerReferences"] == [owner]
        assert live["metadata"]["labels"] == {
            "app.kubernetes.io/name": NAME, "app.kubernetes.io/component": group,
            "app.kubernetes.io/managed-by": "artifact-operator",
            "workload.dev/artifact": NAME, "workload.dev/container-group": group,
            "workload.dev/type": "service"}
        expected = normalise_quantities(obj["spec"])
        assert project(live["spec"], expected) == expected, f"{obj['kind']} {name}"

    selector = {"workload.dev/artifact": NAME, "workload.dev/container-group": "api"}
    api = live_deployment(cluster, namespace, "shop-api")
    assert api["spec"]["selector"] == {"matchLabels": selector}
    assert api["spec"]["replicas"] == 2
    assert api["spec"]["template"]["metadata"]["labels"]["workload.dev/container-group"] == "api"
    svc = live_service(cluster, namespace, "shop-api")
    assert svc["spec"]["selector"] == selector
    assert svc["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == \
        [("http", 8080, "http")]
    worker = live_deployment(cluster, namespace, "shop-worker")
    assert worker["spec"]["selector"] == {"matchLabels": {
        "workload.dev/artifact": NAME, "workload.dev/container-group": "worker"}}


# -- status from the kubelet's progress, and kubectl's view of it ----------------------------


def test_ready_pods_drive_status_from_progressing_to_ready_and_kubectl_shows_it(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, two_groups())
    status = wait_phase(cluster, namespace, "Progressing")
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Progressing")["status"] == "True"
    assert status["ready"] == "0/3"

    wait_for(lambda: len(cluster.core.list_namespaced_pod(
        namespace, label_selector=SELECTOR).items) == 3, timeout=30, what="3 pods")
    make_pods_ready(cluster.core, namespace, SELECTOR)
    status = wait_phase(cluster, namespace, "Ready")

    endpoint = f"http://shop-api.{namespace}.svc.cluster.local:8080"
    assert status["ready"] == "3/3"
    assert status["endpoint"] == endpoint
    assert status["containerGroups"] == [
        {"name": "api", "deployment": "shop-api", "service": "shop-api", "endpoint": endpoint,
         "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2},
        {"name": "worker", "deployment": "shop-worker",
         "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1},
    ]
    for type_, want in (("Ready", "True"), ("Progressing", "False"), ("Degraded", "False")):
        cond = condition(status, type_)
        assert cond["status"] == want, cond
        assert cond["observedGeneration"] == status["observedGeneration"]

    out = kubectl(cluster, "get", "art", "-n", namespace)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "TYPE", "LIFECYCLE", "VERSION", "PHASE", "READY",
                              "ENDPOINT", "AGE"]
    # VERSION is empty until the artifact is locked, so the row has one column less.
    assert row.split()[:-1] == [NAME, "service", "draft", "Ready", "3/3", endpoint]


# -- changes roll out; removed groups go; drift is undone ---------------------------------


def test_spec_change_rolls_out_progressing_then_ready_on_the_new_generation(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, one_group("nginx:1.27"))
    wait_for(lambda: cluster.core.list_namespaced_pod(namespace, label_selector=SELECTOR).items,
             timeout=30, what="a pod")
    make_pods_ready(cluster.core, namespace, SELECTOR)
    before = wait_phase(cluster, namespace, "Ready")

    changed = patch_artifact(cluster, namespace, NAME, {"spec": {"containerGroups": [
        {"name": "api", "containers": [{"name": "app", "imageUri": "nginx:1.28",
                                        "primary": True, "port": 8080}]}]}})
    generation = changed["metadata"]["generation"]
    assert generation > before["observedGeneration"]
    status = wait_phase(cluster, namespace, "Progressing")
    assert status["observedGeneration"] == generation
    assert condition(status, "Progressing")["status"] == "True"
    assert condition(status, "Ready")["observedGeneration"] == generation
    image = live_deployment(cluster, namespace, "shop-api")["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert image == "nginx:1.28"

    def new_pod_ready() -> bool:
        make_pods_ready(cluster.core, namespace, SELECTOR)
        return status_of(cluster, namespace).get("phase") == "Ready"

    wait_for(new_pod_ready, timeout=30, what="the new pod to be ready")
    status = wait_phase(cluster, namespace, "Ready")
    assert status["observedGeneration"] == generation
    assert status["ready"] == "1/1"
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Ready")["observedGeneration"] == generation


def test_removing_a_group_deletes_its_deployment_and_service(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    spec = two_groups()
    spec["spec"]["containerGroups"][1]["containers"][0].update(primary=True, port=6379)
    create_artifact(cluster, namespace, spec)
    wait_for(lambda: found(live_service, cluster, namespace, "shop-worker"), timeout=30,
             what="Service shop-worker")
    wait_for(lambda: found(live_service, cluster, namespace, "shop-api"), timeout=30,
             what="Service shop-api")

    groups = spec["spec"]["containerGroups"][:1]
    patch_artifact(cluster, namespace, NAME, {"spec": {"containerGroups": groups}})
    wait_for(lambda: gone(cluster.apps.read_namespaced_deployment, "shop-worker", namespace),
             timeout=10, what="Deployment shop-worker to be deleted")
    wait_for(lambda: gone(cluster.core.read_namespaced_service, "shop-worker", namespace),
             timeout=10, what="Service shop-worker to be deleted")
    assert live_deployment(cluster, namespace, "shop-api")
    assert live_service(cluster, namespace, "shop-api")
    status = wait_for(lambda: (s := status_of(cluster, namespace)) and
                      s["observedGeneration"] == 2 and s, timeout=10, what="status of gen 2")
    assert [g["name"] for g in status["containerGroups"]] == ["api"]


def test_deleted_deployment_is_recreated_within_seconds(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, one_group())
    first = wait_for(lambda: found(live_deployment, cluster, namespace, "shop-api"), timeout=30,
                     what="Deployment shop-api")
    cluster.apps.delete_namespaced_deployment("shop-api", namespace)

    def recreated() -> dict[str, Any] | None:
        live = found(live_deployment, cluster, namespace, "shop-api")
        return live if live and live["metadata"]["uid"] != first["metadata"]["uid"] else None

    again = wait_for(recreated, timeout=10, what="Deployment shop-api to be re-created")
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"


def test_image_changed_by_hand_is_reverted_within_seconds(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, one_group("nginx:1.27"))
    wait_for(lambda: found(live_deployment, cluster, namespace, "shop-api"), timeout=30,
             what="Deployment shop-api")
    cluster.apps.patch_namespaced_deployment("shop-api", namespace, {"spec": {"template": {
        "spec": {"containers": [{"name": "app", "image": "evil:latest"}]}}}})

    def image() -> str:
        live = live_deployment(cluster, namespace, "shop-api")
        return str(live["spec"]["template"]["spec"]["containers"][0]["image"])

    wait_for(lambda: image() == "nginx:1.27", timeout=10, what="the image to be restored")


def test_service_port_changed_by_hand_is_put_back_within_seconds(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """A port's number edited by hand (`kubectl patch --type json`) is put back: the
    Service ends with the rendered port only. Server-side apply keys ports by number, so
    applying ours beside the edited one would give two ports the name `http`."""
    create_artifact(cluster, namespace, one_group())
    wait_for(lambda: found(live_service, cluster, namespace, "shop-api"), timeout=30,
             what="Service shop-api")
    # A list body is sent as application/json-patch+json.
    cluster.core.patch_namespaced_service("shop-api", namespace, [
        {"op": "replace", "path": "/spec/ports/0/port", "value": 9090}])

    def ports() -> list[tuple[str, int, Any]]:
        live = live_service(cluster, namespace, "shop-api")
        return [(p.get("name"), p["port"], p.get("targetPort"))
                for p in live["spec"]["ports"]]

    def put_back() -> None:
        assert ports() == [("http", 8080, "http")]

    until_ok(put_back, timeout=10, what="the Service's port to be put back")

    # The repair leaves the port ours alone: a later change of it in the spec replaces it
    # (were it still held by the repair's own write, the old port would stay beside the new).
    patch_artifact(cluster, namespace, NAME, {"spec": one_group(port=8081)["spec"]})

    def moved() -> None:
        assert ports() == [("http", 8081, "http")]

    until_ok(moved, timeout=10, what="the Service's port to follow the spec")


def test_container_port_changed_by_hand_is_put_back_within_seconds(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """The same for the container's port in the Deployment's pod template."""
    create_artifact(cluster, namespace, one_group())
    wait_for(lambda: found(live_deployment, cluster, namespace, "shop-api"), timeout=30,
             what="Deployment shop-api")
    path = "/spec/template/spec/containers/0/ports/0/containerPort"
    cluster.apps.patch_namespaced_deployment("shop-api", namespace, [
        {"op": "replace", "path": path, "value": 9090}])

    def put_back() -> None:
        live = live_deployment(cluster, namespace, "shop-api")
        ports = live["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert [(p.get("name"), p["containerPort"]) for p in ports] == [("http", 8080)]

    until_ok(put_back, timeout=10, what="the container's port to be put back")

    patch_artifact(cluster, namespace, NAME, {"spec": one_group(port=8081)["spec"]})

    def moved() -> None:
        live = live_deployment(cluster, namespace, "shop-api")
        ports = live["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert [(p.get("name"), p["containerPort"]) for p in ports] == [("http", 8081)]

    until_ok(moved, timeout=10, what="the container's port to follow the spec")


def test_events_on_the_artifact_for_created_updated_deleted_children_and_none_on_restart(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    spec = two_groups()
    create_artifact(cluster, namespace, spec)
    want_created = {("Normal", "Created", f"Created {kind} {name}") for kind, name in (
        ("Deployment", "shop-api"), ("Deployment", "shop-worker"), ("Service", "shop-api"),
        ("Secret", "shop-api-token"))}
    wait_for(lambda: want_created <= set(events_of(cluster, namespace)), timeout=30,
             what="Created events")
    created = [e for e in raw_events(cluster, namespace) if e[1] == "Created"]
    assert len(created) < len(want_created), f"one Event per child, not per reconcile: {created}"

    changed = copy.deepcopy(spec["spec"]["containerGroups"][:1])
    changed[0]["containers"][1]["imageUri"] = "busybox:1.37"
    patch_artifact(cluster, namespace, NAME, {"spec": {"containerGroups": changed}})
    want_changed = {("Normal", "Updated", "Updated Deployment shop-api"),
                    ("Normal", "Deleted", "Deleted Deployment shop-worker")}
    wait_for(lambda: want_changed <= set(events_of(cluster, namespace)), timeout=30,
             what="Updated and Deleted events")
    wait_phase(cluster, namespace, "Progressing")

    operator.stop()
    before = Counter(events_of(cluster, namespace))
    assert all(n == 1 for n in before.values()), f"duplicate events: {before}"
    operator.start()
    # The restarted operator sees the same children and posts nothing; a change made after the
    # restart shows it is running and posting again.
    patch_artifact(cluster, namespace, NAME, {"spec": {"runtime": {"api": {"replicas": 3}}}})
    want_scaled = ("Normal", "Updated", "Updated Deployment shop-api")
    wait_for(lambda: Counter(events_of(cluster, namespace))[want_scaled] == 2, timeout=30,
             what="an Updated event after the restart")
    after = Counter(events_of(cluster, namespace))
    after[want_scaled] -= 1
    assert after == before


# -- invalid specs --------------------------------------------------------------------------


def test_invalid_update_fails_with_every_violation_and_touches_nothing_running(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    spec = two_groups()
    create_artifact(cluster, namespace, spec)
    wait_phase(cluster, namespace, "Progressing")
    before = {name: live_deployment(cluster, namespace, name)
              for name in ("shop-api", "shop-worker")}

    # Valid for the CRD schema, invalid for the cross-field rules: two primaries in `api`
    # (with a new image that must not roll out), and a port on a non-primary in `worker`.
    groups = copy.deepcopy(spec["spec"]["containerGroups"])
    groups[0]["containers"][0]["imageUri"] = "nginx:9.99"
    groups[0]["containers"][1].update(primary=True, port=9090)
    groups[1]["containers"][0]["port"] = 6379
    audit = AuditLog(require_audit_log(cluster)).mark()
    patch_artifact(cluster, namespace, NAME, {"spec": {"containerGroups": groups}})

    status = wait_phase(cluster, namespace, "Failed")
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    violations = validate(get_artifact(cluster, namespace, NAME))
    assert len(violations) >= 2
    for v in violations:
        assert str(v) in ready["message"], (str(v), ready["message"])
    assert "containerGroups[0]" in ready["message"] and "containerGroups[1]" in ready["message"]

    # The status write above is the positive signal that the operator handled the change;
    # the pause is the point of this check: over a stretch of time nothing more may happen
    # (no retry storm, no second status write, no Event per retry).
    pause(3)
    writes = audit.writes(namespace)
    artifact_writes = [w for w in writes if w.resource != "events"]
    assert [str(w) for w in artifact_writes] == [
        f"patch artifacts/status {namespace}/{NAME} -> 200"]
    assert len([w for w in writes if w.resource == "events"]) == 1
    for name, old in before.items():
        now = live_deployment(cluster, namespace, name)
        assert now["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"], name
        assert now["metadata"]["generation"] == old["metadata"]["generation"], name
        assert now["spec"]["template"] == old["spec"]["template"], name
    assert ("Warning", "InvalidSpec") in {e[:2] for e in events_of(cluster, namespace)}


# -- deletion -------------------------------------------------------------------------------


def test_deleting_the_artifact_garbage_collects_its_children(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, two_groups())
    wait_for(lambda: found(live_service, cluster, namespace, "shop-api"), timeout=30,
             what="Service shop-api")
    wait_for(lambda: found(cluster.core.read_namespaced_secret, "shop-api-token", namespace),
             timeout=30, what="Secret shop-api-token")
    delete_artifact(cluster, namespace, NAME)

    def all_gone() -> bool:
        return not (cluster.apps.list_namespaced_deployment(namespace).items
                    or cluster.core.list_namespaced_service(namespace).items
                    or cluster.core.list_namespaced_secret(
                        namespace, label_selector=SELECTOR).items)

    wait_for(all_gone, timeout=60, what="the garbage collector to delete the children")


def test_kubectl_delete_completes_while_the_operator_is_stopped(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    create_artifact(cluster, namespace, one_group())
    wait_for(lambda: found(live_deployment, cluster, namespace, "shop-api"), timeout=30,
             what="Deployment shop-api")
    wait_phase(cluster, namespace, "Progressing")
    assert not get_artifact(cluster, namespace, NAME)["metadata"].get("finalizers")
    operator.stop()

    out = kubectl(cluster, "delete", "art", NAME, "-n", namespace, "--wait=true",
                  "--timeout=30s")
    assert out.returncode == 0, out.stderr
    assert gone(get_artifact, cluster, namespace, NAME)
    wait_for(lambda: gone(cluster.apps.read_namespaced_deployment, "shop-api", namespace),
             timeout=60, what="the garbage collector to delete Deployment shop-api")
