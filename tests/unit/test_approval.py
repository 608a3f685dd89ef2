"""What an approval covers (the group digest), and the pure decisions made from approvals.
No cluster: tests/integration/test_approval.py shows the same against a real API server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from artifact_operator.api.validation import parse
from artifact_operator.logic.approval import (
    Grant,
    approval_spec,
    decide,
    group_digest,
)

from ..support.builders import PINNED_IMAGE, artifact, container, group, primary

Obj = dict[str, Any]
CAPS = {"capabilities": {"add": ["NET_ADMIN"]}}
OTHER_PINNED = "nginx@sha256:" + "1" * 64


def elevated(**spec: Any) -> Obj:
    """Group `api` (elevated `app` + a sidecar) and group `plain`, with a uid."""
    return artifact(
        "web",
        group("api", primary(image=PINNED_IMAGE, securityContext=copy.deepcopy(CAPS),
                             entrypoint=["/bin/serve"],
                             environmentVars=[{"name": "MODE", "value": "a"}]),
              container("side", "busybox:1")),
        group("plain"),
        namespace="ns", uid="uid-1",
        runtime={"api": {"replicas": 1, "tolerations": [{"key": "gpu"}]}}, **spec)


def digest(doc: Obj, name: str = "api") -> str:
    art = parse(doc)
    (g,) = [g for g in art.spec.container_groups if g.name == name]
    return group_digest(art, g).digest


def _set(path: Callable[[Obj], Obj], key: str, value: Any) -> Callable[[Obj], None]:
    return lambda d: path(d).__setitem__(key, value)


def _app(d: Obj) -> Obj:
    found: Obj = d["spec"]["containerGroups"][0]["containers"][0]
    return found


def _side(d: Obj) -> Obj:
    found: Obj = d["spec"]["containerGroups"][0]["containers"][1]
    return found


def _runtime(d: Obj) -> Obj:
    found: Obj = d["spec"]["runtime"]["api"]
    return found


COVERED: dict[str, Callable[[Obj], None]] = {
    "entrypoint": _set(_app, "entrypoint", ["/bin/sh", "-c", "evil"]),
    "env": _set(_app, "environmentVars", [{"name": "MODE", "value": "b"}]),
    "image": _set(_app, "imageUri", OTHER_PINNED),
    "probe": _set(_app, "livenessProbe", {"path": "/x"}),
    "port": _set(_app, "port", 9090),
    "securityContext": _set(_app, "securityContext",
                            {"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}}),
    "another container's image": _set(_side, "imageUri", "busybox:2"),
    "another container's command": _set(_side, "entrypoint", ["nc", "-l"]),
    "a new container": lambda d: d["spec"]["containerGroups"][0]["containers"].append(
        container("third", "alpine:3")),
    "runtime tolerations": _set(_runtime, "tolerations", [{"operator": "Exists"}]),
    "runtime nodeSelector": _set(_runtime, "nodeSelector", {"pool": "trusted"}),
    "runtime resources": _set(_runtime, "resources", {"limits": {"cpu": "2"}}),
    "type": lambda d: d["spec"].update(type="nim"),
}

IGNORED: dict[str, Callable[[Obj], None]] = {
    "replicas": _set(_runtime, "replicas", 5),
    "description": lambda d: d["spec"].update(description="words"),
    "displayName": lambda d: d["spec"].update(displayName="Web"),
    "lifecycle": lambda d: d["spec"].update(lifecycle="locked"),
    "repository": lambda d: d["spec"].update(repository="shop"),
    "a container's description": _set(_side, "description", "words"),
    "another group": lambda d: d["spec"]["containerGroups"][1]["containers"][0].update(
        imageUri="nginx:2"),
    "labels": lambda d: d["metadata"].update(labels={"a": "b"}),
    "defaults spelled out": _set(_app, "primary", True),
}


@pytest.mark.parametrize("change", list(COVERED), ids=list(COVERED))
def test_the_digest_covers_what_decides_what_the_pods_run(change: str) -> None:
    doc = elevated()
    before = digest(doc)
    COVERED[change](doc)
    if change == "type":
        doc["spec"]["containerGroups"] = doc["spec"]["containerGroups"][:1]
    assert digest(doc) != before


@pytest.mark.parametrize("change", list(IGNORED), ids=list(IGNORED))
def test_the_digest_ignores_what_runs_no_different_pod(change: str) -> None:
    doc = elevated()
    before = digest(doc)
    IGNORED[change](doc)
    assert digest(doc) == before


def test_storage_is_covered() -> None:
    nim = artifact("m", group("llm", primary("nim", PINNED_IMAGE, port=8000,
                                             securityContext=CAPS)),
                   type="nim", namespace="ns", uid="u")
    before = digest(nim, "llm")
    nim["spec"]["storage"] = {"mode": "nimCache"}
    assert digest(nim, "llm") != before


def approval(doc: Obj, uid: str | None = None) -> Obj:
    spec = approval_spec(parse(doc))
    if uid is not None:
        spec["artifact"]["uid"] = uid
    return {"metadata": {"name": "web", "namespace": "ns", "resourceVersion": "1"},
            "spec": spec}


def test_approval_spec_names_the_artifact_and_only_its_elevated_groups() -> None:
    spec = approval_spec(parse(elevated()))
    assert spec["artifact"] == {"name": "web", "uid": "uid-1"}
    assert [g["name"] for g in spec["groups"]] == ["api"]
    assert spec["groups"][0]["elevated"] == [
        "spec.containerGroups[0].containers[0].securityContext.capabilities.add"]
    assert spec["groups"][0]["digest"].startswith("sha256:")


def test_decisions() -> None:
    doc = elevated()
    given = approval(doc)
    assert {g: d.grant for g, d in decide(parse(doc), [given]).items()} == \
        {"api": Grant.approved}
    # Never approved: missing, naming the fields and the way to approve.
    missing = decide(parse(doc), [])["api"]
    assert missing.grant == Grant.missing
    assert "securityContext.capabilities.add" in missing.message
    assert "kubectl artifact approve web" in missing.message
    # Any change afterwards: stale, saying what changed.
    COVERED["entrypoint"](doc)
    _set(_runtime, "tolerations", [{"operator": "Exists"}])(doc)
    stale = decide(parse(doc), [given])["api"]
    assert stale.grant == Grant.stale
    assert "container/app, runtime" in stale.message
    # Approved again: approved.
    assert decide(parse(doc), [approval(doc)])["api"].grant == Grant.approved


def test_an_approval_of_another_uid_approves_nothing() -> None:
    doc = elevated()
    old = approval(doc, uid="uid-0")
    found = decide(parse(doc), [old])["api"]
    assert found.grant == Grant.stale
    assert "uid differs" in found.message


def test_the_old_annotation_counts_only_where_no_approval_speaks() -> None:
    doc = elevated()
    assert decide(parse(doc), [], legacy=True)["api"].grant == Grant.legacy
    stale_approval = approval(doc)
    COVERED["env"](doc)
    assert decide(parse(doc), [stale_approval], legacy=True)["api"].grant == Grant.stale
