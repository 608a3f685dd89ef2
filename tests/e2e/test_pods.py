"""What the operator renders, observed on real pods.

The operator runs the cheapest way users run it: `artifact-operator run --all-namespaces` as a
process next to the cluster, with the admin kubeconfig (inside netns.sh with the test process;
no image rollout, so it is up in seconds; tests/e2e/test_install.py covers the installed
image). The samples of deploy/samples/ run as they are but for their images
(tests/support/local_samples.py: local stand-ins, their Secrets, hostPath volumes for the NIM
claims, a node offering exactly the GPUs they ask for). Everything is observed from outside:
pod status, `kubectl exec` through the kubelet, Service endpoints, HTTP from the test process
to pod and Service IPs. The module's tests run in order on the same samples; the last ones
break and delete them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from ..conftest import Cluster, get_artifact, install_crd, patch_artifact
from ..support import local_samples
from ..support.images import NIM_PORT, SAMPLE_PORT
from ..support.operator import OperatorProcess
from ..support.wait import found, until_ok, wait_for
from .support import E2E, until_200
from .test_install import GROUP, is_ready, web_artifact

pytestmark = pytest.mark.e2e

SERVICE, DEDICATED, CACHED = "web", "llama-dedicated", "llama-cached"
NIM_PATH = "/opt/nim/.cache"  # ARTIFACT_OPERATOR_NIM_CACHE_PATH's default


@pytest.fixture(scope="module")
def operator(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    # test_install's uninstalls delete the CRD; it may still be going.
    extensions = client.ApiextensionsV1Api(e2e.cluster.api)
    wait_for(lambda: not _crd_terminating(extensions), timeout=120,
             what="the uninstalled CRD gone")
    install_crd(e2e.cluster.api)
    # Without warm-up Jobs: these tests show what each NIM server writes to its own claim
    # (a warm-up would write the shared cache first; that is tests/e2e/test_warmup.py's).
    with OperatorProcess(e2e.cluster.kubeconfig, None,
                         tmp_path_factory.mktemp("operator") / "operator.log",
                         env={"ARTIFACT_OPERATOR_CACHE_WARM_UP": "off"}) as proc:
        yield proc


def _crd_terminating(extensions: client.ApiextensionsV1Api) -> bool:
    crd = found(extensions.read_custom_resource_definition, "artifacts.workload.dev")
    return crd is not None and crd.metadata.deletion_timestamp is not None


@dataclass
class Samples:
    namespace: str
    secrets: dict[str, dict[str, str]]  # Secret name -> key -> value (never printed)


def kubectl_apply(e2e: E2E, docs: list[dict[str, Any]]) -> None:
    e2e.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def artifact_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_artifact(cluster, namespace, name).get("status") or {})


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found_ = [c for c in status.get("conditions", []) if c["type"] == type_]
    assert len(found_) == 1, status  # an AssertionError: wait_for polls on
    return dict(found_[0])


def pods_of(cluster: Cluster, namespace: str, artifact: str) -> list[Any]:
    return [p for p in cluster.core.list_namespaced_pod(
        namespace, label_selector=f"workload.dev/artifact={artifact}").items
        if p.metadata.deletion_timestamp is None]


def all_ready(cluster: Cluster, namespace: str, expected: dict[str, str]) -> dict[str, Any]:
    statuses = {name: artifact_status(cluster, namespace, name) for name in expected}
    summary = {n: (s.get("phase"), s.get("ready")) for n, s in statuses.items()}
    assert summary == {n: ("Ready", r) for n, r in expected.items()}, summary
    return statuses


def exec_in(e2e: E2E, pod: Any, container: str, *command: str,
            check: bool = True) -> Any:
    """`kubectl exec` (through the API server to the kubelet) of a busybox applet."""
    return e2e.kubectl("-n", pod.metadata.namespace, "exec", pod.metadata.name, "-c", container,
                       "--", "/bin/busybox", *command, check=check)


@pytest.fixture(scope="module")
def samples(e2e: E2E, operator: OperatorProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samples]:
    namespace = f"samples-{uuid.uuid4().hex[:6]}"
    e2e.cluster.core.create_namespace({"metadata": {"name": namespace}})
    # Local node: hostPath volumes for the NIM claims; elsewhere, the default storage class.
    volume_root = Path("/tmp") / f"artifact-e2e-{namespace}" if e2e.node else None
    needs, docs = local_samples.manifests(e2e.refs, namespace, volume_root)
    nodes = [n.metadata.name for n in e2e.cluster.core.list_node().items]
    node = e2e.node.name if e2e.node else nodes[0]
    local_samples.advertise_gpus(e2e.cluster.core, node, local_samples.gpus_needed(docs))
    try:
        kubectl_apply(e2e, needs)
        # As a user applies them; the stand-in images are the only change.
        e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
        # Ready through the samples' own probes (startup probes of 30 s initial delay).
        wait_for(lambda: all_ready(e2e.cluster, namespace,
                                   {SERVICE: "3/3", DEDICATED: "1/1", CACHED: "1/1"}),
                 timeout=180, interval=1, what="the samples Ready")
        yield Samples(namespace, {
            d["metadata"]["name"]: d["stringData"] for d in needs if d["kind"] == "Secret"})
    finally:
        with contextlib.suppress(client.ApiException):
            e2e.cluster.core.delete_namespace(namespace)
        e2e.cluster.core.delete_collection_persistent_volume(
            label_selector=f"{local_samples.PV_LABEL}={namespace}")
        if volume_root is not None:
            shutil.rmtree(volume_root, ignore_errors=True)


def test_the_service_sample_becomes_ready_through_its_probes(e2e: E2E, samples: Samples) -> None:
    status = artifact_status(e2e.cluster, samples.namespace, SERVICE)
    assert condition(status, "Ready")["status"] == "True"
    assert {g["name"]: g["readyReplicas"] for g in status["containerGroups"]} == \
        {"api": 2, "worker": 1}
    api = [p for p in pods_of(e2e.cluster, samples.namespace, SERVICE)
           if p.metadata.labels["workload.dev/container-group"] == "api"]
    assert len(api) == 2
    for pod in api:
        # The kubelet ran the sample's startup probe, then its readiness probe, for real.
        app = pod.spec.containers[0]
        assert (app.startup_probe.http_get.path, app.readiness_probe.http_get.path) == \
            ("/healthz", "/ready")
        for container in pod.status.container_statuses:
            assert container.ready and container.started and container.restart_count == 0, \
                container
        assert e2e.pod_get(pod, SAMPLE_PORT, "/ready").status == 200
    assert status["endpoint"] == \
        f"http://web-api.{samples.namespace}.svc.cluster.local:{SAMPLE_PORT}"


def test_the_security_context_applies_in_the_container(e2e: E2E, samples: Samples) -> None:
    pod = next(p for p in pods_of(e2e.cluster, samples.namespace, SERVICE)
               if p.metadata.labels["workload.dev/container-group"] == "api")
    for container in ("app", "log-shipper"):
        assert exec_in(e2e, pod, container, "id", "-u").stdout.strip() == "1000"
        assert exec_in(e2e, pod, container, "id", "-g").stdout.strip() == "1000"
        # pid 1 is the container's own process: no capability in any set, no privilege
        # escalation, the runtime's default seccomp filter (mode 2).
        proc = dict(line.split(":", 1) for line in exec_in(
            e2e, pod, container, "cat", "/proc/1/status").stdout.splitlines() if ":" in line)
        caps = {k: v.strip() for k, v in proc.items() if k.startswith("Cap")}
        assert caps == {k: "0000000000000000" for k in
                        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}, (container, caps)
        assert proc["NoNewPrivs"].strip() == "1"
        assert proc["Seccomp"].strip() == "2"
    # The sample sets readOnlyRootFilesystem on app only: the same image is writable in the
    # sidecar, so the refusal comes from the security context, not the image.
    refused = exec_in(e2e, pod, "app", "touch", "/probe-write", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    assert exec_in(e2e, pod, "log-shipper", "touch", "/tmp/probe-write").returncode == 0


def _env_digest(e2e: E2E, pod: Any, container: str, name: str) -> str:
    """sha256 of the line NAME=value in the environment of the container's pid 1, taken in
    the container: the value itself never leaves it."""
    script = (f"/bin/busybox tr '\\0' '\\n' </proc/1/environ | /bin/busybox grep '^{name}=' "
              "| /bin/busybox sha256sum")
    done = e2e.kubectl("-n", pod.metadata.namespace, "exec", pod.metadata.name, "-c", container,
                       "--", "/bin/sh", "-c", script)
    return str(done.stdout.split()[0])


def test_the_api_token_and_credential_arrive_in_the_environment(
        e2e: E2E, samples: Samples) -> None:
    secret = e2e.cluster.core.read_namespaced_secret("web-api-token", samples.namespace)
    token = base64.b64decode(secret.data["token"]).decode()
    expected = {
        "PLATFORM_API_TOKEN": hashlib.sha256(f"PLATFORM_API_TOKEN={token}\n".encode())
        .hexdigest(),
        "DATABASE_PASSWORD": hashlib.sha256(
            f"DATABASE_PASSWORD={samples.secrets['web-shop-db']['password']}\n".encode())
        .hexdigest(),
    }
    assert len(token) >= 32
    for pod in pods_of(e2e.cluster, samples.namespace, SERVICE):
        if pod.metadata.labels["workload.dev/container-group"] != "api":
            continue
        got = {name: _env_digest(e2e, pod, "app", name) for name in expected}
        assert got == expected, "the values differ (digests shown, never the values)"


def test_the_service_has_exactly_the_ready_pods_as_endpoints(
        e2e: E2E, samples: Samples) -> None:
    pods = [p for p in pods_of(e2e.cluster, samples.namespace, SERVICE)
            if p.metadata.labels["workload.dev/container-group"] == "api"]
    assert all(is_ready(p) for p in pods)
    endpoints = e2e.cluster.core.read_namespaced_endpoints("web-api", samples.namespace)
    addresses = sorted((a.ip, a.target_ref.name) for s in endpoints.subsets
                       for a in s.addresses or [])
    assert addresses == sorted((p.status.pod_ip, p.metadata.name) for p in pods)
    assert not [a for s in endpoints.subsets for a in s.not_ready_addresses or []]
    assert [(p.name, p.port) for s in endpoints.subsets for p in s.ports] == \
        [("http", SAMPLE_PORT)]
    # The worker group has no primary container: no Service selects it.
    assert found(e2e.cluster.core.read_namespaced_service, "web-worker",
                 samples.namespace) is None
    service = e2e.cluster.core.read_namespaced_service("web-api", samples.namespace)
    answer = until_200(lambda: e2e.service_get(service, SAMPLE_PORT, "/index.html"),
                       what="the Service's cluster IP to answer")
    assert answer.body == "shop\n"


def test_a_wrong_readiness_path_keeps_it_progressing_then_degraded(
        e2e: E2E, operator: OperatorProcess, namespace: str) -> None:
    """Degraded comes from the Deployment's progress deadline, 600 s unless set: the spec has no
    field for it, so the test sets it on the Deployment (as a user may: without a startup
    probe the operator does not render the field, so it leaves another manager's value)."""
    e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(
        web_artifact("unready", e2e.refs["web"], ready_path="/missing")))

    def probe_fails() -> dict[str, Any]:
        events = e2e.cluster.core.list_namespaced_event(namespace).items
        assert any(e.reason == "Unhealthy" and e.involved_object.kind == "Pod"
                   and "Readiness probe failed" in (e.message or "")
                   and "404" in (e.message or "") for e in events), "no failed probe yet"
        status = artifact_status(e2e.cluster, namespace, "unready")
        assert status.get("phase") == "Progressing", status
        return status

    status = wait_for(probe_fails, timeout=60, what="the kubelet's failed readiness probe")
    assert status["ready"] == "0/1"
    progressing = condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "RolloutInProgress")
    assert condition(status, "Degraded")["status"] == "False"
    (pod,) = pods_of(e2e.cluster, namespace, "unready")
    assert pod.status.phase == "Running" and not is_ready(pod)
    endpoints = e2e.cluster.core.read_namespaced_endpoints("unready-web", namespace)
    assert [a.ip for s in endpoints.subsets or [] for a in s.not_ready_addresses or []] == \
        [pod.status.pod_ip]
    assert not [a for s in endpoints.subsets or [] for a in s.addresses or []]

    e2e.kubectl("-n", namespace, "patch", "deployment", "unready-web", "-p",
                '{"spec":{"progressDeadlineSeconds":5}}')

    def degraded() -> dict[str, Any]:
        status = artifact_status(e2e.cluster, namespace, "unready")
        assert status.get("phase") == "Degraded", status
        return status

    status = wait_for(degraded, timeout=60, what="Degraded after the progress deadline")
    # The reason, in the kubelet's words (its Event on the pod), naming the pod.
    assert condition(status, "Degraded")["message"] == (
        f"group {GROUP}: rollout exceeded its progress deadline (pod {pod.metadata.name}: "
        "Readiness probe failed: HTTP probe failed with statuscode: 404)")
    assert condition(status, "Degraded")["reason"] == "ProgressDeadlineExceeded"
    assert condition(status, "Ready")["status"] == "False"
    # The operator leaves the deadline it does not render to whoever set it.
    deployment = e2e.cluster.apps.read_namespaced_deployment("unready-web", namespace)
    assert deployment.spec.progress_deadline_seconds == 5


def test_liveness_restarts_are_counted_in_status(
        e2e: E2E, operator: OperatorProcess, namespace: str) -> None:
    """A liveness probe that fails once the container has been ready a moment: the kubelet
    restarts the container, its pod goes unready and ready again, and the status counts the
    restarts as the kubelet does."""
    manifest = web_artifact("restarts", e2e.refs["web"])
    manifest["spec"]["containerGroups"][0]["containers"][0]["livenessProbe"] = {
        "path": "/missing", "initialDelaySeconds": 3, "periodSeconds": 1, "timeoutSeconds": 1,
        "failureThreshold": 1}
    e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    def counted() -> int:
        pods = pods_of(e2e.cluster, namespace, "restarts")
        assert len(pods) == 1, pods
        pod = pods[0]
        kubelet = sum(c.restart_count for c in pod.status.container_statuses or [])
        status = artifact_status(e2e.cluster, namespace, "restarts")
        (group,) = status.get("containerGroups", [{}])
        assert kubelet >= 1 and is_ready(pod), (kubelet, is_ready(pod))
        assert group.get("restarts") == kubelet, (group, kubelet)
        return kubelet

    wait_for(counted, timeout=90, interval=0.5, what="the kubelet's restarts counted in status")
    events = e2e.cluster.core.list_namespaced_event(
        namespace, field_selector="reason=Unhealthy").items
    assert any("Liveness probe failed" in (e.message or "") for e in events)


def test_an_approved_capability_is_present_and_nothing_else(
        e2e: E2E, operator: OperatorProcess, namespace: str) -> None:
    """capabilities.add is admin-only: the group is held until an admin approves it with
    `kubectl artifact approve` (an ArtifactApproval bound to the artifact, its image pinned
    by digest); then its container holds that capability and no other."""
    manifest = web_artifact("netcap", e2e.pinned("web"))
    manifest["spec"]["containerGroups"][0]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["NET_BIND_SERVICE"]}}
    e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))

    def held() -> dict[str, Any]:
        status = artifact_status(e2e.cluster, namespace, "netcap")
        assert condition(status, "Ready")["reason"] == "ElevatedNotApproved", status
        return status

    wait_for(held, timeout=30, what="the unapproved group held")
    assert pods_of(e2e.cluster, namespace, "netcap") == []
    plugin = Path(sys.executable).parent / "kubectl-artifact"
    approved = subprocess.run([str(plugin), "-n", namespace, "approve", "netcap"],
                              capture_output=True, text=True, env=e2e.env(), timeout=60)
    assert approved.returncode == 0, approved.stderr
    assert "securityContext.capabilities.add" in approved.stdout, approved.stdout
    wait_for(lambda: all_ready(e2e.cluster, namespace, {"netcap": "1/1"}), timeout=90,
             what="netcap Ready after the approval")
    (pod,) = pods_of(e2e.cluster, namespace, "netcap")
    assert pod.spec.containers[0].image == e2e.pinned("web")
    proc = dict(line.split(":", 1) for line in exec_in(
        e2e, pod, "httpd", "cat", "/proc/1/status").stdout.splitlines() if ":" in line)
    caps = {k: int(v.strip(), 16) for k, v in proc.items() if k.startswith("Cap")}
    net_bind_service = 1 << 10
    # In the bounding set; the kernel gives a non-root process (uid 1000) no effective
    # capability without file capabilities, and nothing else is in any set.
    assert caps["CapBnd"] == net_bind_service, caps
    assert all(v & ~net_bind_service == 0 for v in caps.values()), caps
    assert proc["NoNewPrivs"].strip() == "1"
    assert exec_in(e2e, pod, "httpd", "id", "-u").stdout.strip() == "1000"


def _boots(e2e: E2E, pod: Any) -> list[str]:
    answer = e2e.pod_get(pod, NIM_PORT, "/boots")
    assert answer.status == 200, answer
    return answer.body.splitlines()


def test_nim_containers_write_their_cache_claims(e2e: E2E, samples: Samples) -> None:
    for name, mode in ((DEDICATED, "dedicatedPvc"), (CACHED, "nimCache")):
        status = artifact_status(e2e.cluster, samples.namespace, name)
        storage = status["storage"]
        assert (storage["mode"], storage["phase"]) == (mode, "Bound"), storage
        (pod,) = pods_of(e2e.cluster, samples.namespace, name)
        # Ready only after the container wrote its cache (the image's health file comes last).
        assert _boots(e2e, pod) == [f"{pod.metadata.name} uid=1000"]
        written = exec_in(e2e, pod, "nim", "stat", "-c", "%u %n",
                          f"{NIM_PATH}/model.bin").stdout.strip()
        assert written == f"1000 {NIM_PATH}/model.bin"
        assert "tmpfs" in exec_in(e2e, pod, "nim", "grep", " /dev/shm ", "/proc/mounts").stdout
        claim = e2e.cluster.core.read_namespaced_persistent_volume_claim(
            storage["claimName"], samples.namespace)
        (volume,) = [v for v in pod.spec.volumes if v.persistent_volume_claim]
        assert volume.persistent_volume_claim.claim_name == storage["claimName"]
        if e2e.node is not None:  # the file is on the claim's volume, seen from the node
            pv = e2e.cluster.core.read_persistent_volume(claim.spec.volume_name)
            on_node = Path(pv.spec.host_path.path) / "model.bin"
            assert on_node.read_text() == f"weights fetched by {pod.metadata.name}\n"
            assert on_node.stat().st_uid == 1000


def test_a_nim_spec_change_rolls_one_pod_at_a_time_and_keeps_the_cache(
        e2e: E2E, samples: Samples) -> None:
    """maxSurge 0: a rollout must never need a spare GPU. Every pod event of the rollout is
    watched: never two pods of a group on the node at once that are bound and not yet asked
    to go (no surge)."""
    ns = samples.namespace

    def one_pod_each() -> Any:
        # Every pod the listing holds is counted, those on their way out too: an earlier
        # pod of the samples' start still terminating would count as a second pod.
        listed = e2e.cluster.core.list_namespaced_pod(ns,
                                                      label_selector="workload.dev/type=nim")
        names = sorted((p.metadata.labels["workload.dev/artifact"], p.metadata.name,
                        p.status.phase) for p in listed.items)
        assert [(a, phase) for a, _, phase in names] == \
            [(CACHED, "Running"), (DEDICATED, "Running")], names
        return listed

    listed = wait_for(one_pod_each, timeout=60, what="one pod of each NIM artifact")
    before = {p.metadata.labels["workload.dev/artifact"]: p.metadata.name for p in listed.items}
    fast = {"initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1}
    for name in before:  # the change: faster probes (a new pod template)
        spec = get_artifact(e2e.cluster, ns, name)["spec"]
        container = spec["containerGroups"][0]["containers"][0]
        for probe in ("startupProbe", "readinessProbe"):
            if probe in container:
                container[probe].update(fast)
        patch_artifact(e2e.cluster, ns, name, {"spec": {"containerGroups":
                                                         spec["containerGroups"]}})
    on_node: dict[str, set[str]] = {name: {before[name]} for name in before}
    most = {name: 1 for name in before}
    seen: list[tuple[str, str, str, str | None, str]] = []  # shown if the assertion fails
    replaced: dict[str, str] = {}
    for event in watch.Watch().stream(
            e2e.cluster.core.list_namespaced_pod, ns, label_selector="workload.dev/type=nim",
            resource_version=listed.metadata.resource_version, timeout_seconds=150):
        pod = event["object"]
        artifact = pod.metadata.labels["workload.dev/artifact"]
        seen.append((artifact, event["type"], pod.metadata.name, pod.spec.node_name,
                     pod.status.phase))
        # A pod asked to go (deletionTimestamp) no longer counts: the Deployment controller
        # replaces it at once under maxSurge 0, and this node advertises no GPUs that would
        # hold the new pod Pending until the old one is gone (on a GPU node the scheduler
        # does). A surge (a new pod bound beside an old one not yet asked to go) still fails.
        if event["type"] == "DELETED" or pod.metadata.deletion_timestamp:
            on_node[artifact].discard(pod.metadata.name)
        elif pod.spec.node_name:
            on_node[artifact].add(pod.metadata.name)
        most[artifact] = max(most[artifact], len(on_node[artifact]))
        if pod.metadata.name != before[artifact] and is_ready(pod) and \
                event["type"] != "DELETED":
            replaced[artifact] = pod.metadata.name
        if len(replaced) == 2 and all(before[a] not in on_node[a] for a in before):
            break
    assert sorted(replaced) == [CACHED, DEDICATED], f"rollouts not done: {on_node}"
    assert most == {CACHED: 1, DEDICATED: 1}, (most, seen)
    # The new pod found what the old one wrote on the claim, and did not fetch it again.
    for name, new in replaced.items():
        (pod,) = pods_of(e2e.cluster, ns, name)
        assert pod.metadata.name == new
        assert _boots(e2e, pod) == [f"{before[name]} uid=1000", f"{new} uid=1000"]
        assert exec_in(e2e, pod, "nim", "cat", f"{NIM_PATH}/model.bin").stdout == \
            f"weights fetched by {before[name]}\n"
    wait_for(lambda: all_ready(e2e.cluster, ns, {DEDICATED: "1/1", CACHED: "1/1"}),
             timeout=60, what="both NIM artifacts Ready after the rollout")


def test_an_invalid_spec_leaves_the_running_pods_untouched(e2e: E2E, samples: Samples) -> None:
    ns = samples.namespace
    pods = pods_of(e2e.cluster, ns, SERVICE)
    running = {p.metadata.uid: [(c.name, c.restart_count, c.state.running.started_at)
                                for c in p.status.container_statuses] for p in pods}
    generations = {d.metadata.name: d.metadata.generation for d in
                   e2e.cluster.apps.list_namespaced_deployment(
                       ns, label_selector=f"workload.dev/artifact={SERVICE}").items}
    # A cross-field rule (storage is for nim only): a 1.20 server stores it (no CEL), the
    # operator refuses it; a 1.25+ server refuses it itself.
    done = e2e.kubectl("-n", ns, "patch", "artifact", SERVICE, "--type", "merge", "-p",
                       '{"spec":{"storage":{"mode":"dedicatedPvc"}}}', check=False)
    if e2e.minor >= 25:
        assert done.returncode != 0 and "storage" in done.stderr, done.stderr
    else:
        assert done.returncode == 0, done.stderr
        generation = get_artifact(e2e.cluster, ns, SERVICE)["metadata"]["generation"]

        def failed() -> dict[str, Any]:
            status = artifact_status(e2e.cluster, ns, SERVICE)
            assert status.get("observedGeneration") == generation, status
            assert status.get("phase") == "Failed", status
            return status

        status = wait_for(failed, timeout=30, what="the operator to judge the invalid spec")
        ready = condition(status, "Ready")
        assert ready["reason"] == "InvalidSpec"
        assert "spec.storage: storage is only allowed with type nim" in ready["message"]
    after = pods_of(e2e.cluster, ns, SERVICE)
    assert {p.metadata.uid: [(c.name, c.restart_count, c.state.running.started_at)
                             for c in p.status.container_statuses] for p in after} == running
    assert all(is_ready(p) for p in after)
    assert {d.metadata.name: d.metadata.generation for d in
            e2e.cluster.apps.list_namespaced_deployment(
                ns, label_selector=f"workload.dev/artifact={SERVICE}").items} == generations


def test_deleting_the_artifacts_removes_every_pod(e2e: E2E, samples: Samples) -> None:
    ns = samples.namespace
    assert len(e2e.cluster.core.list_namespaced_pod(ns).items) == 5
    e2e.kubectl("-n", ns, "delete", "artifacts", "--all")

    def gone() -> None:
        left = [(p.metadata.name, p.status.phase)
                for p in e2e.cluster.core.list_namespaced_pod(ns).items]
        assert left == [], left

    until_ok(gone, timeout=90, interval=0.5, what="every pod of the samples gone")
    assert not e2e.cluster.apps.list_namespaced_deployment(ns).items
    assert not e2e.cluster.core.list_namespaced_service(ns).items
    # The shared cache outlives its last user (retention `keep`); the dedicated claim goes.
    cache = {c for c in local_samples.nim_claims(
        [local_samples.localized(s, e2e.refs) for s in local_samples.load()], ns)
        if c.startswith("nim-cache-")}
    assert len(cache) == 1

    def claims_left() -> None:
        claims = {c.metadata.name for c in
                  e2e.cluster.core.list_namespaced_persistent_volume_claim(ns).items
                  if c.metadata.deletion_timestamp is None}
        assert claims == cache, claims

    until_ok(claims_left, timeout=30, what="the dedicated claim deleted, the cache kept")
