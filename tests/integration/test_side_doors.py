"""An editor gets no side doors (SPEC section 4): what an `artifact-editor` can put in an
Artifact does not reach past it, with the webhook and without it, on the real control plane
with the operator running as users run it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.builders import PINNED_IMAGE, service_artifact
from ..support.controlplane import free_port
from ..support.operator import OperatorProcess
from ..support.wait import found, wait_for
from ..support.webhook import bind, make_serving_cert, registered_webhooks
from .test_admission import (  # noqa: F401 - webhooks is a fixture
    ADMIN,
    EDITOR,
    as_user,
    create_as,
    install_roles,
    refused,
    webhooks,
)

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "workload.dev", "v1alpha1", "artifacts"


def probed(name: str, probe: dict[str, Any], **container: Any) -> dict[str, Any]:
    # Pinned by digest: an elevated container must be (a probe host is elevated).
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": "api", "containers": [{
                "name": "app", "imageUri": PINNED_IMAGE, "primary": True, "port": 8080,
                "readinessProbe": probe, **container}]}]}}


def condition(cluster: Cluster, namespace: str, name: str, type_: str = "Ready"
              ) -> dict[str, Any]:
    status = get_artifact(cluster, namespace, name).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def reconciled(cluster: Cluster, namespace: str, name: str) -> bool:
    body = get_artifact(cluster, namespace, name)
    return bool(body.get("status", {}).get("observedGeneration") ==
                body["metadata"]["generation"])


def readiness_get(cluster: Cluster, namespace: str, deployment: str) -> Any:
    d = found(cluster.apps.read_namespaced_deployment, deployment, namespace)
    return d.spec.template.spec.containers[0].readiness_probe.http_get if d else None


HOST_PATH = "spec.containerGroups[0].containers[0].readinessProbe.host"


def test_a_probe_host_is_admin_only_with_the_webhook(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess) -> None:  # noqa: F811
    error = refused(lambda: create_as(cluster, EDITOR, namespace, probed(
        "by-editor", {"path": "/", "host": "169.254.169.254"})))
    assert error.status == 403, error.body
    assert HOST_PATH in error.body and "only an admin" in error.body, error.body
    # An admin may store one; like every elevated field it runs only once approved
    # (an ArtifactApproval: test_approval.py), and says so until then.
    create_as(cluster, ADMIN, namespace, probed(
        "by-admin", {"path": "/", "host": "metrics.internal"}))
    cond = wait_for(lambda: condition(cluster, namespace, "by-admin").get("reason") ==
                    "ElevatedNotApproved" and condition(cluster, namespace, "by-admin"),
                    timeout=30, what="ElevatedNotApproved")
    assert HOST_PATH in cond["message"], cond
    assert readiness_get(cluster, namespace, "by-admin-api") is None
    # An editor cannot point it elsewhere either.
    error = refused(lambda: as_user(cluster, EDITOR).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "by-admin", probed(
            "by-admin", {"path": "/", "host": "169.254.169.254"})))
    assert error.status == 403 and HOST_PATH in error.body, error.body
    # Header names beyond the bound: the webhook names the field (the 1.20 API server cannot
    # bound map keys; 1.25+ refuses them by CEL).
    error = refused(lambda: create_as(cluster, EDITOR, namespace, probed(
        "long-header", {"path": "/", "httpHeaders": {"x" * 300: "v"}})))
    assert error.status == 422, error.body
    assert "readinessProbe.httpHeaders" in error.body and "256" in error.body, error.body


def test_without_the_webhook_a_probe_host_is_stored_but_not_rendered(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                           env={"ARTIFACT_OPERATOR_APPROVAL_KEY": "some-key"})
    with proc:
        body = probed("hosted", {"path": "/healthz", "host": "169.254.169.254"})
        # A forged old-style approval annotation counts for nothing.
        body["metadata"]["annotations"] = {
            "workload.dev/elevated-approval": "hmac-sha256:" + "0" * 64}
        create_as(cluster, EDITOR, namespace, body)
        cond = wait_for(lambda: condition(cluster, namespace, "hosted").get("reason") ==
                        "ElevatedNotApproved" and condition(cluster, namespace, "hosted"),
                        timeout=30, what="ElevatedNotApproved")
        assert cond["status"] == "False" and HOST_PATH in cond["message"], cond
        # Not rendered at all: no kubelet anywhere probes that address.
        assert readiness_get(cluster, namespace, "hosted-api") is None
        stored = get_artifact(cluster, namespace, "hosted")
        assert stored["spec"]["containerGroups"][0]["containers"][0]["readinessProbe"][
            "host"] == "169.254.169.254"


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080, **fields}


def _spec(**fields: Any) -> dict[str, Any]:
    return {"containerGroups": [{"name": "api", "containers": [_container(**fields)]}]}


# One spec per bounded list or map, each one item past its bound; the API server's field path
# (1.20 leaves out list indexes) must be named in its refusal.
OVER_BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    ("headers", _spec(readinessProbe={"path": "/", "httpHeaders": {
        f"h{i}": "v" for i in range(17)}}), "readinessProbe.httpHeaders"),
    ("header-value", _spec(readinessProbe={"path": "/", "httpHeaders": {"h": "v" * 4097}}),
     "readinessProbe.httpHeaders"),
    ("env", _spec(environmentVars=[{"name": f"E{i}", "value": "v"} for i in range(257)]),
     "environmentVars"),
    ("entrypoint", _spec(entrypoint=["x"] * 257), "entrypoint"),
    ("capabilities", _spec(securityContext={"capabilities": {"drop": ["X"] * 65}}),
     "capabilities.drop"),
    ("containers", {"containerGroups": [{"name": "api", "containers": [
        {"name": f"c{i}", "imageUri": "nginx:1.27"} for i in range(65)]}]}, "containers"),
    ("groups", {"containerGroups": [{"name": f"g{i}", "containers": []} for i in range(65)]},
     "containerGroups"),
    ("tolerations", {**_spec(), "runtime": {"api": {"tolerations": [
        {"key": "k", "operator": "Exists"}] * 65}}}, "tolerations"),
    ("node-selector", {**_spec(), "runtime": {"api": {"nodeSelector": {
        f"k{i}": "v" for i in range(65)}}}}, "nodeSelector"),
    ("runtime", {**_spec(), "runtime": {f"g{i}": {} for i in range(65)}}, "spec.runtime"),
]


def test_every_list_of_the_spec_is_bounded_by_the_api_server(
        cluster: Cluster, namespace: str) -> None:
    """No webhook, no operator: the CRD alone refuses an editor's spec past any bound."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    for case, spec, path in OVER_BOUNDS:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact",
                "metadata": {"name": f"over-{case}"}, "spec": spec}
        error = refused(lambda b=body: create_as(cluster, EDITOR, namespace, b))
        assert error.status == 422, (case, error.body)
        assert path in error.body, (case, error.body)
        assert re.search(r"at most|Too many|Too long|longer than", error.body), \
            (case, error.body)
    # At the bounds, accepted.
    create_artifact(cluster, namespace, {"metadata": {"name": "at-bounds"}, "spec": _spec(
        readinessProbe={"path": "/", "httpHeaders": {f"h{i}": "v" * 4096 for i in range(16)}},
        environmentVars=[{"name": f"E{i}", "value": "v"} for i in range(256)])})


# -- dr-credential reads only Secrets that opt in ---------------------------------------------

USABLE = "workload.dev/usable-by-artifacts"
VALUE = "s3cr3t-value-never-shown"


def secret(cluster: Cluster, namespace: str, name: str, *, usable: bool,
           type_: str | None = None, annotations: dict[str, str] | None = None,
           labels: dict[str, str] | None = None) -> None:
    body: dict[str, Any] = {"metadata": {"name": name, "labels": {
        **({USABLE: "true"} if usable else {}), **(labels or {})},
        "annotations": annotations or {}}, "stringData": {"password": VALUE}}
    if type_:
        body["type"] = type_
    cluster.core.create_namespaced_secret(namespace, body)


def reads(name: str, secret_name: str, key: str = "password") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Artifact", "metadata": {"name": name},
            "spec": {"containerGroups": [{"name": "api", "containers": [_container(
                environmentVars=[{"name": "DB_PASSWORD", "source": "dr-credential",
                                  "drCredentialId": secret_name, "key": key}])]}]}}


def ready_reason(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    cond = condition(cluster, namespace, name)
    return cond if cond.get("reason") == reason and reconciled(cluster, namespace, name) else {}


def deployment(cluster: Cluster, namespace: str, name: str) -> Any:
    return found(cluster.apps.read_namespaced_deployment, name, namespace)


def test_credentials_read_only_secrets_that_opt_in_without_the_webhook(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    secret(cluster, namespace, "plain", usable=False)
    secret(cluster, namespace, "opted-in", usable=True)
    # A service-account token, even labelled, is never usable.
    secret(cluster, namespace, "sa-token", usable=True,
           type_="kubernetes.io/service-account-token",
           annotations={"kubernetes.io/service-account.name": "default"})
    proc = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                           args=["--verbose"])
    with proc:
        # Another artifact's token Secret, made by the operator, labelled by someone.
        create_artifact(cluster, namespace, {"metadata": {"name": "victim"}, "spec": _spec(
            environmentVars=[{"name": "TOKEN", "source": "dr-api-token"}])})
        wait_for(lambda: found(cluster.core.read_namespaced_secret, "victim-api-token",
                               namespace), timeout=30, what="the victim's token Secret")
        cluster.core.patch_namespaced_secret("victim-api-token", namespace,
                                             {"metadata": {"labels": {USABLE: "true"}}})

        for name, target in (("reads-plain", "plain"), ("reads-missing", "nope"),
                             ("reads-sa", "sa-token"), ("reads-token", "victim-api-token"),
                             ("reads-opted-in", "opted-in")):
            create_as(cluster, EDITOR, namespace, reads(name, target,
                                                        "token" if "token" in target
                                                        else "password"))
        messages = {}
        for name, target in (("reads-plain", "plain"), ("reads-missing", "nope"),
                             ("reads-sa", "sa-token"), ("reads-token", "victim-api-token")):
            cond = wait_for(lambda n=name: ready_reason(cluster, namespace, n,
                                                        "SecretNotUsable"),
                            timeout=30, what=f"{name}: SecretNotUsable")
            assert cond["status"] == "False"
            assert f"Secret {target} " in cond["message"] and "DB_PASSWORD" in cond["message"]
            # Held back: no Deployment reads the Secret.
            assert deployment(cluster, namespace, f"{name}-api") is None
            messages[name] = cond["message"].replace(target, "<secret>")
        # A Secret that exists without opting in reads exactly like one that does not exist.
        assert messages["reads-plain"] == messages["reads-missing"], messages
        env = wait_for(lambda: deployment(cluster, namespace, "reads-opted-in-api"),
                       timeout=30, what="the Deployment of the opted-in reader") \
            .spec.template.spec.containers[0].env[0]
        assert env.value_from.secret_key_ref.name == "opted-in"

        # Opting in later is seen by the watch: the group is rendered, nobody touches the
        # artifact.
        cluster.core.patch_namespaced_secret("plain", namespace,
                                             {"metadata": {"labels": {USABLE: "true"}}})
        wait_for(lambda: deployment(cluster, namespace, "reads-plain-api"), timeout=30,
                 what="the group rendered once the Secret opts in")
        # Opting out holds the group back; what runs keeps running (like a group that
        # waits for an image).
        running = deployment(cluster, namespace, "reads-opted-in-api")
        cluster.core.patch_namespaced_secret("opted-in", namespace,
                                             {"metadata": {"labels": {USABLE: None}}})
        wait_for(lambda: ready_reason(cluster, namespace, "reads-opted-in", "SecretNotUsable"),
                 timeout=30, what="reads-opted-in: SecretNotUsable")
        kept = deployment(cluster, namespace, "reads-opted-in-api")
        assert kept is not None and kept.metadata.uid == running.metadata.uid
        assert kept.spec.template == running.spec.template

    # The value is nowhere: not in the (verbose) log, any Event or any Artifact.
    log = proc.logs()
    assert "reads-plain" in log
    events = str(cluster.api.sanitize_for_serialization(
        cluster.core.list_namespaced_event(namespace).items))
    artifacts = str(cluster.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL)["items"])
    for text in (log, events, artifacts):
        assert VALUE not in text


def test_the_webhook_refuses_a_reference_to_a_secret_an_artifact_may_not_read(
        cluster: Cluster, namespace: str, webhooks: OperatorProcess) -> None:  # noqa: F811
    secret(cluster, namespace, "plain", usable=False)
    secret(cluster, namespace, "opted-in", usable=True)
    path = "spec.containerGroups[0].containers[0].environmentVars[0].drCredentialId"
    bodies = {}
    for target in ("plain", "nope"):
        error = refused(lambda t=target: create_as(cluster, EDITOR, namespace,
                                                   reads(f"reads-{t}", t)))
        assert error.status == 422, error.body
        assert f"{path}: Secret {target} does not exist or is not usable" in error.body, \
            error.body
        bodies[target] = error.body.replace(target, "<secret>")
    assert bodies["plain"] == bodies["nope"]  # existence is not told
    create_as(cluster, EDITOR, namespace, reads("reads-opted-in", "opted-in"))
    # An update that adds a reference is judged too.
    error = refused(lambda: as_user(cluster, EDITOR).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "reads-opted-in", reads("reads-opted-in", "plain")))
    assert error.status == 422 and path in error.body, error.body


# -- a token Secret the artifact does not own -------------------------------------------------

def test_a_token_secret_the_artifact_does_not_own_is_refused_and_never_adopted(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    if cluster.control_plane is None:
        pytest.skip("counts writes from the audit log of the control plane the tests start")
    from ..support.audit import AuditLog

    planted = "a-token-its-planter-knows"
    # One plain, one dressed in the operator's own labels.
    for name, labels in (("planted", {}), ("mimic", {
            "app.kubernetes.io/managed-by": "artifact-operator",
            "workload.dev/artifact": "mimic"})):
        cluster.core.create_namespaced_secret(namespace, {
            "metadata": {"name": f"{name}-api-token", "labels": labels},
            "stringData": {"token": planted}})
    audit = AuditLog(cluster.control_plane.audit_log).mark()
    spec = {"containerGroups": [
        {"name": "api", "containers": [_container(environmentVars=[
            {"name": "TOKEN", "source": "dr-api-token"}])]},
        {"name": "side", "containers": [{"name": "side", "imageUri": "busybox:1"}]}]}
    for name in ("planted", "mimic"):
        create_artifact(cluster, namespace, {"metadata": {"name": name}, "spec": spec})
    for name in ("planted", "mimic"):
        cond = wait_for(lambda n=name: (c := condition(cluster, namespace, n, "Degraded"))
                        .get("reason") == "TokenSecretConflict" and
                        reconciled(cluster, namespace, n) and c,
                        timeout=30, what=f"{name}: TokenSecretConflict")
        assert cond["status"] == "True" and f"Secret {name}-api-token" in cond["message"]
        assert get_artifact(cluster, namespace, name)["status"]["phase"] == "Degraded"
        # The group that would read it is not rendered; the other one is.
        assert deployment(cluster, namespace, f"{name}-api") is None
        assert deployment(cluster, namespace, f"{name}-side") is not None
    # More reconciles (spec changes) change nothing: no write to any Secret, no retry loop.
    for generation in (2, 3):
        for name in ("planted", "mimic"):
            patch = {"spec": {"description": f"touch {generation}"}}
            cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                          name, patch)
        for name in ("planted", "mimic"):
            wait_for(lambda n=name, g=generation: get_artifact(cluster, namespace, n)
                     .get("status", {}).get("observedGeneration") == g,
                     timeout=30, what=f"{name} generation {generation} reconciled")
    secret_writes = [str(w) for w in audit.writes(namespace) if w.resource == "secrets"]
    assert secret_writes == [], secret_writes
    for name in ("planted", "mimic"):
        stored = cluster.core.read_namespaced_secret(f"{name}-api-token", namespace)
        assert stored.metadata.owner_references is None  # never adopted
        assert deployment(cluster, namespace, f"{name}-api") is None
    assert planted not in str(get_artifact(cluster, namespace, "planted"))

    # Once it is gone, the artifact makes its own, with a token nobody else knows.
    cluster.core.delete_namespaced_secret("planted-api-token", namespace)
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "planted",
                                                  {"spec": {"description": "again"}})
    env = wait_for(lambda: deployment(cluster, namespace, "planted-api"), timeout=30,
                   what="the token group rendered").spec.template.spec.containers[0].env[0]
    assert env.value_from.secret_key_ref.name == "planted-api-token"
    own = cluster.core.read_namespaced_secret("planted-api-token", namespace)
    assert own.metadata.owner_references[0].name == "planted"
    import base64
    assert base64.b64decode(own.data["token"]).decode() != planted


def test_a_child_name_someone_else_holds_is_refused_and_left_as_it_is(
        cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """The operator asks the API server's watch cache whether a child it has not seen
    exists (kube.Kube.get `cached`): someone's own Service of that name is found there,
    never applied over, and the artifact says so."""
    if cluster.control_plane is None:
        pytest.skip("counts writes from the audit log of the control plane the tests start")
    from ..support.audit import AuditLog

    cluster.core.create_namespaced_service(namespace, {
        "metadata": {"name": "taken-api", "labels": {"team": "theirs"}},
        "spec": {"ports": [{"port": 9999}], "selector": {"team": "theirs"}}})
    audit = AuditLog(cluster.control_plane.audit_log).mark()
    create_artifact(cluster, namespace, {"metadata": {"name": "taken"}, "spec": _spec()})
    cond = wait_for(lambda: (c := condition(cluster, namespace, "taken", "Degraded"))
                    .get("reason") == "ApplyFailed" and reconciled(cluster, namespace, "taken")
                    and c, timeout=30, what="taken: ApplyFailed")
    assert cond["status"] == "True"
    assert "Service taken-api already exists and is not managed by this artifact" in \
        cond["message"]
    theirs = cluster.core.read_namespaced_service("taken-api", namespace)
    assert theirs.metadata.owner_references is None
    assert theirs.metadata.labels == {"team": "theirs"}
    assert [p.port for p in theirs.spec.ports] == [9999]
    assert [str(w) for w in audit.writes(namespace) if w.resource == "services"] == []
    assert deployment(cluster, namespace, "taken-api") is not None  # the rest is applied

    # Once theirs is gone, the next reconcile makes the artifact's own.
    cluster.core.delete_namespaced_service("taken-api", namespace, _preload_content=False)
    cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "taken",
                                                  {"spec": {"description": "again"}})
    ours = wait_for(lambda: found(cluster.core.read_namespaced_service, "taken-api", namespace)
                    if reconciled(cluster, namespace, "taken") else None, timeout=30,
                    what="the artifact's own Service")
    assert ours.metadata.owner_references[0].name == "taken"
    assert [p.port for p in ours.spec.ports] == [8080]


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_with_the_webhook_down_fail_refuses_clearly_and_ignore_leaves_the_operator_enforcing(
        cluster: Cluster, namespace: str, tmp_path: Path, policy: str) -> None:
    """The webhook registered, its server gone (a port nobody listens on, as when every
    operator pod is down). `Fail`: every write is refused with the API server's message
    naming the webhook, and what runs is untouched. `Ignore`: writes go through, and the
    operator alone still refuses to render what only an admin may grant."""
    install_roles(cluster)
    bind(cluster.rbac, namespace, EDITOR, "artifact-editor")
    cert = make_serving_cert(tmp_path / "certs")
    with OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log"):
        create_artifact(cluster, namespace, service_artifact("running"))
        wait_for(lambda: reconciled(cluster, namespace, "running"), timeout=30,
                 what="running reconciled")
        before = cluster.apps.read_namespaced_deployment("running-api", namespace)
        with registered_webhooks(cluster.api, namespace, free_port(), cert.ca, policy):
            body = probed("hosted", {"path": "/healthz", "host": "169.254.169.254"})
            if policy == "Fail":
                error = refused(lambda: create_as(cluster, EDITOR, namespace, body))
                assert error.status == 500, error
                message = json.loads(error.body)["message"]
                assert 'failed calling webhook "validate-artifact.workload.dev"' in message, \
                    message
                refused(lambda: as_user(cluster, EDITOR).patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, "running",
                    {"spec": {"description": "changed"}}))
            else:
                create_as(cluster, EDITOR, namespace, body)
                cond = wait_for(lambda: condition(cluster, namespace, "hosted").get(
                    "reason") == "ElevatedNotApproved" and condition(cluster, namespace,
                                                                     "hosted"),
                    timeout=30, what="ElevatedNotApproved without the webhook")
                assert HOST_PATH in cond["message"], cond
                assert readiness_get(cluster, namespace, "hosted-api") is None
        after = cluster.apps.read_namespaced_deployment("running-api", namespace)
        assert after.metadata.generation == before.metadata.generation
        assert after.metadata.uid == before.metadata.uid
