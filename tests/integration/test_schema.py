"""The CRD on a real API server: established with its printer columns, the seed's schema
constraints enforced at create time (422 naming the field), defaults applied, unknown fields
pruned. No operator runs here: this is what `kubectl apply` alone gives a user."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.wait import wait_for

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRD_NAME = "artifacts.workload.dev"


def test_checked_in_crd_applies_and_is_established_with_its_columns(cluster: Cluster) -> None:
    ext = client.ApiextensionsV1Api(cluster.api)
    crd = yaml.safe_load((REPO / "crds" / "workload.dev_artifacts.yaml").read_text())
    crd["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(
        CRD_NAME).metadata.resource_version
    ext.replace_custom_resource_definition(CRD_NAME, crd)

    def established() -> Any:
        got = ext.read_custom_resource_definition(CRD_NAME)
        conditions = {c.type: c.status for c in got.status.conditions or []}
        return got if conditions.get("Established") == "True" and conditions.get(
            "NamesAccepted") == "True" else None

    got = wait_for(established, timeout=30, what="the CRD to be established")
    # The server's own verdict on the schema: a non-structural one gets this condition.
    assert "NonStructuralSchema" not in {c.type for c in got.status.conditions}
    assert got.spec.names.short_names == ["art"]
    assert got.spec.scope == "Namespaced"
    version = got.spec.versions[0]
    assert (version.name, version.served, version.storage) == ("v1alpha1", True, True)
    assert version.subresources.status is not None
    assert [c.name for c in version.additional_printer_columns] == [
        "Type", "Lifecycle", "Version", "Phase", "Ready", "Endpoint", "Age"]


def _table(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """What `kubectl get art` asks the server for: the printer columns as a Table."""
    method, url, headers, _, _ = cluster.api.param_serialize(
        "GET", f"/apis/workload.dev/v1alpha1/namespaces/{namespace}/artifacts",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"])
    response = cluster.api.call_api(method, url, header_params=headers)
    table: dict[str, Any] = json.loads(response.read())
    return table


def test_kubectl_get_shows_the_printer_columns(cluster: Cluster, namespace: str) -> None:
    create_artifact(cluster, namespace, {"metadata": {"name": "web"}, "spec": {}})
    cluster.custom.patch_namespaced_custom_object_status(
        "workload.dev", "v1alpha1", namespace, "artifacts", "web",
        {"status": {"phase": "Ready", "ready": "2/2", "version": 3,
                    "endpoint": "http://web-api.ns.svc.cluster.local:8080"}})
    table = _table(cluster, namespace)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Type", "Lifecycle", "Version", "Phase", "Ready", "Endpoint",
                       "Age"]
    (row,) = table["rows"]
    assert row["cells"][:7] == ["web", "service", "draft", 3, "Ready", "2/2",
                                "http://web-api.ns.svc.cluster.local:8080"]


def _valid() -> dict[str, Any]:
    return {"containerGroups": [{"name": "api", "containers": [{
        "name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
        "readinessProbe": {"path": "/ready"},
        "environmentVars": [{"name": "A", "value": "1"}]}]}]}


def _set(path: str, value: Any) -> dict[str, Any]:
    """The valid spec with one field (dotted path, list indexes as numbers) set to value;
    a value of DELETE removes the field."""
    spec = _valid()
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = spec
    for part in parts[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return spec


DELETE = object()
C0 = "containerGroups.0.containers.0"

# (id, spec, the field the 422 must name)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("group-name-pattern", _set("containerGroups.0.name", "Api"), "containerGroups[0].name"),
    ("group-name-length", _set("containerGroups.0.name", "a" * 64), "containerGroups[0].name"),
    ("container-name-pattern", _set(f"{C0}.name", "app_1"), "containers[0].name"),
    ("container-name-length", _set(f"{C0}.name", "a" * 64), "containers[0].name"),
    ("port-below-1024", _set(f"{C0}.port", 80), "containers[0].port"),
    ("port-above-65535", _set(f"{C0}.port", 65536), "containers[0].port"),
    ("probe-port-zero", _set(f"{C0}.readinessProbe.port", 0), "readinessProbe.port"),
    ("probe-port-above-65535", _set(f"{C0}.readinessProbe.port", 65536), "readinessProbe.port"),
    ("probe-path-required", _set(f"{C0}.readinessProbe.path", DELETE), "readinessProbe.path"),
    ("probe-scheme-enum", _set(f"{C0}.readinessProbe.scheme", "TCP"), "readinessProbe.scheme"),
    ("probe-period-zero", _set(f"{C0}.readinessProbe.periodSeconds", 0),
     "readinessProbe.periodSeconds"),
    ("probe-delay-negative", _set(f"{C0}.readinessProbe.initialDelaySeconds", -1),
     "readinessProbe.initialDelaySeconds"),
    ("pvc-size-pattern", {**_valid(), "type": "nim", "storage": {"pvcSize": "10GB"}},
     "spec.storage.pvcSize"),
    ("type-enum", {"type": "job"}, "spec.type"),
    ("lifecycle-enum", {"lifecycle": "frozen"}, "spec.lifecycle"),
    ("storage-mode-enum", {"type": "nim", "storage": {"mode": "shared"}}, "spec.storage.mode"),
    ("seccomp-type-enum", _set(f"{C0}.securityContext", {"seccompProfile": {"type": "Strict"}}),
     "seccompProfile.type"),
    ("seccomp-type-required", _set(f"{C0}.securityContext", {"seccompProfile": {}}),
     "seccompProfile.type"),
    ("env-source-enum", _set(f"{C0}.environmentVars.0.source", "secret"),
     "environmentVars[0].source"),
    ("env-name-required", _set(f"{C0}.environmentVars.0.name", DELETE),
     "environmentVars[0].name"),
    ("env-name-pattern", _set(f"{C0}.environmentVars.0.name", "1A"), "environmentVars[0].name"),
    ("env-secret-name-pattern", _set(f"{C0}.environmentVars.0", {
        "name": "A", "source": "dr-credential", "drCredentialId": "Db_Creds", "key": "k"}),
     "environmentVars[0].drCredentialId"),
    ("display-name-length", {"displayName": "x" * 5001}, "spec.displayName"),
    ("repository-pattern", {"repository": "-web"}, "spec.repository"),
    ("repository-length", {"repository": "r" * 64}, "spec.repository"),
    ("replicas-negative", {**_valid(), "runtime": {"api": {"replicas": -1}}},
     "spec.runtime.api.replicas"),
    ("generated-entrypoint-empty", _set(f"{C0}.imageBuildConfig", {"dockerfile": {
        "source": "generated", "executionEnvironmentId": "e",
        "executionEnvironmentVersionId": "v", "entrypoint": []}}),
     "imageBuildConfig.dockerfile.entrypoint"),
    ("dockerfile-source-enum", _set(f"{C0}.imageBuildConfig", {"dockerfile": {
        "source": "inline"}}), "imageBuildConfig.dockerfile.source"),
    # Which member a code reference needs depends on its provider: a CEL rule (1.25+) and the
    # webhook, like the dockerfile kinds. The schema itself still bounds each member.
    ("code-ref-provider-enum", _set(f"{C0}.imageBuildConfig", {"codeRef": {
        "provider": "svn"}}), "imageBuildConfig.codeRef.provider"),
    ("git-code-ref-url-required", _set(f"{C0}.imageBuildConfig", {"codeRef": {
        "provider": "git", "git": {"revision": "main"}}}), "imageBuildConfig.codeRef.git.url"),
    ("oci-code-ref-by-digest", _set(f"{C0}.imageBuildConfig", {"codeRef": {
        "provider": "oci", "oci": {"image": "reg/src:latest"}}}),
     "imageBuildConfig.codeRef.oci.image"),
    # List-map keys: refused by every API server, CEL or not.
    ("duplicate-group-name", {"containerGroups": _valid()["containerGroups"] * 2},
     "spec.containerGroups[1]"),
    ("duplicate-env-name", _set(f"{C0}.environmentVars", [
        {"name": "A", "value": "1"}, {"name": "A", "value": "2"}]), "environmentVars[1]"),
    ("too-many-groups", {"containerGroups": [
        {**_valid()["containerGroups"][0], "name": f"g{i}"} for i in range(65)]},
     "spec.containerGroups"),
]


@pytest.mark.parametrize(("spec", "field"), [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_api_server_rejects_schema_violation_naming_the_field(
        cluster: Cluster, namespace: str, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(client.ApiException) as err:
        create_artifact(cluster, namespace, {"metadata": {"name": "bad"},
                                             "spec": copy.deepcopy(spec)})
    assert err.value.status == 422, err.value.body
    body = json.loads(err.value.body)
    fields = [c.get("field", "") for c in body["details"]["causes"]]
    # A 1.20 server names list items without their index (spec.containerGroups.name); newer
    # ones include it. `artifact-operator validate` always gives the index.
    field = re.sub(r"\[\d+\]", "", field) if all("[" not in f for f in fields) else field
    assert len(fields) == 1 and fields[0].endswith(field), body["message"]
    assert field in body["message"]
    with pytest.raises(client.ApiException) as gone:
        get_artifact(cluster, namespace, "bad")
    assert gone.value.status == 404


def test_the_valid_base_spec_is_accepted(cluster: Cluster, namespace: str) -> None:
    """The rejections above are each about their one field: the spec they vary is valid."""
    create_artifact(cluster, namespace, {"metadata": {"name": "good"}, "spec": _valid()})
    assert get_artifact(cluster, namespace, "good")["spec"]["containerGroups"][0]["name"] == "api"


def test_api_server_applies_the_seed_defaults(cluster: Cluster, namespace: str) -> None:
    create_artifact(cluster, namespace, {"metadata": {"name": "defaults"}, "spec": {
        "containerGroups": [{"containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
             "livenessProbe": {"path": "/healthz"},
             "environmentVars": [{"name": "A", "value": "1"}],
             "imageBuildConfig": {"codeRef": {"datarobot": {"catalogId": "c",
                                                            "catalogVersionId": "v"}},
                                  "dockerfile": {"path": "./Dockerfile"}}},
            {"name": "side", "imageUri": "busybox"}]}]}})
    spec = get_artifact(cluster, namespace, "defaults")["spec"]
    assert (spec["type"], spec["lifecycle"]) == ("service", "draft")
    group = spec["containerGroups"][0]
    assert group["name"] == "default"
    app, side = group["containers"]
    assert app["livenessProbe"] == {"path": "/healthz", "scheme": "HTTP",
                                    "initialDelaySeconds": 30, "periodSeconds": 30,
                                    "timeoutSeconds": 30, "failureThreshold": 3}
    assert app["environmentVars"] == [{"name": "A", "value": "1", "source": "string"}]
    # `type` is the datarobot member's alone now: the model supplies its default, not the
    # server (which would put it on git and oci references too).
    assert app["imageBuildConfig"]["codeRef"] | {} == {
        "datarobot": {"catalogId": "c", "catalogVersionId": "v"}, "provider": "datarobot"}
    assert app["imageBuildConfig"]["dockerfile"]["source"] == "provided"
    assert (side["primary"], side["environmentVars"]) == (False, [])

    create_artifact(cluster, namespace, {"metadata": {"name": "empty"}})
    assert get_artifact(cluster, namespace, "empty")["spec"] == {
        "type": "service", "lifecycle": "draft", "containerGroups": []}

    create_artifact(cluster, namespace, {"metadata": {"name": "nim"}, "spec": {
        "type": "nim", "storage": {}}})
    assert get_artifact(cluster, namespace, "nim")["spec"]["storage"] == {"mode": "dedicatedPvc"}


def test_api_server_prunes_unknown_fields(cluster: Cluster, namespace: str) -> None:
    create_artifact(cluster, namespace, {"metadata": {"name": "pruned"}, "spec": {
        "replicas": 3,
        "containerGroups": [{"name": "api", "image": "x", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080,
             "command": ["sh"], "securityContext": {"privileged": True}}]}]}})
    spec = get_artifact(cluster, namespace, "pruned")["spec"]
    assert "replicas" not in spec
    group = spec["containerGroups"][0]
    assert "image" not in group
    assert "command" not in group["containers"][0]
    assert group["containers"][0]["securityContext"] == {}
