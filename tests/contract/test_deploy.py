"""The install artefacts: kustomize tree, Helm chart, Dockerfile, and README's settings table.

kustomize renders with the real kubectl (kustomize is built in), the chart with Helm's own
engine (helm-python-sdk), and every rendered object is checked against the Kubernetes OpenAPI
schemas of the oldest and newest versions kubernetes-validate ships.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import _native

from artifact_operator.api.crd import CRD_FILE
from artifact_operator.app.settings_doc import reference_table
from artifact_operator.settings import Settings

from ..support.k8s_schemas import validate_all

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "artifact-operator"
# Kinds kubernetes-validate has no schema for (CRD-defined), checked by their own tests or
# not at all: the Prometheus Operator's ServiceMonitor and cert-manager's Issuer/Certificate.
UNKNOWN_KINDS = {"ServiceMonitor", "Issuer", "Certificate"}

NAMESPACED = {"watchNamespaces": ["team-a", "team-b"]}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": NAMESPACED,
    "webhook-self-signed": {"webhook": {"enabled": True}, **NAMESPACED},
    "webhook-cert-manager": {"webhook": {"enabled": True, "certManager": {"enabled": True}}},
    "monitoring-json-one-replica": {"metrics": {"serviceMonitor": {"enabled": True}},
                                    "logFormat": "json", "replicaCount": 1,
                                    "leaderElection": {"enabled": False}},
}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kubectl (with its built-in kustomize) is required under CI=true")
        pytest.skip("kubectl is not installed")
    return found


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl(), "kustomize", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def helm_render(values: dict[str, Any], namespace: str = "ops", *, kube_version: str | None = None,
                api_versions: list[str] | None = None) -> list[dict[str, Any]]:
    """The chart rendered by Helm's engine. With `kube_version`/`api_versions` (a server's
    version and discovery, as `helm install` has them) the templates see that server's
    `.Capabilities`; without, Helm's defaults, as `helm template` does."""
    opts: dict[str, Any] = {"name": "artifact-operator", "namespace": namespace,
                            "is_install": True}
    if kube_version is not None:
        opts["kube_version"] = kube_version
    if api_versions is not None:
        opts["api_versions"] = api_versions
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        # Chart.render does not pass capabilities on; the engine under it takes them.
        files: dict[str, str] = json.loads(_native.call_string(
            "helm_render", chart._raw(), json.dumps(values), json.dumps(opts)))
        crds = [yaml.safe_load(c["data"]) for c in chart.crds]
    docs = [doc for name, text in files.items() if not name.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]
    return crds + docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def manager_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(docs, "Deployment")
    return deployment


def container_args(docs: list[dict[str, Any]]) -> list[str]:
    args: list[str] = manager_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


# -- kustomize ----------------------------------------------------------------------------


def test_kustomize_default_renders_everything_and_validates() -> None:
    docs = kustomize(DEPLOY / "default")
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Service", "Deployment",
            "PodDisruptionBudget", "ValidatingWebhookConfiguration"} <= kinds
    # Not by default: without the cluster's API server CIDRs it would admit nobody.
    assert "NetworkPolicy" not in kinds
    # Nothing mutates Artifacts any more (approvals are ArtifactApprovals).
    assert "MutatingWebhookConfiguration" not in kinds
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"} \
        == {"artifacts.workload.dev", "artifactapprovals.workload.dev"}
    for doc in docs:
        if doc["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole",
                               "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert doc["metadata"]["namespace"] == "artifact-operator-system", doc["kind"]
    validate_all(docs, skip_kinds=UNKNOWN_KINDS)
    validate_all(kustomize(DEPLOY / "prometheus"), skip_kinds=UNKNOWN_KINDS)


def test_shipped_deployment_is_ha_non_root_and_probed() -> None:
    for docs in (kustomize(DEPLOY / "default"), helm_render({})):
        deployment = manager_deployment(docs)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert deployment["spec"]["replicas"] == 2
        assert "--leader-election" in container["args"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"] for e in container["env"]}
        assert {"POD_NAME", "POD_NAMESPACE"} <= env, "the Lease identity and namespace"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == 8080 and ports["health"] == 8081
        assert container["envFrom"][0]["configMapRef"]["name"] in {
            d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")}
        assert by_kind(docs, "PodDisruptionBudget")


def _pdb_api_versions(docs: list[dict[str, Any]]) -> list[str]:
    return [d["apiVersion"] for d in by_kind(docs, "PodDisruptionBudget")]


def test_the_disruption_budget_is_at_the_api_version_the_server_serves() -> None:
    # policy/v1 from 1.21 (v1beta1 gone from 1.25); 1.20 serves only policy/v1beta1.
    default, old = kustomize(DEPLOY / "default"), kustomize(DEPLOY / "k8s-1.20")
    assert _pdb_api_versions(default) == ["policy/v1"]
    assert _pdb_api_versions(old) == ["policy/v1beta1"]

    def without_pdb(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [d for d in docs if d["kind"] != "PodDisruptionBudget"]

    assert without_pdb(old) == without_pdb(default), "the 1.20 tree differs in more than that"
    pdb = {k: v for k, v in by_kind(old, "PodDisruptionBudget")[0].items() if k != "apiVersion"}
    assert pdb == {k: v for k, v in by_kind(default, "PodDisruptionBudget")[0].items()
                   if k != "apiVersion"}

    assert _pdb_api_versions(helm_render({})) == ["policy/v1"]  # `helm template`'s defaults
    assert _pdb_api_versions(helm_render({}, kube_version="v1.20.2")) == ["policy/v1beta1"]
    assert _pdb_api_versions(helm_render({}, kube_version="v1.29.0")) == ["policy/v1"]


def test_crd_copies_match_crds() -> None:
    generated = (REPO / "crds" / CRD_FILE).read_text()
    assert (DEPLOY / "crd" / "bases" / CRD_FILE).read_text() == generated, \
        "deploy/crd/bases is stale: run `make crd`"
    assert (CHART / "crds" / CRD_FILE).read_text() == generated, \
        "the Helm chart's crds/ is stale: run `make crd`"


# -- RBAC -----------------------------------------------------------------------------------


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_rbac_is_least_privilege_and_the_same_in_kustomize_and_helm() -> None:
    docs = kustomize(DEPLOY / "rbac")
    manager = next(d for d in by_kind(docs, "ClusterRole")
                   if d["metadata"]["name"] == "artifact-operator-manager")
    rules = _rules(manager)
    assert not any("*" in part for rule in rules for part in rule)
    # Nothing the operator never does: no update of children, no Secret patches, no nodes,
    # no namespaces, no CRDs, no Artifact create/delete.
    for forbidden in [("apps", "deployments", "update"), ("", "secrets", "patch"),
                      ("", "secrets", "update"), ("", "nodes", "list"),
                      ("", "namespaces", "list"), ("workload.dev", "artifacts", "delete"),
                      ("workload.dev", "artifacts", "create"),
                      ("apiextensions.k8s.io", "customresourcedefinitions", "list")]:
        assert forbidden not in rules, forbidden
    (lease_role,) = by_kind(docs, "Role")
    assert _rules(lease_role) == {("coordination.k8s.io", "leases", v)
                                  for v in ("get", "create", "update", "watch")}
    helm_docs = helm_render({"webhook": {"enabled": True}})
    helm_rules = set().union(*(_rules(r) for r in by_kind(helm_docs, "ClusterRole")
                               if r["metadata"]["name"].startswith("artifact-operator-")))
    assert helm_rules == rules
    user_roles = {d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")}
    assert {"artifact-admin", "artifact-editor", "artifact-viewer"} <= user_roles
    assert ("workload.dev", "artifacts", "elevate") in _rules(
        next(d for d in by_kind(docs, "ClusterRole") if d["metadata"]["name"] == "artifact-admin"))


def test_namespaced_install_has_no_cluster_wide_rights_to_workloads() -> None:
    docs = helm_render({**NAMESPACED, "webhook": {"enabled": False}})
    assert container_args(docs)[:3] == ["run", "--namespace=team-a", "--namespace=team-b"]
    roles = by_kind(docs, "Role")
    assert {r["metadata"]["namespace"] for r in roles
            if r["metadata"]["name"].endswith("-manager")} == {"team-a", "team-b"}
    bindings = by_kind(docs, "RoleBinding")
    assert {(b["metadata"]["namespace"], b["subjects"][0]["namespace"]) for b in bindings
            if b["metadata"]["name"].endswith("-manager")} == {("team-a", "ops"),
                                                               ("team-b", "ops")}
    operator_cluster_roles = [r for r in by_kind(docs, "ClusterRole")
                              if not r["metadata"]["name"].startswith("artifact-")
                              or r["metadata"]["name"].startswith("artifact-operator")]
    assert operator_cluster_roles == []
    # With the webhook, the one cluster-wide right is SubjectAccessReview creation.
    docs = helm_render({**NAMESPACED, "webhook": {"enabled": True}})
    cluster = [r for r in by_kind(docs, "ClusterRole")
               if r["metadata"]["name"].startswith("artifact-operator")]
    assert [_rules(r) for r in cluster] == [
        {("authorization.k8s.io", "subjectaccessreviews", "create"), ("", "namespaces", "get")}]


# -- Helm -----------------------------------------------------------------------------------


def test_helm_lint_passes() -> None:
    for values in VALUE_SETS.values():
        report = helm.lint(CHART, values, strict=True, namespace="ops")
        assert report["errors"] == []
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert problems == []


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_helm_chart_renders_and_validates(case: str) -> None:
    docs = helm_render(VALUE_SETS[case])
    assert by_kind(docs, "CustomResourceDefinition")
    assert manager_deployment(docs)
    validate_all(docs, skip_kinds=UNKNOWN_KINDS)


def test_helm_webhook_modes() -> None:
    self_signed = helm_render({"webhook": {"enabled": True}})
    (vwc,) = by_kind(self_signed, "ValidatingWebhookConfiguration")
    ca = vwc["webhooks"][0]["clientConfig"]["caBundle"]
    (secret,) = [s for s in by_kind(self_signed, "Secret") if s["type"] == "kubernetes.io/tls"]
    assert secret["data"]["ca.crt"] == ca
    assert not by_kind(self_signed, "MutatingWebhookConfiguration")
    # No NetworkPolicy without the API servers' CIDRs: one admitting nobody would stop every
    # Artifact write.
    assert not by_kind(self_signed, "NetworkPolicy")
    mtls = helm_render({"webhook": {"enabled": True, "clientCA": "PEM",
                                    "networkPolicy": {"apiServerCIDRs": ["10.0.0.1/32"]}}})
    assert "--webhook-client-ca=/etc/artifact-operator/client-ca/ca.crt" in \
        container_args(mtls)
    (policy,) = by_kind(mtls, "NetworkPolicy")
    (webhook_rule,) = [r for r in policy["spec"]["ingress"]
                       if r["ports"] == [{"port": 9443, "protocol": "TCP"}]]
    assert webhook_rule["from"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    # No approval key on a fresh install: nothing signs any more (only an earlier version's
    # key is kept, for migration).
    assert not [s for s in by_kind(self_signed, "Secret") if s["type"] == "Opaque"]
    ports = manager_deployment(self_signed)["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "webhook-server", "containerPort": 9443, "protocol": "TCP"} in ports
    cert_manager = helm_render({"webhook": {"enabled": True, "certManager": {"enabled": True}}})
    (vwc,) = by_kind(cert_manager, "ValidatingWebhookConfiguration")
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert by_kind(cert_manager, "Certificate")
    assert not [s for s in by_kind(cert_manager, "Secret") if s["type"] == "kubernetes.io/tls"]
    off = helm_render({"webhook": {"enabled": False}})
    assert not by_kind(off, "ValidatingWebhookConfiguration")
    assert "--webhook-port=0" in container_args(off)


def test_helm_webhooks_select_the_watched_namespaces_where_the_server_can() -> None:
    def selectors(kube_version: str) -> list[Any]:
        docs = helm_render({**NAMESPACED, "webhook": {"enabled": True}},
                           kube_version=kube_version)
        return [hook.get("namespaceSelector") for kind in ("ValidatingWebhookConfiguration",
                                                           "MutatingWebhookConfiguration")
                for config in by_kind(docs, kind) for hook in config["webhooks"]]

    by_name = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                     "values": ["team-a", "team-b"]}]}
    assert selectors("v1.21.0") == [by_name]
    # 1.20 labels no namespace with its name: no selector; the operator judges only the
    # namespaces it watches (its --namespace flags, from the same watchNamespaces).
    assert selectors("v1.20.2") == [None]
    args = container_args(helm_render({**NAMESPACED, "webhook": {"enabled": True}},
                                      kube_version="v1.20.2"))
    assert [a for a in args if a.startswith("--namespace")] == \
        ["--namespace=team-a", "--namespace=team-b"]


def test_helm_values_schema_refuses_bad_values() -> None:
    with helm.Chart.load(CHART) as chart:
        for bad in ({"replicaCount": 0}, {"watchNamespaces": ["Not_A_Namespace"]},
                    {"settings": {"cacheRetention": "sometimes"}}, {"settings": {"typo": 1}},
                    {"logFormat": "xml"}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(bad)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def test_helm_settings_are_every_operator_setting_with_its_default() -> None:
    with helm.Chart.load(CHART) as chart:
        values = chart.values["settings"]
    expected = {}
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        expected[_camel(name)] = getattr(default, "value", default)
    assert values == expected
    (config,) = by_kind(helm_render({"settings": {"storageClass": "fast"}}), "ConfigMap")
    env = config["data"]
    assert env["ARTIFACT_OPERATOR_STORAGE_CLASS"] == "fast"
    assert "ARTIFACT_OPERATOR_SHM_SIZE" not in env  # null: left to the default
    # What the chart passes is what the operator reads back.
    os_env = {k: v for k, v in env.items()}
    parsed = Settings(**{k.removeprefix("ARTIFACT_OPERATOR_").lower(): _parse(v)
                         for k, v in os_env.items()})
    assert parsed.storage_class == "fast"
    assert parsed.cache_access_modes == ["ReadWriteMany"]


def test_helm_passes_a_map_setting_as_json() -> None:
    sources = {"c1/v1": {"provider": "git", "git": {"url": "https://git.example/a.git"}}}
    (config,) = by_kind(helm_render({"settings": {"buildCatalogSources": sources}}),
                        "ConfigMap")
    raw = config["data"]["ARTIFACT_OPERATOR_BUILD_CATALOG_SOURCES"]
    assert Settings(build_catalog_sources=_parse(raw)).build_catalog_sources == sources


def _parse(value: str) -> Any:
    return yaml.safe_load(value) if value.startswith(("[", "{")) else value


# -- image ----------------------------------------------------------------------------------


def _stages(dockerfile: str) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in re.sub(r"\\\n", " ", dockerfile).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root() -> None:
    stages = _stages((REPO / "Dockerfile").read_text())
    assert len(stages) >= 2
    assert all(s[0].split()[1] == "python:3.11-slim" for s in stages)
    final = stages[-1]
    text = "\n".join(final)
    assert "apt-get" not in text and "gcc" not in text and "build-essential" not in text
    assert "pip uninstall" in text, "pip itself is removed from the final image"
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] == "65532"
    assert 'ENTRYPOINT ["artifact-operator"]' in final
    assert 'CMD ["run", "--all-namespaces"]' in final
    assert any("python -m build --wheel" in line for line in stages[0])
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[1:2] == ["*"] or "*" in ignored


# -- README ---------------------------------------------------------------------------------


def _between(text: str, begin: str, end: str) -> Iterator[str]:
    start = text.index(begin) + len(begin)
    yield text[start:text.index(end, start)]


def test_readme_configuration_reference_matches_settings() -> None:
    readme = (REPO / "README.md").read_text()
    (table,) = _between(readme, "<!-- settings:begin -->\n", "<!-- settings:end -->")
    assert table == reference_table(), "README is stale: paste `make settings-doc`"


@pytest.mark.parametrize("watch", [[], ["team-a"]])
def test_a_build_namespace_gets_a_role_to_run_and_delete_builds(watch: list[str]) -> None:
    docs = helm_render({"watchNamespaces": watch, "settings": {"buildNamespace": "builds"}})
    roles = [d for d in by_kind(docs, "Role") if d["metadata"]["namespace"] == "builds"]
    (role,) = roles
    rules = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert rules == {("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
                     ("shipwright.io", "buildruns"): {"get", "list", "watch", "create",
                                                      "delete"},
                     ("", "pods"): {"get", "list"}}
    (binding,) = [d for d in by_kind(docs, "RoleBinding")
                  if d["metadata"]["namespace"] == "builds"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    validate_all(docs)
    # Without a build namespace, no such role; and nowhere may the operator delete Jobs.
    plain = helm_render({"watchNamespaces": watch})
    for doc in by_kind(plain, "Role") + by_kind(plain, "ClusterRole"):
        for rule in doc.get("rules") or []:
            assert not ("jobs" in rule["resources"] and "delete" in rule["verbs"]), doc
