"""`covers(live, desired)`: does the live object already hold every rendered field?"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from artifact_operator.logic.compare import covers, digest, rekeyed, stamped, up_to_date

DESIRED = {"metadata": {"name": "web-api", "labels": {"a": "1"}},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
               {"name": "app", "image": "nginx:1.27",
                "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi",
                                         "nvidia.com/gpu": "1"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                   "initialDelaySeconds": 0}}]}}}}

LIVE = {"metadata": {"name": "web-api", "labels": {"a": "1", "added-by": "someone"},
                     "resourceVersion": "42", "managedFields": []},
        "spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {
            "restartPolicy": "Always", "containers": [
                {"name": "app", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                 "resources": {"limits": {"cpu": "500m", "memory": "1Gi",
                                          "nvidia.com/gpu": "1"}},
                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080,
                                                "scheme": "HTTP"},
                                    "successThreshold": 1}}]}}},
        "status": {"replicas": 2}}


def at(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with the dotted `path` set to `value` (`[n]` indexes a list)."""
    out = copy.deepcopy(obj)
    node: Any = out
    keys = [int(k[1:-1]) if k.startswith("[") else k
            for k in path.replace("[", ".[").split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def test_live_with_defaults_and_other_managers_fields_is_covered() -> None:
    assert covers(LIVE, DESIRED)


@pytest.mark.parametrize(("path", "value"), [
    ("spec.replicas", 3),
    ("metadata.labels", {"added-by": "someone"}),
    ("spec.template.spec.containers[0].image", "evil:latest"),
    ("spec.template.spec.containers[0].resources.limits.cpu", "600m"),
    ("spec.template.spec.containers[0].readinessProbe.httpGet.port", 9090),
    ("spec.template.spec.containers[0].readinessProbe.initialDelaySeconds", 5),
])
def test_any_changed_rendered_field_is_not_covered(path: str, value: Any) -> None:
    assert not covers(at(LIVE, path, value), DESIRED)


def test_named_lists_match_by_name_and_others_items_are_theirs() -> None:
    containers = LIVE["spec"]["template"]["spec"]["containers"]
    sidecar = at(LIVE, "spec.template.spec.containers", [{"name": "mesh"}, *containers])
    assert covers(sidecar, DESIRED), "a sidecar someone injected is not ours to remove"
    assert not covers(sidecar, DESIRED, exact=True), "exactly: the whole list"
    assert not covers(at(LIVE, "spec.template.spec.containers", []), DESIRED)
    assert not covers(at(LIVE, "spec.template.spec.containers", [{"name": "other"}]), DESIRED)
    assert covers({"a": [1, 2]}, {"a": [1, 2]})
    assert not covers({"a": [2, 1]}, {"a": [1, 2]}), "unnamed items match by position"


def test_up_to_date_needs_the_digest_of_what_we_apply_now() -> None:
    """What we stopped rendering is found by the digest: an env var removed from the spec
    is still in the live list (covered), but the digest differs, so it is applied."""
    with_env = at(DESIRED, "spec.template.spec.containers[0].env",
                  [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    live = stamped(with_env)
    assert up_to_date(live, with_env)
    without_b = at(with_env, "spec.template.spec.containers[0].env",
                   [{"name": "A", "value": "1"}])
    assert covers(live, without_b) and not up_to_date(live, without_b)
    assert not up_to_date(with_env, with_env), "never stamped (another version applied it)"
    assert digest(stamped(with_env)) == digest(with_env), "the stamp is not in its digest"
    tampered = at(live, "spec.template.spec.containers[0].env[1].value", "3")
    assert not up_to_date(tampered, with_env), "a field we own changed: restored"


@pytest.mark.parametrize(("live", "desired"), [
    ("500m", "0.5"), ("1Gi", "1024Mi"), ("1", 1), (2, "2"), ("1000m", "1"),
])
def test_quantities_compare_by_value(live: Any, desired: Any) -> None:
    assert covers({"resources": {"limits": {"cpu": live}}},
                  {"resources": {"limits": {"cpu": desired}}})


def test_only_quantities_compare_by_value() -> None:
    assert not covers({"image": "1000m"}, {"image": "1"})
    assert not covers({"resources": {"limits": {"cpu": "lots"}}},
                      {"resources": {"limits": {"cpu": "1"}}})


@pytest.mark.parametrize("desired", [[], {}, "", None, 0])
def test_empty_desired_values_match_what_the_server_omits(desired: Any) -> None:
    assert covers({}, {"field": desired})


def test_false_is_not_the_same_as_missing() -> None:
    # allowPrivilegeEscalation: false must be present, not merely unset.
    assert not covers({}, {"allowPrivilegeEscalation": False})
    assert covers({"allowPrivilegeEscalation": False}, {"allowPrivilegeEscalation": False})
    assert not covers({"allowPrivilegeEscalation": True}, {"allowPrivilegeEscalation": False})


def test_missing_object_parts_are_not_covered() -> None:
    assert not covers({}, DESIRED)
    assert not covers({"spec": None}, {"spec": {"replicas": 1}})


PORTS: list[dict[str, Any]] = [
    {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
    {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}]
SERVICE = {"spec": {"ports": PORTS}}


def test_a_port_number_edited_by_hand_is_put_back_by_a_guarded_json_patch() -> None:
    live = at(SERVICE, "spec.ports[1].port", 9999)
    assert rekeyed(live, SERVICE) == [
        {"op": "test", "path": "/spec/ports/1/name", "value": "metrics"},
        {"op": "test", "path": "/spec/ports/1/port", "value": 9999},
        {"op": "replace", "path": "/spec/ports/1/port", "value": 9100}]
    assert not covers(live, SERVICE)


def test_container_ports_are_found_by_the_live_containers_order() -> None:
    desired = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}}}}
    live = {"spec": {"template": {"spec": {"containers": [
        {"name": "mesh-proxy", "ports": [{"name": "admin", "containerPort": 15000}]},
        {"name": "app", "ports": [{"containerPort": 15090},  # another manager's, unnamed
                                  {"name": "http", "containerPort": 8080, "protocol": "UDP"}]}]}}}}
    path = "/spec/template/spec/containers/1/ports/1"
    assert rekeyed(live, desired) == [
        {"op": "test", "path": f"{path}/name", "value": "http"},
        {"op": "test", "path": f"{path}/protocol", "value": "UDP"},
        {"op": "replace", "path": f"{path}/protocol", "value": "TCP"}]


def test_a_mount_path_edited_by_hand_is_put_back() -> None:
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "nim", "volumeMounts": [
        {"name": "model-store", "mountPath": "/opt/nim/.cache"},
        {"name": "dshm", "mountPath": "/dev/shm"}]}]}}}}
    live = at(desired, "spec.template.spec.containers[0].volumeMounts[0].mountPath", "/x")
    path = "/spec/template/spec/containers/0/volumeMounts/0"
    assert rekeyed(live, desired) == [
        {"op": "test", "path": f"{path}/name", "value": "model-store"},
        {"op": "test", "path": f"{path}/mountPath", "value": "/x"},
        {"op": "replace", "path": f"{path}/mountPath", "value": "/opt/nim/.cache"}]


@pytest.mark.parametrize("live", [
    SERVICE,
    # Another manager's port, under a name of its own: theirs.
    {"spec": {"ports": [*PORTS, {"name": "debug", "port": 8080, "protocol": "UDP"}]}},
    # Ours gone: the apply adds it back, nothing collides.
    {"spec": {"ports": PORTS[:1]}},
    # Fields that are not server-side apply keys are the apply's to put back.
    at(SERVICE, "spec.ports[0].targetPort", 9000),
])
def test_nothing_to_put_back_when_no_named_port_has_another_key(live: Any) -> None:
    assert rekeyed(live, SERVICE) == []
