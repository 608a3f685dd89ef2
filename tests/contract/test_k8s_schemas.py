"""Every rendered object validates against the official Kubernetes OpenAPI schemas, for the
oldest and the newest Kubernetes version `kubernetes-validate` ships (strict: unknown fields
are errors too, so a typo in a field name cannot hide)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_validate import utils as kv

from artifact_operator.api.validation import parse
from artifact_operator.logic.approval import Decision, Grant, decide
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..support import samples

VERSIONS = sorted({kv.major_minor(v) for v in kv.all_versions()}, key=kv.Version)
OLDEST, NEWEST = VERSIONS[0], VERSIONS[-1]
LONG_NAME = "a" * 63  # the longest artifact name: every derived name must be cut


def _artifacts() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for variant in (*samples.VARIANTS, samples.elevated):
        for name in ("sample", LONG_NAME):
            doc = variant(name)
            doc.update(apiVersion="workload.dev/v1alpha1", kind="Artifact")
            doc["metadata"].update(namespace="team-a", uid="6f1c1a2e-0000-4000-8000-000000000001",
                                   generation=1)
            out.append((f"{variant.__name__}-{len(name)}", doc))
    return out


def _objects() -> list[Any]:
    params = []
    for label, doc in _artifacts():
        for elevated in (False, True):
            artifact = parse(doc)
            decisions = {g: Decision(Grant.approved if elevated else Grant.missing, "")
                         for g in decide(artifact, [])}
            for obj in render(artifact, Settings(), decisions).objects:
                ident = f"{label}-{obj['kind']}-{obj['metadata']['name'][-12:]}"
                params.append(pytest.param(obj, id=f"{ident}{'-admin' if elevated else ''}"))
    return params


def test_the_versions_are_the_oldest_and_newest_shipped() -> None:
    assert kv.Version(OLDEST) < kv.Version(NEWEST)
    assert kv.major_minor(kv.latest_version()) == NEWEST


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("obj", _objects())
def test_rendered_object_validates_against_kubernetes_schema(obj: dict[str, Any],
                                                             version: str) -> None:
    try:
        kv.validate(obj, version, strict=True)
    except kv.ValidationError as exc:
        pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes "
                    f"{version}: {exc.message} at {'.'.join(map(str, exc.path))}")


def test_the_range_covers_what_the_issue_asks_for() -> None:
    objects = [p.values[0] for p in _objects()]
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    containers = [c for d in deployments for c in d["spec"]["template"]["spec"]["containers"]]
    names = [o["metadata"]["name"] for o in objects]
    assert any(len(n) == 63 for n in names), "a name cut to 63 characters"
    assert {"livenessProbe", "readinessProbe", "startupProbe"} <= {k for c in containers
                                                                   for k in c}
    env = [e for c in containers for e in c.get("env", [])]
    assert any("value" in e for e in env)
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in env if "valueFrom" in e} >= {
        "password", "token"}
    assert any(c["securityContext"].get("readOnlyRootFilesystem") for c in containers)
    assert any(c["securityContext"]["seccompProfile"]["type"] == "Localhost" for c in containers)
    pods = [d["spec"]["template"]["spec"] for d in deployments]
    assert any(p.get("nodeSelector") and p.get("tolerations") for p in pods)
    assert any(c.get("resources") for c in containers)
    assert any(c["securityContext"]["capabilities"].get("add") for c in containers)
    assert {o["kind"] for o in objects} == {"Deployment", "Service", "Secret"}
