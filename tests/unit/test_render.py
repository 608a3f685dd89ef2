"""The renderer: Artifact (+ settings) -> Deployments, Services and the token Secret (SPEC 3)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from artifact_operator.api.artifact import Artifact
from artifact_operator.logic.approval import Decision, Grant, decide
from artifact_operator.logic.render import Rendered, render
from artifact_operator.settings import Settings

from ..support.builders import PINNED_IMAGE, parsed, primary, service_artifact
from ..support.builders import artifact as manifest

UID = "0b7c6d4e-1111-4222-8333-444455556666"


def artifact(groups: list[dict[str, Any]], name: str = "web", **spec: Any) -> Artifact:
    """As stored in team-a: with a uid, so children get an owner."""
    return parsed(manifest(name, *groups, namespace="team-a", uid=UID, generation=1, **spec))


def one(rendered: Rendered, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in rendered.of_kind(kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, [o["metadata"]["name"] for o in rendered.objects]
    return found[0]


def containers(rendered: Rendered, name: str | None = None) -> list[dict[str, Any]]:
    return list(one(rendered, "Deployment", name)["spec"]["template"]["spec"]["containers"])


# -- names, labels, selectors, owners ------------------------------------------------------


def test_objects_are_named_artifact_dash_group() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]},
                           {"name": "worker", "containers": [{"name": "q", "imageUri": "r"}]}]),
                 Settings())
    assert [(o["kind"], o["metadata"]["name"]) for o in out.objects] == [
        ("Deployment", "web-api"), ("Deployment", "web-worker"), ("Service", "web-api")]
    assert {o["metadata"]["namespace"] for o in out.objects} == {"team-a"}


def test_long_names_are_cut_to_63_with_a_stable_distinguishing_hash() -> None:
    name = "a" * 60
    groups = [{"name": "group-one", "containers": [primary()]},
              {"name": "group-two", "containers": [primary()]}]
    first = render(artifact(groups, name=name), Settings())
    again = render(artifact(groups, name=name), Settings())
    names = [o["metadata"]["name"] for o in first.of_kind("Deployment")]
    assert names == [o["metadata"]["name"] for o in again.of_kind("Deployment")], "stable"
    assert all(len(n) == 63 for n in names)
    assert len(set(names)) == 2, "two groups sharing a long prefix stay distinct"
    assert all(re.fullmatch(r"a+-[0-9a-f]{8}", n) for n in names), names
    assert [o["metadata"]["name"] for o in first.of_kind("Service")] == names
    short = render(artifact(groups, name="x" * 10), Settings())
    assert one(short, "Deployment", "xxxxxxxxxx-group-one")


def test_labels_selectors_and_owner_reference() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]}]), Settings())
    labels = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "api",
              "app.kubernetes.io/managed-by": "artifact-operator",
              "workload.dev/artifact": "web", "workload.dev/container-group": "api",
              "workload.dev/type": "service"}
    selector = {"workload.dev/artifact": "web", "workload.dev/container-group": "api"}
    deployment, service = one(out, "Deployment"), one(out, "Service")
    assert deployment["metadata"]["labels"] == labels
    assert service["metadata"]["labels"] == labels
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"] == {"matchLabels": selector}
    assert service["spec"]["selector"] == selector
    owner = {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact", "name": "web",
             "uid": UID, "controller": True, "blockOwnerDeletion": True}
    assert deployment["metadata"]["ownerReferences"] == [owner]
    assert service["metadata"]["ownerReferences"] == [owner]


def test_offline_render_without_uid_has_no_owner() -> None:
    doc = service_artifact("web", namespace="team-a")
    out = render(parsed(doc), Settings())
    assert all("ownerReferences" not in o["metadata"] for o in out.objects)


# -- containers, ports, services --------------------------------------------------------------


def test_containers_in_order_with_entrypoint_as_command_and_primary_port_named_http() -> None:
    out = render(artifact([{"name": "api", "containers": [
        {"name": "sidecar", "imageUri": "busybox", "entrypoint": ["sleep", "1d"]},
        primary(entrypoint=["nginx", "-g", "daemon off;"])]}]), Settings())
    sidecar, app = containers(out)
    assert (sidecar["name"], sidecar["image"], sidecar["command"]) == \
        ("sidecar", "busybox", ["sleep", "1d"])
    assert "ports" not in sidecar
    assert app["command"] == ["nginx", "-g", "daemon off;"]
    assert app["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_no_entrypoint_keeps_the_image_command() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]}]), Settings())
    assert "command" not in containers(out)[0]


def test_service_only_for_groups_with_a_primary_pointing_at_the_http_port() -> None:
    out = render(artifact([{"name": "api", "containers": [primary(port=9000)]},
                           {"name": "worker", "containers": [{"name": "q", "imageUri": "r"}]}]),
                 Settings())
    service = one(out, "Service")
    assert service["metadata"]["name"] == "web-api"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]


# -- probes -----------------------------------------------------------------------------------


def test_probes_render_as_http_get_with_the_seed_timings() -> None:
    out = render(artifact([{"name": "api", "containers": [primary(
        readinessProbe={"path": "/ready"},
        livenessProbe={"path": "/live", "port": 9000, "scheme": "HTTPS", "host": "h",
                       "httpHeaders": {"b": "2", "a": "1"}, "initialDelaySeconds": 5,
                       "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 7},
        startupProbe={"path": "/start"}, imageUri=PINNED_IMAGE)]}]), Settings(),
        {"api": Decision(Grant.approved, "")})  # a probe host is elevated: approved here
    app = containers(out)[0]
    defaults = {"initialDelaySeconds": 30, "periodSeconds": 30, "timeoutSeconds": 30,
                "failureThreshold": 3}
    assert app["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, **defaults}
    assert app["startupProbe"] == {
        "httpGet": {"path": "/start", "port": 8080, "scheme": "HTTP"}, **defaults}
    assert app["livenessProbe"] == {
        "httpGet": {"path": "/live", "port": 9000, "scheme": "HTTPS", "host": "h",
                    "httpHeaders": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]},
        "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 2,
        "failureThreshold": 7}


@pytest.mark.parametrize(("container", "expected"), [
    ({"name": "app", "imageUri": "i", "primary": True, "port": 7000,
      "readinessProbe": {"path": "/", "port": 7100}}, 7100),   # the probe's own port
    ({"name": "app", "imageUri": "i", "primary": True, "port": 7000,
      "readinessProbe": {"path": "/"}}, 7000),                  # else the container's port
    ({"name": "app", "imageUri": "i", "readinessProbe": {"path": "/"}}, 8080),  # else 8080
])
def test_probe_port_rule(container: dict[str, Any], expected: int) -> None:
    out = render(artifact([{"name": "api", "containers": [container]}]), Settings())
    assert containers(out)[0]["readinessProbe"]["httpGet"]["port"] == expected


# -- env --------------------------------------------------------------------------------------


def test_the_three_env_kinds() -> None:
    out = render(artifact([{"name": "api", "containers": [primary(environmentVars=[
        {"name": "MODE", "value": "prod"},
        {"name": "PLAIN", "source": "string", "value": "x"},
        {"name": "DB_PASSWORD", "source": "dr-credential", "drCredentialId": "db-creds",
         "key": "password"},
        {"name": "API_TOKEN", "source": "dr-api-token"}])]}]), Settings())
    assert containers(out)[0]["env"] == [
        {"name": "MODE", "value": "prod"},
        {"name": "PLAIN", "value": "x"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds",
                                                               "key": "password"}}},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-api-token",
                                                             "key": "token"}}},
    ]
    secret = one(out, "Secret")
    assert secret["metadata"]["name"] == "web-api-token"
    assert "data" not in secret and "stringData" not in secret, "the token is never rendered"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == UID


def test_no_api_token_env_no_secret() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]}]), Settings())
    assert not out.of_kind("Secret")
    assert "env" not in containers(out)[0]


# -- security ---------------------------------------------------------------------------------


def test_platform_security_defaults_from_settings() -> None:
    settings = Settings(run_as_user=2000, run_as_group=3000, fs_group=4000)
    out = render(artifact([{"name": "api", "containers": [primary()]}]), settings)
    pod = one(out, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 2000,
                                      "runAsGroup": 3000, "fsGroup": 4000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_user_tightening_is_merged_on_top_of_the_defaults() -> None:
    out = render(artifact([{"name": "api", "containers": [primary(securityContext={
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["NET_RAW", "ALL"]},
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})]}]), Settings())
    assert containers(out)[0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL", "NET_RAW"]},
        "runAsNonRoot": True, "readOnlyRootFilesystem": True,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}


def test_an_elevated_group_is_rendered_only_when_approved_never_without_its_fields() -> None:
    doc = artifact([
        {"name": "api", "containers": [primary(image=PINNED_IMAGE, securityContext={
            "allowPrivilegeEscalation": True, "capabilities": {"add": ["NET_ADMIN"]},
            "seccompProfile": {"type": "Unconfined"}})]},
        {"name": "plain", "containers": [primary()]}])
    for decisions in (None, decide(doc, [])):
        held = render(doc, Settings(), decisions)
        # The elevated group is held back whole; the other group renders as usual.
        assert {o["metadata"]["name"] for o in held.of_kind("Deployment")} == {"web-plain"}
        assert list(held.held) == ["api"]
        assert held.held["api"].grant == Grant.missing
    approved = render(doc, Settings(), {"api": Decision(Grant.approved, "")})
    assert containers(approved, "web-api")[0]["securityContext"] == {
        "allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
        "runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}
    assert approved.held == {}
    stale = render(doc, Settings(), {"api": Decision(Grant.stale, "changed")})
    assert stale.held["api"].grant == Grant.stale
    assert {o["metadata"]["name"] for o in stale.of_kind("Deployment")} == {"web-plain"}


# -- runtime overrides --------------------------------------------------------------------


def test_runtime_overrides_replicas_resources_node_selector_tolerations() -> None:
    out = render(artifact(
        [{"name": "api", "containers": [{"name": "side", "imageUri": "s"}, primary()]},
         {"name": "batch", "containers": [{"name": "job", "imageUri": "j"}]}],
        runtime={"api": {"replicas": 3,
                         "resources": {"limits": {"nvidia.com/gpu": 1, "cpu": "2"},
                                       "requests": {"memory": "1Gi"}},
                         "nodeSelector": {"gpu": "a100"},
                         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                          "effect": "NoSchedule"}]},
                 "batch": {"replicas": 0}}), Settings())
    api = one(out, "Deployment", "web-api")
    pod = api["spec"]["template"]["spec"]
    assert api["spec"]["replicas"] == 3
    assert one(out, "Deployment", "web-batch")["spec"]["replicas"] == 0
    side, app = pod["containers"]
    assert "resources" not in side, "resources go to the primary container"
    # Strings, as server-side apply wants them.
    assert app["resources"] == {"limits": {"nvidia.com/gpu": "1", "cpu": "2"},
                                "requests": {"memory": "1Gi"}}
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]


def test_resources_go_to_the_first_container_without_a_primary() -> None:
    out = render(artifact([{"name": "batch", "containers": [
        {"name": "a", "imageUri": "a"}, {"name": "b", "imageUri": "b"}]}],
        runtime={"batch": {"resources": {"limits": {"cpu": "1"}}}}), Settings())
    first, second = containers(out)
    assert first["resources"] == {"limits": {"cpu": "1"}}
    assert "resources" not in second


def test_replicas_are_left_alone_without_runtime_replicas() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]}],
                          runtime={"api": {"nodeSelector": {"a": "b"}}}), Settings())
    assert "replicas" not in one(out, "Deployment")["spec"]
    plain = render(artifact([{"name": "api", "containers": [primary()]}]), Settings())
    pod = one(plain, "Deployment")["spec"]["template"]["spec"]
    assert "replicas" not in one(plain, "Deployment")["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_the_progress_deadline_starts_after_the_longest_startup_allowance() -> None:
    # The NIM sample's startup probe lets the model load for 30 s + 180 x 10 s; with the
    # default deadline of 600 s, the Deployment (and the artifact) would be Degraded while
    # the kubelet still waits for the container to start.
    slow = {**primary(), "startupProbe": {"path": "/ready", "periodSeconds": 10,
                                          "failureThreshold": 180}}
    quick = {"name": "side", "imageUri": "busybox:1.36",
             "startupProbe": {"path": "/h", "initialDelaySeconds": 0, "periodSeconds": 1}}
    out = render(artifact([{"name": "api", "containers": [slow, quick]}]), Settings())
    assert one(out, "Deployment")["spec"]["progressDeadlineSeconds"] == 600 + 30 + 180 * 10
    plain = render(artifact([{"name": "api", "containers": [
        {**primary(), "readinessProbe": {"path": "/ready"}}]}]), Settings())
    assert "progressDeadlineSeconds" not in one(plain, "Deployment")["spec"]


def test_service_deployments_keep_the_default_rollout_strategy() -> None:
    out = render(artifact([{"name": "api", "containers": [primary()]}]), Settings())
    assert "strategy" not in one(out, "Deployment")["spec"]


# -- waiting for an image, purity -----------------------------------------------------------


def test_group_waiting_for_an_image_is_not_rendered() -> None:
    out = render(artifact([
        {"name": "api", "containers": [primary()]},
        {"name": "build", "containers": [{"name": "app", "primary": True, "port": 8080,
                                          "imageBuildConfig": {}}]}]), Settings())
    assert [o["metadata"]["name"] for o in out.objects] == ["web-api", "web-api"]
    assert out.waiting_for_image == {"build": "app"}


def test_render_is_deterministic() -> None:
    doc = artifact([{"name": "api", "containers": [primary(environmentVars=[
        {"name": "T", "source": "dr-api-token"}])]}])
    assert render(doc, Settings()).objects == render(doc, Settings()).objects
