"""Artifacts that break one rule each, shared by the CLI, model and CEL tests.

Every cross-field rule of `rules.check_spec`, and the per-kind rules of the env var and
dockerfile unions (which the CRD can only express in CEL), has a case here: the document,
and the field path and message `artifact-operator validate` must report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..support.builders import container, primary


def artifact(spec: dict[str, Any], name: str = "case") -> dict[str, Any]:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name}, "spec": copy.deepcopy(spec)}


def groups(*containers: dict[str, Any], name: str = "api") -> list[dict[str, Any]]:
    return [{"name": name, "containers": list(containers)}]


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    path: str
    message: str  # a fragment of the plain message


G0 = "spec.containerGroups[0]"
C0 = f"{G0}.containers[0]"
C1 = f"{G0}.containers[1]"

# One rule each; every other part of the spec is valid.
CROSS_FIELD: tuple[Case, ...] = (
    Case("primary-without-port", {"containerGroups": groups(container(primary=True))},
         f"{C0}.port", "a primary container must set port"),
    Case("non-primary-with-port", {"containerGroups": groups(
        primary(), container(name="side", port=9000))},
         f"{C1}.port", "a non-primary container must not set port"),
    Case("two-primaries", {"containerGroups": groups(primary(), primary(name="other"))},
         f"{C1}.primary", "at most one primary container"),
    Case("duplicate-group-names", {"containerGroups": [
        {"name": "api", "containers": [primary()]}, {"name": "api", "containers": []}]},
         "spec.containerGroups[1].name", "duplicate container group name 'api'"),
    Case("duplicate-default-group-names", {"containerGroups": [{}, {}]},
         "spec.containerGroups[1].name", "duplicate container group name 'default'"),
    Case("duplicate-container-names", {"containerGroups": groups(primary(), container())},
         f"{C1}.name", "duplicate container name 'app'"),
    Case("duplicate-env-names", {"containerGroups": groups(primary(environmentVars=[
        {"name": "A", "value": "1"}, {"name": "A", "source": "dr-api-token"}]))},
         f"{C0}.environmentVars[1].name", "duplicate environment variable name 'A'"),
    Case("storage-without-nim", {"storage": {"mode": "nimCache"},
                                 "containerGroups": groups(primary())},
         "spec.storage", "storage is only allowed with type nim"),
    Case("template-without-nim", {"templateId": "t-1", "containerGroups": groups(primary())},
         "spec.templateId", "templateId is only allowed with type nim"),
    Case("runtime-key-unknown", {"containerGroups": groups(primary()),
                                 "runtime": {"apx": {"replicas": 2}}},
         "spec.runtime.apx", "does not name a container group"),
    Case("autoscaling-with-replicas", {"containerGroups": groups(primary()), "runtime": {
        "api": {"replicas": 2, "autoscaling": {"maxReplicas": 4}}}},
         "spec.runtime.api.autoscaling", "autoscaling and replicas are exclusive"),
    Case("autoscaling-min-above-max", {"containerGroups": groups(primary()), "runtime": {
        "api": {"autoscaling": {"minReplicas": 5, "maxReplicas": 4}}}},
         "spec.runtime.api.autoscaling.maxReplicas", "maxReplicas must be at least minReplicas"),
    Case("nim-group-without-primary", {"type": "nim", "containerGroups": groups(container())},
         f"{G0}.containers", "needs a primary container"),
    Case("nim-primary-without-image", {"type": "nim", "containerGroups": groups(
        {"name": "nim", "primary": True, "port": 8000,
         "imageBuildConfig": {"codeRef": {"datarobot": {"catalogId": "c",
                                                        "catalogVersionId": "v"}}}})},
         f"{C0}.imageUri", "imageUri is required"),
    Case("pvc-size-with-nim-cache", {"type": "nim", "containerGroups": groups(primary()),
                                     "storage": {"mode": "nimCache", "pvcSize": "10Gi"}},
         "spec.storage.pvcSize", "pvcSize is only allowed with mode dedicatedPvc"),
    Case("no-image-no-build", {"containerGroups": groups({"name": "app", "primary": True,
                                                          "port": 8080})},
         f"{C0}.imageUri", "imageUri is required unless imageBuildConfig is set"),
    Case("localhost-seccomp-without-profile", {"containerGroups": groups(primary(
        securityContext={"seccompProfile": {"type": "Localhost"}}))},
         f"{C0}.securityContext.seccompProfile.localhostProfile",
         "localhostProfile is required with type Localhost"),
    Case("profile-without-localhost", {"containerGroups": groups(primary(
        securityContext={"seccompProfile": {"type": "RuntimeDefault",
                                            "localhostProfile": "p.json"}}))},
         f"{C0}.securityContext.seccompProfile.localhostProfile",
         "localhostProfile is only allowed with type Localhost"),
    # The per-kind rules of the unions: schema rules for the models, CEL rules in the CRD.
    Case("string-env-without-value", {"containerGroups": groups(primary(
        environmentVars=[{"name": "A"}]))},
         f"{C0}.environmentVars[0].value", "field required"),
    Case("credential-env-without-key", {"containerGroups": groups(primary(
        environmentVars=[{"name": "A", "source": "dr-credential", "drCredentialId": "s"}]))},
         f"{C0}.environmentVars[0].key", "field required"),
    Case("credential-env-with-value", {"containerGroups": groups(primary(
        environmentVars=[{"name": "A", "source": "dr-credential", "drCredentialId": "s",
                          "key": "k", "value": "v"}]))},
         f"{C0}.environmentVars[0].value", "unknown field"),
    Case("token-env-with-credential", {"containerGroups": groups(primary(
        environmentVars=[{"name": "A", "source": "dr-api-token", "drCredentialId": "s"}]))},
         f"{C0}.environmentVars[0].drCredentialId", "unknown field"),
    Case("generated-dockerfile-incomplete", {"containerGroups": groups(primary(
        imageBuildConfig={"dockerfile": {"source": "generated", "entrypoint": ["python"],
                                         "executionEnvironmentVersionId": "v"}}))},
         f"{C0}.imageBuildConfig.dockerfile.executionEnvironmentId", "field required"),
    Case("generated-dockerfile-with-path", {"containerGroups": groups(primary(
        imageBuildConfig={"dockerfile": {"source": "generated", "path": "./Dockerfile",
                                         "executionEnvironmentId": "e",
                                         "executionEnvironmentVersionId": "v",
                                         "entrypoint": ["python"]}}))},
         f"{C0}.imageBuildConfig.dockerfile.path", "unknown field"),
    Case("provided-dockerfile-with-entrypoint", {"containerGroups": groups(primary(
        imageBuildConfig={"dockerfile": {"source": "provided", "entrypoint": ["python"]}}))},
         f"{C0}.imageBuildConfig.dockerfile.entrypoint", "unknown field"),
    Case("git-code-ref-without-git", {"containerGroups": groups(primary(
        imageBuildConfig={"codeRef": {"provider": "git"}}))},
         f"{C0}.imageBuildConfig.codeRef.git", "field required"),
    Case("git-code-ref-with-datarobot", {"containerGroups": groups(primary(
        imageBuildConfig={"codeRef": {"provider": "git", "git": {"url": "https://g/r.git"},
                                      "datarobot": {"catalogId": "c",
                                                    "catalogVersionId": "v"}}}))},
         f"{C0}.imageBuildConfig.codeRef.datarobot", "unknown field"),
    Case("oci-code-ref-without-oci", {"containerGroups": groups(primary(
        imageBuildConfig={"codeRef": {"provider": "oci"}}))},
         f"{C0}.imageBuildConfig.codeRef.oci", "field required"),
    Case("git-code-ref-with-type", {"containerGroups": groups(primary(
        imageBuildConfig={"codeRef": {"provider": "git", "type": "datarobot",
                                      "git": {"url": "https://g/r.git"}}}))},
         f"{C0}.imageBuildConfig.codeRef.type", "unknown field"),
    Case("elevated-with-a-tag", {"containerGroups": groups(primary(
        imageUri="nginx:1.27", securityContext={"capabilities": {"add": ["NET_ADMIN"]}}))},
         f"{C0}.imageUri", "must pin its image by digest"),
    # runtime.<group>.expose and .metrics (api/exposure.py).
    *(Case(f"{field}-without-service", {"containerGroups": groups(container()),
                                         "runtime": {"api": {field: value}}},
           f"spec.runtime.api.{field}", f"{field} needs a primary container with a port")
      for field, value in (("expose", {"ingress": {"host": "a.example.com"}}),
                           ("metrics", {"path": "/metrics"}))),
    Case("expose-both-kinds", {"containerGroups": groups(primary()), "runtime": {"api": {
        "expose": {"ingress": {}, "httpRoute": {"parentRefs": [{"name": "gw"}]}}}}},
         "spec.runtime.api.expose", "exactly one of ingress and httpRoute"),
    Case("expose-neither-kind", {"containerGroups": groups(primary()),
                                 "runtime": {"api": {"expose": {}}}},
         "spec.runtime.api.expose", "exactly one of ingress and httpRoute"),
    Case("ingress-tls-without-host", {"containerGroups": groups(primary()), "runtime": {
        "api": {"expose": {"ingress": {"tlsSecret": "web-tls"}}}}},
         "spec.runtime.api.expose.ingress.tlsSecret", "tlsSecret needs host"),
    # A structural schema cannot bound map keys: the header name bound is a CEL rule too.
    *(Case(f"{probe[:-5].lower()}-header-name-too-long", {"containerGroups": groups(primary(
        **{probe: {"path": "/", "httpHeaders": {"x" * 257: "v"}}}))},
        f"{C0}.{probe}.httpHeaders.{'x' * 257}.[key]", "at most 256 characters")
      for probe in ("livenessProbe", "readinessProbe", "startupProbe")),
)

# Valid specs that exercise the same rules from the allowed side.
VALID: dict[str, dict[str, Any]] = {
    "minimal": {},
    "group-without-primary": {"containerGroups": groups(container())},
    "service-with-sidecar": {"containerGroups": groups(
        primary(environmentVars=[{"name": "A", "value": "1"},
                                 {"name": "B", "source": "dr-api-token"},
                                 {"name": "C", "source": "dr-credential",
                                  "drCredentialId": "db.creds", "key": "pass"}],
                securityContext={"seccompProfile": {"type": "Localhost",
                                                    "localhostProfile": "p.json"}}),
        container(name="side"))},
    "build-instead-of-image": {"containerGroups": groups(
        {"name": "app", "primary": True, "port": 8080, "imageBuildConfig": {
            "dockerfile": {"source": "generated", "executionEnvironmentId": "e",
                           "executionEnvironmentVersionId": "v", "entrypoint": ["python"]}}},
        {"name": "side", "imageBuildConfig": {"dockerfile": {"path": "x/Dockerfile"}}})},
    "build-from-git-and-oci": {"containerGroups": groups(
        {"name": "app", "primary": True, "port": 8080, "imageBuildConfig": {
            "codeRef": {"provider": "git", "git": {"url": "https://g/r.git", "revision": "main",
                                                   "contextDir": "app"}}}},
        {"name": "side", "imageBuildConfig": {"codeRef": {
            "provider": "oci", "oci": {"image": "reg/src@sha256:" + "a" * 64}}}})},
    "nim-dedicated": {"type": "nim", "templateId": "t", "containerGroups": groups(primary()),
                      "storage": {"pvcSize": "150Gi"}, "runtime": {"api": {"replicas": 1}}},
    "nim-cache": {"type": "nim", "containerGroups": groups(primary()),
                  "storage": {"mode": "nimCache"}},
    "exposed-and-monitored": {"containerGroups": groups(primary()), "runtime": {"api": {
        "expose": {"ingress": {"host": "web.example.com", "tlsSecret": "web-tls",
                               "annotations": {"cert-manager.io/cluster-issuer": "le"}}},
        "metrics": {"port": 9090, "labels": {"release": "prometheus"}}}}},
    "routed": {"containerGroups": groups(primary()), "runtime": {"api": {
        "expose": {"httpRoute": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                                 "hostnames": ["web.example.com"]}}}}},
    "elevated-pinned": {"containerGroups": groups(primary(
        imageUri="nginx@sha256:" + "0" * 64,
        securityContext={"allowPrivilegeEscalation": True,
                         "seccompProfile": {"type": "Unconfined"}}))},
}
