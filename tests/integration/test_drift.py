"""Every field the operator renders into a child, changed or removed by hand, is put back:
each leaf of the rendered Deployments, Services, claims, Ingresses and HPAs of three artifacts
(and each list item) is edited in turn with a JSON patch (`kubectl patch --type json`, the
most literal edit there is), changed and then removed, and the child must again hold
everything rendered within seconds, with no edited item of ours left beside its original.
Edits the API server refuses (an immutable selector, a required field, a value a field cannot
take) are counted and left out; the test fails if too few got through for it to mean
anything."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from artifact_operator.api.validation import parse
from artifact_operator.controller.view import slim
from artifact_operator.kube.kinds import kind_of
from artifact_operator.logic.compare import covers, pointer_key, pointer_token, stamped
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.builders import nim_artifact, service_artifact
from ..support.operator import OperatorProcess
from ..support.samples import opted_in_secret
from ..support.wait import Timeout, wait_for
from .test_autoscaling import hpa_version
from .test_service_reconcile import NAME, two_groups

pytestmark = pytest.mark.cluster

# Not edits of a value: an item's identity (its name in a list), what the object is, and
# whom it belongs to (a foreign owner hands it to the garbage collector, which is a deletion,
# tested on its own).
SKIP = re.compile(r"^/(apiVersion|kind)$|^/metadata/(name|namespace|ownerReferences)(/|$)"
                  r"|/\d+/name$")
OTHER = {"TCP": "UDP", "ClusterIP": "NodePort", "IfNotPresent": "Always",
         "Always": "IfNotPresent", "RuntimeDefault": "Unconfined", "HTTP": "HTTPS",
         "RollingUpdate": "Recreate"}
QUANTITY = re.compile(r"^[0-9.]+[a-zA-Z]*$")


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(JSON pointer, value) of each scalar in `obj`, and of each list item."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{path}/{pointer_token(key)}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, dict | list):
                yield f"{path}/{i}", value
            yield from leaves(value, f"{path}/{i}")
    else:
        yield path, obj


def edits(pointer: str, current: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The hand edits of the value at `pointer`: changed (a scalar) and removed."""
    test = {"op": "test", "path": pointer, "value": current}
    if not isinstance(current, dict | list):
        yield "changed", [test, {"op": "replace", "path": pointer, "value": edited(current)}]
    yield "removed", [test, {"op": "remove", "path": pointer}]


def locate(live: Any, desired: Any, pointer: str) -> tuple[str, Any] | None:
    """`pointer` into `desired` as a pointer into `live` and the value there: an item of a
    named list is found by its name (a put-back item may come back elsewhere in the list)."""
    out = ""
    for part in pointer.split("/")[1:]:
        if isinstance(desired, list):
            want = desired[int(part)]
            name = want.get("name") if isinstance(want, dict) else None
            index = next((i for i, item in enumerate(live)
                          if isinstance(item, dict) and item.get("name") == name),
                         None) if name is not None else int(part)
            if index is None or index >= len(live):
                return None
            desired, live, part = want, live[index], str(index)
        else:
            key = pointer_key(part)
            if key not in live:
                return None
            desired, live = desired[key], live[key]
        out += f"/{part}"
    return out, live


def twins(live: Any, desired: Any) -> list[str]:
    """Names of our list items that `live` holds more than once: an edited item kept beside
    ours, which `covers` alone would not see."""
    out: list[str] = []
    if isinstance(desired, dict) and isinstance(live, dict):
        for key, value in desired.items():
            out += twins(live.get(key), value)
    elif isinstance(desired, list) and isinstance(live, list):
        names = [i.get("name") for i in live if isinstance(i, dict)]
        for item in desired:
            if isinstance(item, dict) and names.count(item.get("name")) > 1:
                out.append(str(item["name"]))
        if len(desired) == len(live):
            for a, b in zip(live, desired, strict=True):
                out += twins(a, b)
    return out


def edited(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value in OTHER:
        return OTHER[value]
    if QUANTITY.match(value):
        return "3" if value != "3" else "4"
    return f"{value}x"


ARTIFACTS = {
    # Two groups: env from a Secret and a token, probes, a securityContext, resources.
    "service": two_groups(),
    # A NIM: its model store's claim mounted, the NIM's env and probes (no warm-up Job,
    # which would hold the Deployment until it ran on a node).
    "nim": nim_artifact(NAME, storage={"mode": "dedicatedPvc", "warmUp": False}),
    # Exposed through an Ingress and scaled by an HPA (the Deployment's replicas are the
    # HPA's, not rendered).
    "ingress-hpa": service_artifact(NAME, runtime={"api": {
        "expose": {"ingress": {
            "host": "shop.example.com", "path": "/v1", "className": "nginx",
            "tlsSecret": "shop-tls", "annotations": {"cert-manager.io/issuer": "le"}}},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 4, "targetCpuUtilization": 60}}}),
}
KINDS_EDITED = ("Deployment", "Service", "Ingress", "HorizontalPodAutoscaler",
                "PersistentVolumeClaim")


class Rest:
    """Any kind the operator renders, read, patched and deleted by its REST path."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def call(self, method: str, obj: dict[str, Any], body: Any = None) -> Any:
        path = kind_of(obj).path(obj["metadata"]["namespace"], obj["metadata"]["name"])
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json-patch+json"
        method, url, headers, body, _ = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=headers, body=body)
        data = response.read()
        if response.status >= 400:
            raise client.ApiException(status=response.status, reason=data.decode())
        return json.loads(data)


@pytest.mark.parametrize("manifest", ARTIFACTS.values(), ids=ARTIFACTS.keys())
def test_each_rendered_field_edited_by_hand_is_put_back(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        manifest: dict[str, Any]) -> None:
    opted_in_secret(cluster.core, namespace, "db-creds")
    create_artifact(cluster, namespace, manifest)
    body = get_artifact(cluster, namespace, NAME)
    # As the operator renders it: the HPA in the version this server serves.
    settings = Settings(hpa_api_version=f"autoscaling/{hpa_version(cluster)}")
    rendered = [stamped(o) for o in render(parse(body), settings).objects
                if o["kind"] in KINDS_EDITED]
    print(f"edited: {sorted(o['kind'] for o in rendered)}")
    rest = Rest(cluster.api)

    def holds(desired: dict[str, Any]) -> bool:
        try:
            now = slim(rest.call("GET", desired))
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return covers(now, desired) and not twins(now, desired)

    for desired in rendered:
        wait_for(lambda d=desired: holds(d), timeout=30, what=f"{desired['kind']} rendered")

    outcomes: Counter[str] = Counter()
    not_put_back = []
    for desired in rendered:
        what = f"{desired['kind']} {desired['metadata']['name']}"
        for pointer, _ in leaves(desired):
            if SKIP.search(pointer):
                continue
            found = locate(slim(rest.call("GET", desired)), desired, pointer)
            assert found is not None, f"{what} has nothing at {pointer}"
            for how, ops in edits(*found):
                try:
                    rest.call("PATCH", desired, ops)
                except client.ApiException as exc:
                    assert exc.status == 422, exc.reason
                    outcomes[f"{how}: refused by the API server"] += 1
                    continue
                outcomes[how] += 1
                try:
                    wait_for(lambda d=desired: holds(d), timeout=15,
                             what=f"{what} {pointer} put back")
                except Timeout:
                    not_put_back.append(f"{what} {pointer} {how}")
                    # The next edit starts from the rendered object again: deleted, re-created.
                    rest.call("DELETE", desired)
                    wait_for(lambda d=desired: holds(d), timeout=30, what=f"{what} re-created")
    print(f"edits of rendered fields: {dict(outcomes)}")
    assert not not_put_back, not_put_back
    assert outcomes["changed"] >= 30 and outcomes["removed"] >= 30, outcomes
