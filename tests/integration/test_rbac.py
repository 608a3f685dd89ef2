"""The operator runs with nothing but the shipped RBAC: its ServiceAccount's token only.

For each install mode (kustomize `deploy/rbac` for all namespaces; the Helm chart for one
namespace, webhook on) a single operator process runs with a TokenRequest token of the
install's ServiceAccount and serves the admission webhooks on loopback. Every behaviour that
needs a right is shown working with that token: service children and status, NIM claims
(dedicated, shared cache and its warm-up Job, the cache deleted with its last user),
admission reviews (SubjectAccessReview, namespace GET), locking (Artifact list, label patch),
Secret lookups, and image builds (a Job engine in the namespaced install, Shipwright in the
cluster-wide one). Exposure and monitoring too: an Ingress, an HTTPRoute and a ServiceMonitor
(the optional APIs' CRDs installed for these tests). Then the same token is refused what the
install must not grant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, utils

from ..conftest import (
    Cluster,
    create_artifact,
    delete_artifact,
    get_artifact,
    patch_artifact,
    require_audit_log,
)
from ..contract.test_deploy import DEPLOY, helm_render, kustomize
from ..support import optional_crds
from ..support.accounts import (
    audit_writes,
    kubeconfig_with_token,
    sa_user,
    service_account_token,
)
from ..support.builders import PINNED_IMAGE, service_artifact
from ..support.operator import OperatorProcess
from ..support.wait import found, until_ok, wait_for
from ..support.webhook import (
    bind,
    make_serving_cert,
    serving_webhooks,
    webhook_operator,
)
from .test_admission import (
    ADMIN,
    EDITOR,
    NET_ADMIN,
    approve,
    as_user,
    capabilities,
    create_as,
    refused,
)
from .test_builds import (
    REPO,
    built_artifact,
    deployment_image,
    digest,
    finish_build,
    install_shipwright,
    runs,
    set_run_status,
)
from .test_locking import LABEL
from .test_locking import manifest as locked_manifest
from .test_nim_storage import (
    CACHE_X,
    add_volume,
    claim,
    nim,
    status,
    storage_class,  # noqa: F401 - a fixture
)
from .test_secrets import ready_condition, with_env
from .test_warmup import job_controller, warm_up
from .test_warmup import jobs as warm_up_jobs

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
SA = "artifact-operator"


# -- installing the RBAC and acting with the token ---------------------------------------------

def _install(cluster: Cluster, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create the RBAC objects of `docs`. Cluster-scoped ones already there (the user roles,
    which other tests install too) are replaced by these, so what runs is what is shipped.
    Returns the cluster-scoped objects this created, for _uninstall."""
    created = []
    for doc in (d for d in docs if d["kind"] in RBAC_KINDS):
        try:
            utils.create_from_dict(cluster.api, doc)
        except utils.FailToCreateError as exc:
            if any(e.status != 409 for e in exc.api_exceptions):
                raise
            name = doc["metadata"]["name"]
            if doc["kind"] == "ClusterRole":
                cluster.rbac.replace_cluster_role(name, doc)
            elif doc["kind"] == "ClusterRoleBinding":
                cluster.rbac.replace_cluster_role_binding(name, doc)
            continue
        if doc["kind"].startswith("Cluster"):
            created.append(doc)
    return created


def _uninstall(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        name = doc["metadata"]["name"]
        with contextlib.suppress(client.ApiException):
            if doc["kind"] == "ClusterRoleBinding":
                cluster.rbac.delete_cluster_role_binding(name)
            elif doc["kind"] == "ClusterRole":
                cluster.rbac.delete_cluster_role(name)


@contextlib.contextmanager
def _namespace(cluster: Cluster, name: str) -> Iterator[str]:
    with contextlib.suppress(client.ApiException):
        cluster.core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_namespace(name)


@pytest.fixture
def volumes(cluster: Cluster) -> Iterator[list[str]]:
    """hostPath PersistentVolumes a test adds; deleted after it."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(client.ApiException):
            cluster.core.delete_persistent_volume(name)


@pytest.fixture
def optional_apis(cluster: Cluster) -> Iterator[None]:
    """The Gateway API's HTTPRoute and the Prometheus Operator's ServiceMonitor served (the
    test stand-ins of their CRDs), so that the operator renders into them with its token."""
    for kind in optional_crds.FILES:
        optional_crds.install(cluster.api, kind)
    yield
    for kind in optional_crds.FILES:
        optional_crds.uninstall(cluster.api, kind)


def _token_kubeconfig(cluster: Cluster, system: str, path: Path) -> Path:
    token = wait_for(lambda: service_account_token(cluster.core, system, SA), timeout=30,
                     what="a token for the operator's ServiceAccount")
    return kubeconfig_with_token(cluster.kubeconfig, token, path)


def _as(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


def _forbidden(call: Callable[..., Any], *args: Any) -> bool:
    try:
        call(*args)
    except client.ApiException as exc:
        return bool(exc.status == 403)
    return False


def _rights_in_effect(kubeconfig: Path, namespace: str) -> None:
    """The authorizer learns of new bindings through a watch: wait until the token has the
    rights the operator uses first, so it starts with them and logs no refusal. Asked with
    SelfSubjectAccessReviews, so the token itself creates no SubjectAccessReview here."""
    wanted = [("list", GROUP, "artifacts", namespace), ("list", "", "secrets", namespace),
              ("create", "authorization.k8s.io", "subjectaccessreviews", None),
              ("get", "", "namespaces", None)]
    with contextlib.closing(_as(kubeconfig)) as sa:
        authz = client.AuthorizationV1Api(sa)

        def allowed() -> None:
            for verb, group, resource, ns in wanted:
                review = authz.create_self_subject_access_review({"spec": {
                    "resourceAttributes": {"verb": verb, "group": group,
                                           "resource": resource, "namespace": ns}}})
                # Named, so a right the install lacks is what the timeout reports.
                assert review.status.allowed, f"{verb} {group}/{resource} in {ns or 'cluster'}"

        until_ok(allowed, timeout=30, what="the installed rights to take effect")


@contextlib.contextmanager
def _operator_serving_webhooks(cluster: Cluster, kubeconfig: Path, namespace: str,
                               watched: str | None, storage: str, tmp_path: Path,
                               args: list[str], env: dict[str, str] | None = None,
                               ) -> Iterator[OperatorProcess]:
    """The operator with the token's kubeconfig, serving the webhooks (registered for
    `namespace` only); editors and admins of `namespace` bound to the installed user roles."""
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    bind(cluster.rbac, namespace, ADMIN, "artifact-admin")
    cert = make_serving_cert(tmp_path / "certs")
    proc = webhook_operator(
        kubeconfig, watched, tmp_path / "operator.log", cert, extra_args=args,
        env={**(env or {}), "ARTIFACT_OPERATOR_STORAGE_CLASS": storage,
             "ARTIFACT_OPERATOR_CACHE_RETENTION": "delete"})
    with serving_webhooks(cluster.api, namespace, proc, cert.ca):
        yield proc


# -- what must work ---------------------------------------------------------------------------

def _read(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _behaviours_work(cluster: Cluster, namespace: str, storage: str,
                     volumes: list[str], proc: OperatorProcess, engine: str) -> None:
    """Every artifact at once, then each outcome in turn: one operator, many checks."""
    create_artifact(cluster, namespace, built_artifact("built"))
    create_artifact(cluster, namespace, {"metadata": {"name": "web"}, "spec": {
        "containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}]}]}})
    create_artifact(cluster, namespace, nim("llm"))
    create_artifact(cluster, namespace, service_artifact("exposed", runtime={"api": {
        "expose": {"ingress": {"host": "exposed.example.com"}}, "metrics": {"port": 9090}}}))
    create_artifact(cluster, namespace, service_artifact("routed", runtime={"api": {
        "expose": {"httpRoute": {"parentRefs": [{"name": "edge"}]}}}}))
    create_artifact(cluster, namespace, nim("cached", mode="nimCache"))
    # A credential Secret that opts in, without the key the artifact reads (the webhook
    # refuses a reference to a Secret that does not opt in or does not exist).
    cluster.core.create_namespaced_secret(namespace, {"metadata": {
        "name": "db-creds", "labels": {"workload.dev/usable-by-artifacts": "true"}},
        "stringData": {"user": "u"}})
    create_artifact(cluster, namespace, with_env("creds", [
        {"name": "DB_PASSWORD", "source": "dr-credential", "drCredentialId": "db-creds",
         "key": "password"}]))
    create_as(cluster, EDITOR, namespace, {"apiVersion": f"{GROUP}/{VERSION}",
                                           "kind": "Artifact",
                                           **locked_manifest("frozen", "shop", "locked")})
    # Admission: the webhook asks the API server (a SubjectAccessReview, with the operator's
    # token) who may add a capability. A refusal from RBAC would not name the field.
    error = refused(lambda: create_as(cluster, EDITOR, namespace,
                                      service_artifact("by-editor", PINNED_IMAGE,
                                                       security=NET_ADMIN)))
    assert error.status == 403 and "only an admin" in error.body, error.body
    assert "securityContext.capabilities.add" in error.body
    create_as(cluster, ADMIN, namespace,
              service_artifact("by-admin", PINNED_IMAGE, security=NET_ADMIN))
    approve(cluster, namespace, "by-admin")

    # Service: Deployment, Service and a status.
    wait_for(lambda: _read(cluster.apps.read_namespaced_deployment, "web-api", namespace),
             timeout=30, what="the Deployment")
    wait_for(lambda: _read(cluster.core.read_namespaced_service, "web-api", namespace),
             timeout=30, what="the Service")
    wait_for(lambda: status(cluster, namespace, "web").get("phase"), timeout=30,
             what="a status phase")

    # Exposure and monitoring: an Ingress, an HTTPRoute, a ServiceMonitor.
    wait_for(lambda: found(client.NetworkingV1Api(cluster.api).read_namespaced_ingress,
                           "exposed-api", namespace), timeout=30, what="the Ingress")
    for kind, name in (("ServiceMonitor", "exposed-api"), ("HTTPRoute", "routed-api")):
        doc = optional_crds.crd(kind)["spec"]
        wait_for(lambda d=doc, n=name: found(
            cluster.custom.get_namespaced_custom_object, d["group"],
            d["versions"][0]["name"], namespace, d["names"]["plural"], n), timeout=30,
            what=f"the {kind}")

    # NIM: a dedicated claim and a shared cache claim, both seen Bound once volumes exist.
    wait_for(lambda: claim(cluster, namespace, "llm-model-store"), timeout=30,
             what="the dedicated claim")
    wait_for(lambda: claim(cluster, namespace, CACHE_X), timeout=30, what="the cache claim")
    volumes.extend(add_volume(cluster, storage, "200Gi") for _ in range(2))
    for name, mode, claim_name in (("llm", "dedicatedPvc", "llm-model-store"),
                                   ("cached", "nimCache", CACHE_X)):
        wait_for(lambda n=name, m=mode, c=claim_name: {
            k: v for k, v in (status(cluster, namespace, n).get("storage") or {}).items()
            if k != "warmUp"} == {"mode": m, "claimName": c, "phase": "Bound"},
            timeout=60, what=f"{name} to see its claim Bound")
    # The shared cache's warm-up: its Job created (and watched), the claim marked warm (a
    # claim patch) once the Job, which the test completes as the Job controller would, is.
    (job,) = wait_for(lambda: warm_up_jobs(cluster, namespace), timeout=30,
                      what="the warm-up Job")
    job_controller(cluster, namespace, job.metadata.name, "complete")
    wait_for(lambda: warm_up(cluster, namespace, "cached").get("phase") == "Ready",
             timeout=60, what="the cache warm")
    wait_for(lambda: _read(cluster.apps.read_namespaced_deployment, "cached-llm", namespace),
             timeout=30, what="the Deployment on the warm cache")
    # Growing pvcSize expands the dedicated claim (a claim patch).
    patch_artifact(cluster, namespace, "llm", {"spec": {"storage": {"pvcSize": "150Gi"}}})
    wait_for(lambda: claim(cluster, namespace, "llm-model-store").spec.resources
             .requests["storage"] == "150Gi", timeout=30, what="the claim to grow to 150Gi")

    # The admin's capability is rendered (the operator reads the ArtifactApproval).
    add = wait_for(lambda: capabilities(cluster, namespace, "by-admin-api").get("add"),
                   timeout=30, what="the admin's Deployment with its capability")
    assert add == ["NET_ADMIN"]

    # Locking: a version (Artifacts listed) and the repository label (Artifact patched).
    wait_for(lambda: status(cluster, namespace, "frozen").get("version") == 1, timeout=30,
             what="the locked artifact's version")
    wait_for(lambda: get_artifact(cluster, namespace, "frozen")["metadata"].get("labels", {})
             .get(LABEL) == "shop", timeout=30, what="the repository label")
    # An editor deleting it: the webhook reads the namespace (is it terminating?) before it
    # refuses; without that right the answer would be 503 "cannot check authorization".
    error = refused(lambda: as_user(cluster, EDITOR).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "frozen"))
    assert error.status == 403 and "the artifact is locked" in error.body, error.body

    # The key the Secret lacks (the opted-in Secrets listed and watched) shows in the
    # conditions.
    cond = wait_for(lambda: (c := ready_condition(cluster, namespace, "creds"))
                    .get("reason") == "SecretMissing" and c, timeout=30, what="SecretMissing")
    assert "Secret db-creds has no key password" in cond["message"]

    # Cache retention `delete`: the last user gone, the operator deletes the claim.
    delete_artifact(cluster, namespace, "cached")
    wait_for(lambda: claim(cluster, namespace, CACHE_X) is None, timeout=60,
             what="the cache claim to be deleted with its last user")

    # Image builds: the operator creates the BuildRun or Job and reads its result (for a
    # Job, from its pod's termination message); the test plays the engine.
    sha = digest()
    if engine == "shipwright":
        (run,) = wait_for(lambda: runs(cluster, namespace, "built"), timeout=30,
                          what="the BuildRun")
        set_run_status(cluster, namespace, run["metadata"]["name"], "True", "Succeeded",
                       output={"digest": sha})
    else:
        (job,) = wait_for(lambda: client.BatchV1Api(cluster.api).list_namespaced_job(
            namespace, label_selector="workload.dev/artifact=built").items, timeout=30,
            what="the build Job")
        finish_build(cluster, namespace, job, sha)
    wait_for(lambda: deployment_image(cluster, namespace, "built-api") ==
             f"{REPO}/{namespace}/built@{sha}", timeout=30, what="the built image running")

    logs = proc.logs()
    assert "Forbidden" not in logs and " 403" not in logs, logs[-3000:]


def _written_only_by(cluster: Cluster, namespace: str, user: str) -> None:
    """What the operator wrote, it wrote with the ServiceAccount's token, not the admin's; and
    the webhook's access reviews were made with it too."""
    log = require_audit_log(cluster)
    writers = {w.user for w in audit_writes(log, namespace)
               if w.resource in ("deployments", "services", "persistentvolumeclaims",
                                 "ingresses", "httproutes", "servicemonitors",
                                 "artifacts", "events") or w.subresource == "status"}
    # The test's own writes, and kube-controller-manager's (Deployment and claim status,
    # binding, garbage collection), are the admin's.
    writers.discard("admin")
    assert writers == {user}
    assert [w for w in audit_writes(log, None) if w.resource == "subjectaccessreviews"
            and w.user == user and w.code == 201], "no SubjectAccessReview by the operator"


def _a_secret(cluster: Cluster, namespace: str, name: str) -> str:
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": name},
                                                      "stringData": {"k": "v"}})
    return name


def _refused_everywhere(cluster: Cluster, sa: client.ApiClient, namespace: str) -> None:
    """Refused in every install mode."""
    core = client.CoreV1Api(sa)
    assert _forbidden(core.list_node)
    assert _forbidden(core.list_namespace)
    assert _forbidden(core.list_namespaced_config_map, namespace)
    assert _forbidden(core.delete_namespace, namespace)
    assert _forbidden(client.RbacAuthorizationV1Api(sa).list_cluster_role)
    # Users' Secrets are read, never changed.
    users = _a_secret(cluster, namespace, "users-own")
    assert _forbidden(core.patch_namespaced_secret, users, namespace, {"data": {}})
    # Artifacts are the users': the operator neither deletes nor rewrites them.
    custom = client.CustomObjectsApi(sa)
    assert _forbidden(custom.delete_namespaced_custom_object, GROUP, VERSION, namespace,
                      PLURAL, "web")
    web = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    assert _forbidden(custom.replace_namespaced_custom_object, GROUP, VERSION, namespace,
                      PLURAL, "web", web)


# -- the install modes ---------------------------------------------------------------------------

def test_namespaced_helm_install_with_webhook_works_with_only_its_token(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        volumes: list[str], optional_apis: None, tmp_path: Path) -> None:
    with _namespace(cluster, f"{namespace[:50]}-sys") as system:
        docs = helm_render({"watchNamespaces": [namespace], "webhook": {"enabled": True}},
                           namespace=system)
        # Cluster-wide, the operator gets only what the webhook needs: access reviews and
        # namespace GETs (the other ClusterRoles are the user roles, bound to no one).
        bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
        assert [(b["roleRef"]["name"], b["subjects"][0]["name"]) for b in bindings] == \
            [("artifact-operator-webhook", SA)]
        installed = _install(cluster, docs)
        try:
            kubeconfig = _token_kubeconfig(cluster, system, tmp_path / "sa.kcfg")
            _rights_in_effect(kubeconfig, namespace)
            # The Job build engine here (Jobs and their pods, in the watched namespace).
            with _operator_serving_webhooks(
                    cluster, kubeconfig, namespace, namespace, storage_class, tmp_path,
                    ["--leader-election", "--leader-election-namespace", system],
                    env={"ARTIFACT_OPERATOR_BUILD_ENGINE": "job",
                         "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO}) as proc:
                _behaviours_work(cluster, namespace, storage_class, volumes, proc, "job")
            _written_only_by(cluster, namespace, sa_user(system, SA))

            other = _a_secret(cluster, system, "not-watched")
            with contextlib.closing(_as(kubeconfig)) as sa:
                core, apps = client.CoreV1Api(sa), client.AppsV1Api(sa)
                # Secrets outside the watched namespace, other namespaces' workloads: refused.
                assert _forbidden(core.read_namespaced_secret, other, system)
                assert _forbidden(core.list_namespaced_secret, system)
                assert _forbidden(core.list_namespaced_secret, "default")
                assert _forbidden(core.list_secret_for_all_namespaces)
                assert _forbidden(apps.list_deployment_for_all_namespaces)
                assert _forbidden(apps.list_namespaced_deployment, "default")
                _refused_everywhere(cluster, sa, namespace)
                # ...while what it manages is allowed.
                core.list_namespaced_secret(namespace)
                apps.list_namespaced_deployment(namespace)
        finally:
            _uninstall(cluster, installed)


def test_kustomize_rbac_runs_the_operator_cluster_wide_with_only_its_token(
        cluster: Cluster, namespace: str, storage_class: str,  # noqa: F811
        volumes: list[str], optional_apis: None, tmp_path: Path) -> None:
    docs = kustomize(DEPLOY / "rbac")
    with _namespace(cluster, "artifact-operator-system") as system:
        installed = _install(cluster, docs)
        try:
            kubeconfig = _token_kubeconfig(cluster, system, tmp_path / "sa.kcfg")
            _rights_in_effect(kubeconfig, namespace)
            # As shipped: all namespaces, leader election in its own namespace.
            # Shipwright here: its API served, so `auto` picks it (BuildRuns, all namespaces).
            install_shipwright(cluster)
            with _operator_serving_webhooks(
                    cluster, kubeconfig, namespace, None, storage_class, tmp_path,
                    ["--leader-election"], env={
                        "POD_NAMESPACE": system,
                        "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": REPO}) as proc:
                _behaviours_work(cluster, namespace, storage_class, volumes, proc,
                                 "shipwright")
            _written_only_by(cluster, namespace, sa_user(system, SA))
            with contextlib.closing(_as(kubeconfig)) as sa:
                _refused_everywhere(cluster, sa, namespace)
        finally:
            _uninstall(cluster, installed)
