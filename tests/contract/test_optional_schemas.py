"""What `runtime.<group>.expose` and `.metrics` render validates, strictly (no undeclared
field): the Ingress against the Kubernetes schemas of the oldest and newest version
`kubernetes-validate` ships; the HTTPRoute (both versions rendered) and the ServiceMonitor,
which are CRDs and not in those schemas, against their CRDs' openAPIV3Schema: the stand-ins
of tests/integration/crds/ always, and the upstream CRDs as well where
ARTIFACT_TEST_UPSTREAM_CRDS names them (tests/support/optional_crds.py)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as kv

from artifact_operator.logic.render import render
from artifact_operator.logic.served import HTTP_ROUTE_VERSIONS, ServedApis
from artifact_operator.settings import Settings

from ..support import optional_crds
from ..support.builders import in_namespace, parsed, service_artifact
from .test_k8s_schemas import LONG_NAME, NEWEST, OLDEST

INGRESS = {"host": "llm.example.com", "path": "/v1", "pathType": "Prefix", "className": "nginx",
           "tlsSecret": "llm-tls", "annotations": {"cert-manager.io/cluster-issuer": "le"}}
ROUTE = {"parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"},
                        {"name": "edge", "namespace": "infra", "sectionName": "http"}],
         "hostnames": ["llm.example.com", "*.llm.example.com"], "path": "/v1",
         "scheme": "https"}
METRICS = {"port": 9090, "path": "/stats", "interval": "15s", "labels": {"release": "prom"}}


def _rendered(name: str, runtime: dict[str, Any], apis: ServedApis) -> list[dict[str, Any]]:
    manifest = in_namespace(service_artifact(name, runtime={"api": runtime}), "team-a",
                            uid="6f1c1a2e-0000-4000-8000-000000000001", generation=1)
    return render(parsed(manifest), Settings(), apis=apis).objects


def _objects(kind: str) -> list[Any]:
    params = []
    for name in ("web", LONG_NAME):
        for version in HTTP_ROUTE_VERSIONS:
            apis = ServedApis(http_route=version)
            for runtime in ({"expose": {"ingress": INGRESS}, "metrics": METRICS},
                            {"expose": {"ingress": {}}, "metrics": {}},
                            {"expose": {"httpRoute": ROUTE}},
                            {"expose": {"httpRoute": {"parentRefs": [{"name": "edge"}]}}}):
                for obj in _rendered(name, runtime, apis):
                    if obj["kind"] == kind:
                        ident = f"{obj['apiVersion']}-{len(name)}-{len(params)}"
                        params.append(pytest.param(obj, id=ident))
    # The same object rendered twice (the Ingress for both route versions) is checked once.
    seen: list[Any] = []
    return [p for p in params if p.values[0] not in seen and not seen.append(p.values[0])]


def _strict(node: Any) -> Any:
    """The schema with every object that declares its properties closed to others (what
    `kubernetes-validate --strict` does for built-in kinds), and the Kubernetes extensions
    jsonschema does not know in its own words."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out["type"] = ["integer", "string"]
    if "properties" in out:
        out.pop("x-kubernetes-preserve-unknown-fields", None)
        out.setdefault("additionalProperties", False)
    return out


def _sources() -> list[str]:
    return ["stand-in", "upstream"] if optional_crds.upstream_dir() else ["stand-in"]


def _validate(obj: dict[str, Any], kind: str, source: str) -> None:
    version = obj["apiVersion"].split("/")[1]
    schema = _strict(copy.deepcopy(optional_crds.schema(kind, version,
                                                        upstream=source == "upstream")))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
    assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("obj", _objects("Ingress"))
def test_the_ingress_validates_against_kubernetes_schema(obj: dict[str, Any],
                                                         version: str) -> None:
    kv.validate(obj, version, strict=True)


@pytest.mark.parametrize("source", _sources())
@pytest.mark.parametrize("obj", _objects("HTTPRoute"))
def test_the_httproute_validates_against_its_crd(obj: dict[str, Any], source: str) -> None:
    _validate(obj, "HTTPRoute", source)


@pytest.mark.parametrize("source", _sources())
@pytest.mark.parametrize("obj", _objects("ServiceMonitor"))
def test_the_servicemonitor_validates_against_its_crd(obj: dict[str, Any],
                                                      source: str) -> None:
    _validate(obj, "ServiceMonitor", source)


def test_the_strict_schema_refuses_an_undeclared_field() -> None:
    """The check has teeth: a misspelt field of a rendered object fails it."""
    (route,) = _objects("HTTPRoute")[:1]
    bad = copy.deepcopy(route.values[0])
    bad["spec"]["rules"][0]["backendRef"] = bad["spec"]["rules"][0].pop("backendRefs")
    with pytest.raises(AssertionError, match="backendRef"):
        _validate(bad, "HTTPRoute", "stand-in")
    (monitor,) = _objects("ServiceMonitor")[:1]
    bad = copy.deepcopy(monitor.values[0])
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(AssertionError, match="intervall"):
        _validate(bad, "ServiceMonitor", "stand-in")


def test_the_range_covers_every_field_rendered() -> None:
    objects = [p.values[0] for kind in ("Ingress", "HTTPRoute", "ServiceMonitor")
               for p in _objects(kind)]
    assert {o["apiVersion"] for o in objects if o["kind"] == "HTTPRoute"} == \
        set(HTTP_ROUTE_VERSIONS)
    assert any(len(o["metadata"]["name"]) == 63 for o in objects)
    ingress = next(o for o in objects if o["kind"] == "Ingress" and "tls" in o["spec"])
    assert {"ingressClassName", "tls", "rules"} <= set(ingress["spec"])
    route = next(o for o in objects if o["kind"] == "HTTPRoute" and "hostnames" in o["spec"])
    assert {"namespace", "sectionName"} <= set(route["spec"]["parentRefs"][0])
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor"
                   and "interval" in o["spec"]["endpoints"][0])
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def _buildruns() -> list[Any]:
    """The BuildRuns of a git source (revision, context directory, clone Secret) and of an
    oci source (pull Secret), with a push Secret."""
    from artifact_operator.logic.build_objects import render_buildrun

    from ..unit.test_builds import GIT, OCI, OWNER, SETTINGS, built, plan

    git = {"provider": "git", "git": {**GIT["git"], "cloneSecret": "clone"}}
    out = []
    for ref in (git, OCI):
        art = built(ref)
        run = render_buildrun(art, plan(art), SETTINGS, OWNER)
        out.append(pytest.param(run, id=ref["provider"]))
    return out


@pytest.mark.parametrize("source", _sources())
@pytest.mark.parametrize("obj", _buildruns())
def test_the_buildrun_validates_against_its_crd(obj: dict[str, Any], source: str) -> None:
    _validate(obj, "BuildRun", source)
    bad = copy.deepcopy(obj)
    bad["spec"]["build"]["spec"]["paramValue"] = bad["spec"]["build"]["spec"].pop("paramValues")
    with pytest.raises(AssertionError, match="paramValue"):
        _validate(bad, "BuildRun", source)
