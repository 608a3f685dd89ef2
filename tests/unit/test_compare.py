"""`covers(live, desired)`: does the live object already hold every rendered field?"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from artifact_operator.logic.compare import covers, digest, stamped, up_to_date

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
