"""`kubectl artifact` without a cluster: `import` of workload API JSON (run as the installed
console script, as users run it), argument handling, kubeconfig namespaces and errors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifact_operator.api.validation import validate
from artifact_operator.cli import output, plugin, versions

PLUGIN = str(Path(sys.executable).parent / "kubectl-artifact")


def run(*args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PLUGIN, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env=env)


# A locked service artifact as `GET /artifacts/{id}` returns it (ArtifactFormatted): every
# optional field present, unset ones as null, plus the server's own fields.
SERVICE: dict[str, Any] = {
    "id": "65f2a1c9e4b0a17d3c9e8f21",
    "name": "Fraud Scoring API",
    "description": "Scores card transactions in real time",
    "type": "service",
    "status": "locked",
    "version": 3,
    "artifactRepositoryId": "65f2a1c9e4b0a17d3c9e8f00",
    "createdAt": "2026-03-01T10:00:00.000000Z",
    "updatedAt": "2026-03-02T11:30:00.000000Z",
    "creator": {"id": "5f1e0c2b", "username": "ana@example.com", "email": "ana@example.com",
                "fullName": None, "userhash": None},
    "permissions": {"canView": True, "canUpdate": True, "canDelete": False,
                    "canShare": False},
    "tags": [{"id": "6601", "name": "team", "value": "risk"}],
    "spec": {
        "type": "service",
        "containerGroups": [{
            "name": "scoring",
            "containers": [
                {
                    "name": "api", "description": "", "primary": True, "port": 8080,
                    "imageUri": "registry.example.com/fraud/api:3.1.0",
                    "imageBuildConfig": None, "entrypoint": None,
                    "environmentVars": [
                        {"source": "string", "name": "LOG_LEVEL", "value": "info"},
                        {"source": "dr-credential", "name": "DB_PASSWORD",
                         "drCredentialId": "fraud-db", "key": "password"},
                        {"source": "dr-api-token", "name": "DATAROBOT_API_TOKEN"},
                    ],
                    "livenessProbe": {"path": "/healthz", "port": None, "scheme": "HTTP",
                                      "host": None, "httpHeaders": {},
                                      "initialDelaySeconds": 30, "periodSeconds": 30,
                                      "timeoutSeconds": 30, "failureThreshold": 3},
                    "readinessProbe": None, "startupProbe": None,
                    "securityContext": {"allowPrivilegeEscalation": None,
                                        "capabilities": {"add": None, "drop": ["ALL"]},
                                        "readOnlyRootFilesystem": True,
                                        "seccompProfile": None},
                    "build": {"artifactImageBuildId": "66aa01", "status": "succeeded",
                              "createdAt": "2026-03-01T10:05:00.000000Z"},
                },
                {
                    "name": "metrics", "description": "Prometheus exporter",
                    "primary": False, "port": None,
                    "imageUri": "registry.example.com/fraud/exporter:1.2",
                    "imageBuildConfig": None, "entrypoint": ["/exporter", "--port=9100"],
                    "environmentVars": [], "livenessProbe": None, "readinessProbe": None,
                    "startupProbe": None, "securityContext": None, "build": None,
                },
            ],
        }],
    },
}

# A draft NIM artifact as a client sends it to `POST /artifacts` (InputArtifact): no server
# fields, the spec's own `type` discriminator, shared cache storage and a template.
NIM: dict[str, Any] = {
    "name": "Llama 3.1 8B Instruct",
    "description": "",
    "type": "nim",
    "status": "draft",
    "artifactRepositoryId": None,
    "spec": {
        "type": "nim",
        "templateId": "nim-llama-3.1-8b",
        "storage": {"mode": "nimCache", "pvcSize": None},
        "containerGroups": [{
            "name": "model",
            "containers": [{
                "name": "nim", "primary": True, "port": 8000,
                "imageUri": "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3",
                "environmentVars": [{"source": "dr-credential", "name": "NGC_API_KEY",
                                     "drCredentialId": "ngc", "key": "api-key"}],
                "readinessProbe": {"path": "/v1/health/ready", "initialDelaySeconds": 60},
            }],
        }],
    },
}


def write(tmp_path: Path, doc: Any, name: str = "artifact.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    return str(path)


def imported(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert isinstance(doc, dict)
    return doc


# -- import ----------------------------------------------------------------------------

def test_import_maps_a_locked_service_artifact_field_by_field(tmp_path: Path) -> None:
    result = run("import", write(tmp_path, SERVICE))
    manifest = imported(result)
    assert manifest == {
        "apiVersion": "workload.dev/v1alpha1",
        "kind": "Artifact",
        "metadata": {"name": "fraud-scoring-api-v3",
                     "annotations": {"workload.dev/imported-id": "65f2a1c9e4b0a17d3c9e8f21"}},
        "spec": {
            "displayName": "Fraud Scoring API",
            "description": "Scores card transactions in real time",
            "type": "service",
            "lifecycle": "locked",
            "repository": "65f2a1c9e4b0a17d3c9e8f00",
            "containerGroups": [{"name": "scoring", "containers": [
                {"name": "api", "description": "", "primary": True, "port": 8080,
                 "imageUri": "registry.example.com/fraud/api:3.1.0",
                 "environmentVars": [
                     {"source": "string", "name": "LOG_LEVEL", "value": "info"},
                     {"source": "dr-credential", "name": "DB_PASSWORD",
                      "drCredentialId": "fraud-db", "key": "password"},
                     {"source": "dr-api-token", "name": "DATAROBOT_API_TOKEN"}],
                 "livenessProbe": {"path": "/healthz", "scheme": "HTTP", "httpHeaders": {},
                                   "initialDelaySeconds": 30, "periodSeconds": 30,
                                   "timeoutSeconds": 30, "failureThreshold": 3},
                 "securityContext": {"capabilities": {"drop": ["ALL"]},
                                     "readOnlyRootFilesystem": True}},
                {"name": "metrics", "description": "Prometheus exporter", "primary": False,
                 "imageUri": "registry.example.com/fraud/exporter:1.2",
                 "entrypoint": ["/exporter", "--port=9100"], "environmentVars": []},
            ]}],
        },
    }
    assert validate(manifest) == []
    # What was not carried over is said, on stderr, so stdout pipes into kubectl apply.
    notes = result.stderr.splitlines()
    assert "note: dropped fields set by the workload API's server: createdAt, updatedAt, " \
        "creator, permissions, tags" in notes
    assert "note: version 3 is not carried over: the operator numbers locked artifacts " \
        "itself (status.version)" in notes
    assert "note: dropped the image build record of 1 container(s) (build)" in notes


def test_import_maps_a_nim_input_artifact(tmp_path: Path) -> None:
    manifest = imported(run("import", write(tmp_path, NIM)))
    assert manifest["metadata"] == {"name": "llama-3-1-8b-instruct"}
    spec = manifest["spec"]
    # The spec's `type` discriminator is the top-level type; "" and null are left unset.
    assert {k: spec[k] for k in ("type", "lifecycle", "templateId", "storage")} == {
        "type": "nim", "lifecycle": "draft", "templateId": "nim-llama-3.1-8b",
        "storage": {"mode": "nimCache"}}
    assert "description" not in spec and "repository" not in spec
    assert spec["displayName"] == "Llama 3.1 8B Instruct"
    assert validate(manifest) == []


def test_import_reads_stdin_and_takes_name_and_namespace(tmp_path: Path) -> None:
    manifest = imported(run("import", "-", "--name", "fraud", "-n", "risk",
                            stdin=json.dumps(SERVICE)))
    assert manifest["metadata"]["name"] == "fraud"
    assert manifest["metadata"]["namespace"] == "risk"


@pytest.mark.parametrize(("name", "expected"), [
    ("Größe Modèle résumé", "grosse-modele-resume"),
    ("3D Segmentation", "artifact-3d-segmentation"),
    ("  --Web__API--  ", "web-api"),
])
def test_import_makes_a_dns_label_of_the_display_name(tmp_path: Path, name: str,
                                                      expected: str) -> None:
    doc = {**NIM, "name": name}
    manifest = imported(run("import", write(tmp_path, doc)))
    assert manifest["metadata"]["name"] == expected
    assert manifest["spec"]["displayName"] == name


def test_import_keeps_long_names_distinct_and_valid(tmp_path: Path) -> None:
    long_a = "Customer churn prediction service for the retail banking division, EMEA"
    long_b = "Customer churn prediction service for the retail banking division, APAC"
    a = imported(run("import", write(tmp_path, {**NIM, "name": long_a}, "a.json")))
    b = imported(run("import", write(tmp_path, {**NIM, "name": long_b}, "b.json")))
    names = [a["metadata"]["name"], b["metadata"]["name"]]
    assert names[0] != names[1]
    assert all(len(n) <= 63 for n in names)
    assert validate(a) == [] and validate(b) == []


def test_import_falls_back_to_the_id_and_says_when_there_is_no_name(tmp_path: Path) -> None:
    # Other scripts are transliterated; only a name with nothing to keep falls back.
    assert imported(run("import", write(tmp_path, {**NIM, "name": "数据"})))["metadata"][
        "name"] == "shu-ju"
    doc = {**SERVICE, "name": "🚀 ✨"}
    doc.pop("version")
    assert imported(run("import", write(tmp_path, doc)))["metadata"]["name"] == \
        "artifact-65f2a1c9e4b0a17d3c9e8f21"
    no_id = {**NIM, "name": "!!!"}
    result = run("import", write(tmp_path, no_id))
    assert result.returncode == 1
    assert "give one with --name" in result.stderr
    assert result.stdout == ""


def test_import_makes_the_repository_a_label_value(tmp_path: Path) -> None:
    doc = {**NIM, "artifactRepositoryId": "risk team/fraud scoring (prod)"}
    result = run("import", write(tmp_path, doc))
    assert imported(result)["spec"]["repository"] == "risk-team-fraud-scoring-prod"
    assert "became repository 'risk-team-fraud-scoring-prod'" in result.stderr


def test_import_prints_every_violation_and_exits_1(tmp_path: Path) -> None:
    doc = copy.deepcopy(SERVICE)
    doc["status"] = "archived"
    doc["spec"]["storage"] = {"mode": "dedicatedPvc", "pvcSize": "150GB"}
    api, metrics = doc["spec"]["containerGroups"][0]["containers"]
    api["port"] = None
    api["environmentVars"][1]["drCredentialId"] = "Fraud_DB"
    metrics["port"] = 9100
    result = run("import", write(tmp_path, doc))
    assert result.returncode == 1
    assert result.stdout == ""
    c0, c1 = "spec.containerGroups[0].containers[0]", "spec.containerGroups[0].containers[1]"
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert lines == [
        f"{c0}.environmentVars[1].drCredentialId: must be a Secret name: lowercase letters, "
        "digits, '-' and '.', starting and ending with a letter or digit",
        f"{c0}.port: a primary container must set port",
        f"{c1}.port: a non-primary container must not set port",
        "spec.lifecycle: Input should be 'draft' or 'locked'",
        "spec.storage: storage is only allowed with type nim",
        "spec.storage.pvcSize: must be a size such as 150Gi: a number followed by Mi, Gi or Ti",
    ]
    assert "does not make a valid Artifact fraud-scoring-api-v3: 6 violation(s)" in result.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read"),
    (json.dumps([SERVICE]), "not a workload API artifact"),
    (json.dumps({"name": "x"}), "not a workload API artifact"),
])
def test_import_refuses_what_is_not_an_artifact(tmp_path: Path, content: str,
                                                message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("import", str(path))
    assert (result.returncode, result.stdout) == (1, "")
    assert message in result.stderr


def test_import_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "nope.json" in result.stderr


# -- arguments -------------------------------------------------------------------------

def parse(*argv: str) -> Any:
    return plugin.build_parser().parse_args(plugin.kubectl_booleans(argv))


def test_kubectl_flags_go_before_or_after_the_command() -> None:
    before = parse("--kubeconfig", "/k", "--context", "c", "-n", "team", "lock", "web")
    after = parse("lock", "web", "--kubeconfig", "/k", "--context", "c", "--namespace", "team")
    for args in (before, after):
        assert (args.kubeconfig, args.context, args.namespace, args.name) == \
            ("/k", "c", "team", "web")
    assert not hasattr(parse("lock", "web"), "namespace")


def test_lock_wait_and_timeout_flags() -> None:
    default = parse("lock", "web")
    assert (default.wait, default.timeout) == (True, 60.0)
    assert parse("lock", "web", "--wait=false").wait is False
    assert parse("lock", "--wait", "web").wait is True
    assert parse("lock", "web", "--no-wait").wait is False
    assert parse("lock", "web", "--timeout", "2m").timeout == 120.0
    assert parse("lock", "web", "--timeout=90").timeout == 90.0


def test_clone_and_versions_arguments() -> None:
    args = parse("clone", "web", "web-2", "--display-name", "Web (copy)", "--dry-run")
    assert (args.source, args.new, args.display_name, args.dry_run) == \
        ("web", "web-2", "Web (copy)", True)
    assert parse("versions", "shop", "-o", "yaml").output == "yaml"


@pytest.mark.parametrize("argv", [
    [], ["lock"], ["clone", "web"], ["lock", "web", "--timeout", "soon"],
    ["versions", "shop", "-o", "wide"], ["frobnicate"],
])
def test_usage_errors_exit_1_with_usage(argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 1
    assert result.stderr.startswith("usage: kubectl artifact")
    assert "error:" in result.stderr


def test_help_names_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("clone", "lock", "versions", "import"):
        assert command in result.stdout


def test_versions_refuses_a_repository_that_cannot_be_a_label(tmp_path: Path) -> None:
    result = run("versions", "shop/front end", "--kubeconfig", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "'shop/front end' is not a repository: it must be a label value" in result.stderr


# -- kubeconfig --------------------------------------------------------------------------

def kubeconfig(tmp_path: Path, server: str = "https://127.0.0.1:1") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u",
                                                  "namespace": "team-dev"}},
                     {"name": "prod", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_the_namespace_comes_from_the_flag_else_the_context(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path))
    assert plugin.Cluster(path, None, None).namespace == "team-dev"
    assert plugin.Cluster(path, "prod", None).namespace == "default"
    assert plugin.Cluster(path, "dev", "mine").namespace == "mine"


def test_a_missing_kubeconfig_or_context_is_a_clear_error(tmp_path: Path) -> None:
    result = run("lock", "web", "--kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot load kubeconfig")
    result = run("lock", "web", "--kubeconfig", str(kubeconfig(tmp_path)), "--context", "qa")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot load kubeconfig")
    assert "qa" in result.stderr


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    result = run("versions", "shop", "--kubeconfig", str(kubeconfig(tmp_path)))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the API server")
    assert "Traceback" not in result.stderr


# -- output helpers ----------------------------------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("created", "expected"), [
    ("2026-03-10T11:59:18Z", "42s"),
    ("2026-03-10T11:55:00Z", "5m"),
    ("2026-03-10T11:54:50Z", "5m10s"),
    ("2026-03-10T10:00:00Z", "120m"),
    ("2026-03-10T08:40:00Z", "3h20m"),
    ("2026-03-09T12:00:00Z", "24h"),
    ("2026-03-06T07:00:00Z", "4d5h"),
    ("2025-03-10T12:00:00Z", "365d"),
    (None, "<unknown>"),
])
def test_age_reads_like_kubectl(created: str | None, expected: str) -> None:
    assert output.age(created, NOW) == expected


def artifact(name: str, version: int | None, created: str, phase: str | None = "Ready",
             lifecycle: str = "locked") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if version is not None:
        status["version"] = version
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"lifecycle": lifecycle}, "status": status}


def test_versions_table_is_sorted_by_version_with_drafts_last() -> None:
    items = [
        artifact("shop-draft", None, "2026-03-10T11:59:00Z", None, "draft"),
        artifact("shop-v10", 10, "2026-03-10T11:00:00Z"),
        artifact("shop-v2", 2, "2026-03-09T12:00:00Z", "Degraded"),
        artifact("shop-old-draft", None, "2026-03-01T00:00:00Z", "Pending", "draft"),
    ]
    assert versions.table(versions.by_version(items), NOW) == (
        "NAME             VERSION   LIFECYCLE   PHASE      AGE\n"
        "shop-v2          2         locked      Degraded   24h\n"
        "shop-v10         10        locked      Ready      60m\n"
        "shop-old-draft   <none>    draft       Pending    9d\n"
        "shop-draft       <none>    draft       <none>     60s\n"
    )


def test_clone_manifest_is_a_draft_with_the_source_spec() -> None:
    source = {
        "metadata": {"name": "web", "namespace": "a", "uid": "u1", "resourceVersion": "7",
                     "labels": {"workload.dev/repository": "shop", "team": "x"},
                     "annotations": {"workload.dev/elevated-approval": "hmac-sha256:00"}},
        "spec": {"displayName": "Web", "lifecycle": "locked", "repository": "shop",
                 "containerGroups": [{"name": "api", "containers": []}]},
        "status": {"version": 4, "phase": "Ready"},
    }
    clone = plugin.clone_manifest(source, "web-next", None)
    assert clone == {
        "apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
        "metadata": {"name": "web-next", "labels": {"workload.dev/repository": "shop"}},
        "spec": {"lifecycle": "draft", "repository": "shop",
                 "containerGroups": [{"name": "api", "containers": []}]},
    }
    assert plugin.clone_manifest(source, "web-next", "Web, next")["spec"]["displayName"] == \
        "Web, next"
    assert source["spec"]["lifecycle"] == "locked"  # the source is left as it was
