"""The shipped install, for real: the operator installed the way README.md says (kustomize,
Helm), its pods running the operator image on a real node, then uninstalled.

Each class is one install, and its tests run in order on it: pods Ready, one Lease holder,
health and metrics on the pods' IPs, the webhook through its Service, an Artifact whose pod
really runs and passes its readiness probe, the Lease handed over when the leader's pod is
deleted, and last the uninstall, which leaves what README.md's "Upgrade and uninstall" says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import yaml
from kubernetes import client, watch

from ..conftest import Cluster, get_artifact
from ..support.images import WEB_PORT, containerd_name
from ..support.wait import found, until_ok, wait_for
from .installs import (
    DEPLOYMENT,
    LEASE,
    MANAGER,
    NAMESPACE,
    HelmInstall,
    Install,
    KustomizeInstall,
)
from .support import E2E, until_200

pytestmark = pytest.mark.e2e

GROUP = "web"  # the container group of web_artifact: its Deployment and Service are NAME-web


def web_artifact(name: str, image: str, ready_path: str = "/ready") -> dict[str, Any]:
    """busybox httpd (images.WEB) with probes that pass at once when the path exists."""
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": GROUP, "containers": [{
                "name": "httpd", "imageUri": image, "primary": True, "port": WEB_PORT,
                "readinessProbe": {"path": ready_path, "initialDelaySeconds": 0,
                                   "periodSeconds": 1, "timeoutSeconds": 1,
                                   "failureThreshold": 1},
                "livenessProbe": {"path": "/healthz", "initialDelaySeconds": 0,
                                  "periodSeconds": 5, "timeoutSeconds": 1}}]}]}}


def operator_pods(cluster: Cluster) -> list[Any]:
    """The operator's pods that are not on their way out."""
    pods = cluster.core.list_namespaced_pod(NAMESPACE, label_selector=MANAGER).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def two_ready_operator_pods(cluster: Cluster) -> list[Any]:
    pods = operator_pods(cluster)
    assert len(pods) == 2 and all(is_ready(p) for p in pods), [
        (p.metadata.name, p.status.phase, is_ready(p)) for p in pods]
    return pods


def lease_holder(cluster: Cluster) -> str | None:
    lease = found(client.CoordinationV1Api(cluster.api).read_namespaced_lease, LEASE, NAMESPACE)
    return lease.spec.holder_identity if lease else None  # type: ignore[no-any-return]


def apply(e2e: E2E, namespace: str, manifest: dict[str, Any]) -> Any:
    """`kubectl apply` as a user does: the API server's answer, webhook included."""
    return e2e.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest),
                       check=False)


def ready_artifact(e2e: E2E, namespace: str, name: str) -> dict[str, Any]:
    """Wait until the Artifact says Ready, 1/1 (a real pod passed its readiness probe)."""
    def ready() -> dict[str, Any]:
        status = get_artifact(e2e.cluster, namespace, name).get("status", {})
        assert status.get("phase") == "Ready" and status.get("ready") == "1/1", status
        return dict(status)
    return wait_for(ready, timeout=120, what=f"Artifact {name} Ready")


def workload_pod(cluster: Cluster, namespace: str, artifact: str) -> Any:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"workload.dev/artifact={artifact}").items
    (pod,) = [p for p in pods if p.metadata.deletion_timestamp is None]
    return pod


class InstallScenario:
    """The steps every install goes through; a subclass names the install."""

    kind: ClassVar[type[Install]]

    @pytest.fixture(scope="class")
    @classmethod
    def install(cls, e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
        install = cls.kind(e2e, tmp_path_factory.mktemp(cls.kind.name))
        try:
            install.install()
            yield install
        finally:
            # Shown with a failure: what the operator said.
            for pod in operator_pods(e2e.cluster):
                logs = e2e.kubectl("-n", NAMESPACE, "logs", pod.metadata.name, check=False)
                print(f"---- {pod.metadata.name} ----\n{logs.stdout[-6000:]}")
            install.cleanup()

    def test_both_operator_pods_are_ready_with_the_operator_image(
            self, install: Install, e2e: E2E) -> None:
        # Ready is the pods' own readiness probe (/readyz: kopf started, webhook serving).
        pods = wait_for(lambda: two_ready_operator_pods(e2e.cluster), timeout=180,
                        what="two Ready operator pods")
        for pod in pods:
            (container,) = pod.spec.containers
            assert container.readiness_probe.http_get.path == "/readyz"
            (status,) = pod.status.container_statuses
            assert status.image == install.image, status.image
            assert pod.spec.node_name == (e2e.node.name if e2e.node else pod.spec.node_name)
            # uid 65532 with no passwd entry, as the image runs everywhere.
            uid = e2e.kubectl("-n", NAMESPACE, "exec", pod.metadata.name, "--", "id", "-u")
            assert uid.stdout.strip() == "65532"

    def test_one_replica_holds_the_lease(self, install: Install, e2e: E2E) -> None:
        pods = {p.metadata.name for p in two_ready_operator_pods(e2e.cluster)}
        # Right after the install's rollout the replaced leader may still be shutting down;
        # it hands the Lease over when it has stopped.
        holder = wait_for(lambda: lease_holder(e2e.cluster) in pods and lease_holder(
            e2e.cluster), timeout=60, what=f"a Lease holder among {sorted(pods)}")

        def leaders() -> list[str]:
            said = [name for name in sorted(pods) if f"{name} is the leader" in e2e.kubectl(
                "-n", NAMESPACE, "logs", name).stdout]
            assert said, "no replica logged its leadership yet"
            return said

        assert wait_for(leaders, timeout=60, what="the leader's log") == [holder]

    def test_health_and_metrics_answer_on_each_pod(self, install: Install, e2e: E2E) -> None:
        for pod in two_ready_operator_pods(e2e.cluster):
            assert e2e.pod_get(pod, 8081, "/healthz").status == 200
            assert e2e.pod_get(pod, 8081, "/readyz").status == 200
            metrics = e2e.pod_get(pod, 8080, "/metrics")
            assert metrics.status == 200
            assert "artifact_operator_reconcile_duration_seconds" in metrics.body
            assert "process_resident_memory_bytes" in metrics.body

    def test_the_webhook_answers_through_its_service(
            self, install: Install, e2e: E2E, namespace: str) -> None:
        pod_ips = {p.status.pod_ip for p in two_ready_operator_pods(e2e.cluster)}
        admission = client.AdmissionregistrationV1Api(e2e.cluster.api)
        (config,) = [w for w in admission.list_validating_webhook_configuration().items
                     if w.metadata.name.startswith("artifact-operator")]
        service = config.webhooks[0].client_config.service
        assert service is not None and service.namespace == NAMESPACE, "called by Service"

        def served_by_both() -> None:
            endpoints = e2e.cluster.core.read_namespaced_endpoints(service.name, NAMESPACE)
            ips = {a.ip for s in endpoints.subsets or [] for a in s.addresses or []}
            assert ips == pod_ips, ips

        until_ok(served_by_both, timeout=60, what="the webhook Service's endpoints")
        invalid = web_artifact("invalid", e2e.refs["web"])
        invalid["spec"]["storage"] = {"mode": "dedicatedPvc"}  # a cross-field rule: nim only
        refused = apply(e2e, namespace, invalid)
        assert refused.returncode != 0
        assert 'admission webhook "validate-artifact.workload.dev" denied the request' in \
            refused.stderr, refused.stderr
        assert "spec.storage: storage is only allowed with type nim" in refused.stderr
        admitted = apply(e2e, namespace, web_artifact("valid", e2e.refs["web"]))
        assert admitted.returncode == 0, admitted.stderr
        assert "artifact.workload.dev/valid created" in admitted.stdout
        assert found(get_artifact, e2e.cluster, namespace, "invalid") is None

    def test_an_artifact_runs_on_the_node_and_becomes_ready(
            self, install: Install, e2e: E2E, namespace: str) -> None:
        assert apply(e2e, namespace, web_artifact("web", e2e.refs["web"])).returncode == 0
        status = ready_artifact(e2e, namespace, "web")
        pod = workload_pod(e2e.cluster, namespace, "web")
        (container,) = pod.status.container_statuses
        assert container.ready and container.state.running, container
        assert container.image == containerd_name(e2e.refs["web"])
        assert pod.spec.containers[0].readiness_probe.http_get.path == "/ready"
        assert e2e.pod_get(pod, WEB_PORT, "/ready").status == 200
        service = e2e.cluster.core.read_namespaced_service(f"web-{GROUP}", namespace)
        until_200(lambda: e2e.service_get(service, WEB_PORT, "/healthz"),
                  what="the Service's cluster IP to answer")
        assert status["endpoint"] == \
            f"http://web-{GROUP}.{namespace}.svc.cluster.local:{WEB_PORT}"

        # The probe is real: a path the server lacks keeps the pod, and the artifact, unready.
        unready = web_artifact("unready", e2e.refs["web"], ready_path="/missing")
        assert apply(e2e, namespace, unready).returncode == 0

        def probe_failed() -> None:
            events = e2e.cluster.core.list_namespaced_event(namespace).items
            assert any(e.reason == "Unhealthy" and e.involved_object.name.startswith("unready-")
                       and "404" in (e.message or "") for e in events), "no failed probe yet"

        until_ok(probe_failed, timeout=90, what="a failed readiness probe of unready")
        pod = workload_pod(e2e.cluster, namespace, "unready")
        assert pod.status.phase == "Running" and not is_ready(pod)
        status = get_artifact(e2e.cluster, namespace, "unready").get("status", {})
        assert status.get("phase") != "Ready" and status.get("ready") == "0/1", status

    def test_deleting_the_leader_pod_hands_the_lease_to_another_replica(
            self, install: Install, e2e: E2E, namespace: str) -> None:
        coordination = client.CoordinationV1Api(e2e.cluster.api)
        pods = {p.metadata.name for p in two_ready_operator_pods(e2e.cluster)}

        def held() -> Any:
            lease = coordination.read_namespaced_lease(LEASE, NAMESPACE)
            assert lease.spec.holder_identity in pods, lease.spec.holder_identity
            return lease

        lease = wait_for(held, timeout=60, what="a Lease held by one of the pods")
        holder = lease.spec.holder_identity
        e2e.cluster.core.delete_namespaced_pod(holder, NAMESPACE)  # SIGTERM, grace period
        # Every change of the Lease from before the deletion on: the leader hands it back on
        # SIGTERM (no holder, a 1 s lease), then a replica takes it.
        released, successor = False, None
        for event in watch.Watch().stream(
                coordination.list_namespaced_lease, NAMESPACE,
                field_selector=f"metadata.name={LEASE}",
                resource_version=lease.metadata.resource_version, timeout_seconds=90):
            spec = event["object"].spec
            if not spec.holder_identity:
                released = True
            elif spec.holder_identity != holder:
                successor = spec.holder_identity
                break
        assert released, f"{holder} did not release the Lease on SIGTERM"
        assert successor is not None, "no replica took the Lease"
        # The other replica, or the one replacing the deleted pod if it campaigned first.
        assert successor in {p.metadata.name for p in operator_pods(e2e.cluster)}
        print(f"Lease: {holder} released it, {successor} took it")
        # The new leader reconciles.
        assert apply(e2e, namespace, web_artifact("after", e2e.refs["web"])).returncode == 0
        ready_artifact(e2e, namespace, "after")
        install.rollout_status()  # the Deployment has replaced the deleted pod
        wait_for(lambda: two_ready_operator_pods(e2e.cluster), timeout=180,
                 what="two Ready operator pods again")

    def test_uninstall_leaves_what_the_readme_says(
            self, install: Install, e2e: E2E, namespace: str) -> None:
        assert apply(e2e, namespace, web_artifact("kept", e2e.refs["web"])).returncode == 0
        ready_artifact(e2e, namespace, "kept")
        install.uninstall()
        operator = found(e2e.cluster.apps.read_namespaced_deployment, DEPLOYMENT, NAMESPACE)
        assert operator is None
        if isinstance(install, KustomizeInstall):
            # "deletes the CRD too, and with it every Artifact and, through owner references,
            # every Deployment, Service, claim and Secret they own"
            assert _cluster_wide_objects(e2e.cluster) == {}
            assert found(e2e.cluster.core.read_namespace, NAMESPACE) is None

            def children_gone() -> None:
                assert not e2e.cluster.apps.list_namespaced_deployment(namespace).items
                assert not e2e.cluster.core.list_namespaced_service(namespace).items

            until_ok(children_gone, timeout=90, what="the garbage collector")
        else:
            # "`helm uninstall` leaves the CRDs and the Artifacts; the children then stop
            # being reconciled but keep running" (and the namespace --create-namespace made).
            assert _cluster_wide_objects(e2e.cluster) == {"CustomResourceDefinition": [
                "artifactapprovals.workload.dev", "artifacts.workload.dev"]}
            assert found(e2e.cluster.core.read_namespace, NAMESPACE) is not None
            assert get_artifact(e2e.cluster, namespace, "kept")["status"]["phase"] == "Ready"
            deployment = e2e.cluster.apps.read_namespaced_deployment(f"kept-{GROUP}", namespace)
            assert deployment.status.ready_replicas == 1
            assert is_ready(workload_pod(e2e.cluster, namespace, "kept"))
            assert not operator_pods(e2e.cluster)


def _cluster_wide_objects(cluster: Cluster) -> dict[str, list[str]]:
    """Cluster-scoped objects of ours: the CRD, ClusterRoles and bindings, webhooks."""
    crds = client.ApiextensionsV1Api(cluster.api).list_custom_resource_definition().items
    admission = client.AdmissionregistrationV1Api(cluster.api)
    named = {
        "CustomResourceDefinition": [c.metadata.name for c in crds
                                     if c.spec.group == "workload.dev"],
        "ClusterRole": [r.metadata.name for r in cluster.rbac.list_cluster_role().items
                        if r.metadata.name.startswith("artifact-")],
        "ClusterRoleBinding": [b.metadata.name for b in
                               cluster.rbac.list_cluster_role_binding().items
                               if b.metadata.name.startswith("artifact-")],
        "ValidatingWebhookConfiguration": [
            w.metadata.name for w in admission.list_validating_webhook_configuration().items
            if w.metadata.name.startswith("artifact-")],
        "MutatingWebhookConfiguration": [
            w.metadata.name for w in admission.list_mutating_webhook_configuration().items
            if w.metadata.name.startswith("artifact-")],
    }
    return {kind: names for kind, names in named.items() if names}


class TestKustomizeInstall(InstallScenario):
    kind = KustomizeInstall


class TestHelmInstall(InstallScenario):
    kind = HelmInstall

