"""The CRDs of the optional APIs the operator renders into: the Gateway API's HTTPRoute, the
Prometheus Operator's ServiceMonitor, and Shipwright's BuildRun. Installed and removed by the
tests that need them (and the contract tests read their schemas).

By default these are the stand-ins in tests/integration/crds/ (written for these tests; see
the README there). With ARTIFACT_TEST_UPSTREAM_CRDS naming a directory that holds the
upstream files (`gateway.networking.k8s.io_httproutes.yaml` of kubernetes-sigs/gateway-api's
standard install, `monitoring.coreos.com_servicemonitors.yaml` of prometheus-operator,
`shipwright.io_buildruns.yaml` of shipwright-io/build's `deploy/crds/`), those
are used instead, with one change a 1.20 API server needs: lines `default: ""` are dropped (it
reads an empty-string default as null and refuses the whole CRD).

`served(kind)` and `not_served(kind)` make the pytest fixtures of a test module that needs
the API, or its absence: `gateway_api = optional_crds.served("HTTPRoute")`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from .wait import wait_for

STAND_INS = Path(__file__).resolve().parent.parent / "integration" / "crds"
UPSTREAM_ENV = "ARTIFACT_TEST_UPSTREAM_CRDS"
FILES = {"HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
         "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
         "BuildRun": "shipwright.io_buildruns.yaml"}


def upstream_dir() -> Path | None:
    value = os.environ.get(UPSTREAM_ENV)
    return Path(value) if value else None


def crd(kind: str, *, upstream: bool | None = None) -> dict[str, Any]:
    """The CRD of `kind`: upstream when asked (None: when ARTIFACT_TEST_UPSTREAM_CRDS is
    set), else the stand-in."""
    where = upstream_dir() if upstream is not False else None
    if upstream and where is None:
        raise ValueError(f"{UPSTREAM_ENV} is not set")
    if where is None:
        doc: dict[str, Any] = yaml.safe_load((STAND_INS / FILES[kind]).read_text())
        return doc
    text = (where / FILES[kind]).read_text()
    # The one deviation (module docstring): a 1.20 API server refuses `default: ""`.
    text = "\n".join(line for line in text.splitlines() if line.strip() != 'default: ""')
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def schema(kind: str, version: str, *, upstream: bool | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of one version of the CRD."""
    (found,) = [v for v in crd(kind, upstream=upstream)["spec"]["versions"]
                if v["name"] == version]
    out: dict[str, Any] = found["schema"]["openAPIV3Schema"]
    return out


def _discovered(api: client.ApiClient, group_version: str, plural: str) -> bool:
    try:
        resources = client.CustomObjectsApi(api).get_api_resources(*group_version.split("/"))
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.name == plural for r in resources.resources)


def install(api: client.ApiClient, kind: str) -> None:
    """Create (or replace) the CRD and wait until the API server serves it."""
    doc = crd(kind)
    ext = client.ApiextensionsV1Api(api)
    name = doc["metadata"]["name"]
    try:
        doc["metadata"]["resourceVersion"] = \
            ext.read_custom_resource_definition(name).metadata.resource_version
        ext.replace_custom_resource_definition(name, doc)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        doc["metadata"].pop("resourceVersion", None)
        ext.create_custom_resource_definition(doc)
    group, plural = doc["spec"]["group"], doc["spec"]["names"]["plural"]
    served = [v["name"] for v in doc["spec"]["versions"] if v.get("served")]
    wait_for(lambda: all(_discovered(api, f"{group}/{v}", plural) for v in served),
             timeout=60, what=f"{plural}.{group} to be served")


def uninstall(api: client.ApiClient, kind: str) -> None:
    """Delete the CRD (and with it every object of the kind) and wait until it is no longer
    served."""
    doc = crd(kind)
    ext = client.ApiextensionsV1Api(api)
    name = doc["metadata"]["name"]
    with contextlib.suppress(client.ApiException):
        ext.delete_custom_resource_definition(name)
    group, plural = doc["spec"]["group"], doc["spec"]["names"]["plural"]

    def gone() -> bool:
        with contextlib.suppress(client.ApiException):
            ext.read_custom_resource_definition(name)
            return False
        return not any(_discovered(api, f"{group}/{v['name']}", plural)
                       for v in doc["spec"]["versions"])

    wait_for(gone, timeout=120, what=f"{plural}.{group} to be gone")


def _fixture(kind: str, want: bool) -> Callable[..., Iterator[None]]:
    def fixture(cluster: Any) -> Iterator[None]:
        (install if want else uninstall)(cluster.api, kind)
        yield
        uninstall(cluster.api, kind)

    fixture.__doc__ = (f"{kind}s {'served' if want else 'not served'} (whatever an earlier "
                       "test left), and not served after the test (which may install the CRD "
                       "on the way).")
    return pytest.fixture(fixture)


def served(kind: str) -> Callable[..., Iterator[None]]:
    """A fixture: the CRD of `kind` installed for the test, removed after it."""
    return _fixture(kind, True)


def not_served(kind: str) -> Callable[..., Iterator[None]]:
    """A fixture: the CRD of `kind` removed for the test, and again after it."""
    return _fixture(kind, False)
