"""The webhook's decisions, the old approval annotation (verified for migration) and the
shipped webhook/RBAC manifests.
No cluster: these are the pure parts; tests/integration/test_admission.py runs them for real."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifact_operator.api.elevated import elevated_groups, elevated_paths
from artifact_operator.api.validation import parse
from artifact_operator.app.context import load_legacy_approver
from artifact_operator.logic.admission import review
from artifact_operator.logic.approval import LEGACY_ANNOTATION, LegacyApprover
from artifact_operator.logic.repository import repository_label_patch
from artifact_operator.settings import DEFAULT_CERT_DIR, ApprovalSettings, WebhookSettings
from artifact_operator.webhook.server import VALIDATE_ID, enabled

from ..support.builders import service_artifact

REPO = Path(__file__).resolve().parents[2]
WEBHOOK = REPO / "deploy" / "webhook"


PINNED = "nginx@sha256:" + "a" * 64
OTHER = "other@sha256:" + "b" * 64


def art(name: str = "a", *, lifecycle: str = "draft", security: dict[str, Any] | None = None,
        image: str = PINNED, **spec: Any) -> dict[str, Any]:
    """A service artifact in namespace ns, with its lifecycle stated."""
    return service_artifact(name, image, security=security, namespace="ns",
                            lifecycle=lifecycle, **spec)


CAPS = {"capabilities": {"add": ["NET_ADMIN"]}}


def paths(violations: list[Any]) -> list[str]:
    return [v.path for v in violations]


class TestReview:
    def test_every_violation_at_once_on_create(self) -> None:
        bad = art(storage={"mode": "nimCache"}, runtime={"x": {}})
        bad["spec"]["containerGroups"][0]["containers"][0].pop("port")
        found = review("CREATE", None, bad)
        assert paths(found.violations) == [
            "spec.containerGroups[0].containers[0].port", "spec.runtime.x", "spec.storage"]
        assert found.admin_only == []

    def test_a_valid_draft_passes(self) -> None:
        found = review("CREATE", None, art())
        assert found.violations == [] and found.admin_only == []

    def test_metadata_writes_to_an_already_invalid_artifact_pass(self) -> None:
        old = art(storage={"mode": "nimCache"})
        new = copy.deepcopy(old)
        new["metadata"]["labels"] = {"workload.dev/repository": "r"}
        assert review("UPDATE", old, new).violations == []
        new["spec"]["description"] = "changed"
        assert paths(review("UPDATE", old, new).violations) == ["spec.storage"]

    def test_a_locked_spec_cannot_change_nor_go_back_to_draft(self) -> None:
        old = art(lifecycle="locked")
        new = art(lifecycle="draft", image="nginx:2", description="x")
        found = review("UPDATE", old, new)
        assert [str(v) for v in found.violations] == [
            "spec.containerGroups: the spec of a locked artifact cannot change",
            "spec.description: the spec of a locked artifact cannot change",
            "spec.lifecycle: a locked artifact cannot go back to draft",
        ]

    def test_locking_a_draft_and_labelling_a_locked_artifact_pass(self) -> None:
        assert review("UPDATE", art(), art(lifecycle="locked")).violations == []
        locked = art(lifecycle="locked")
        labelled = copy.deepcopy(locked)
        labelled["metadata"]["labels"] = {"team": "a"}
        assert review("UPDATE", locked, labelled).violations == []

    def test_only_an_admin_deletes_a_locked_artifact(self) -> None:
        assert paths(review("DELETE", art(lifecycle="locked"), None).admin_only) == \
            ["spec.lifecycle"]
        found = review("DELETE", art(), None)
        assert found.violations == [] and found.admin_only == []

    @pytest.mark.parametrize("security", [
        {"capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}},
        {"allowPrivilegeEscalation": True},
        {"seccompProfile": {"type": "Unconfined"}},
    ])
    def test_elevated_fields_need_an_admin(self, security: dict[str, Any]) -> None:
        found = review("CREATE", None, art(security=security))
        assert found.violations == []
        assert len(found.admin_only) == 1
        assert "only an admin (verb elevate on artifacts.workload.dev)" in \
            found.admin_only[0].message

    @pytest.mark.parametrize("security", [
        {"capabilities": {"drop": ["NET_RAW"]}},
        {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
        {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
    ])
    def test_tightening_is_open_to_everyone(self, security: dict[str, Any]) -> None:
        assert review("CREATE", None, art(security=security)).admin_only == []

    def test_unchanged_elevated_fields_need_no_admin_but_a_new_image_does(self) -> None:
        old = art(security=CAPS)
        assert review("UPDATE", old, art(security=CAPS, description="x")).admin_only == []
        assert paths(review("UPDATE", old, art(security=CAPS, image=OTHER)).admin_only) \
            == ["spec.containerGroups[0].containers[0].securityContext.capabilities.add"]

    def test_paths_agree_with_what_approvals_cover(self) -> None:
        security = {"capabilities": {"add": ["X"]}, "allowPrivilegeEscalation": True,
                    "seccompProfile": {"type": "Unconfined"}}
        doc = art(security=security)
        assert elevated_groups(doc["spec"]) == {"api": elevated_paths(doc["spec"])}
        assert len(elevated_paths(doc["spec"])) == 3

    @pytest.mark.parametrize("image", ["nginx:1", "nginx", "nginx@sha256:abc",
                                       "nginx:1@sha256:" + "A" * 64])
    def test_an_elevated_container_must_pin_its_image(self, image: str) -> None:
        found = review("CREATE", None, art(security=CAPS, image=image))
        assert [(v.path, "pin its image by digest" in v.message) for v in found.violations] \
            == [("spec.containerGroups[0].containers[0].imageUri", True)]
        # Without elevated fields a tag is fine.
        assert review("CREATE", None, art(image=image)).violations == []


class TestLegacyApproval:
    """The old HMAC annotation: only verified now, so artifacts approved that way keep
    running until their next change (the reconciler's part is in test_reconcile.py)."""

    approver = LegacyApprover(b"k" * 32)

    def signed(self, doc: dict[str, Any]) -> dict[str, Any]:
        value = self.approver._signature("ns", doc["metadata"]["name"], doc["spec"])
        assert value is not None
        doc["metadata"]["annotations"] = {LEGACY_ANNOTATION: value}
        return doc

    def test_an_approval_verifies_for_what_was_approved(self) -> None:
        doc = self.signed(art(security=CAPS))
        assert self.approver.verify(doc)
        doc["spec"]["description"] = "not elevated, not covered"
        assert self.approver.verify(doc)

    @pytest.mark.parametrize("change", [
        lambda d: d["spec"]["containerGroups"][0]["containers"][0].update(imageUri=OTHER),
        lambda d: d["spec"]["containerGroups"][0]["containers"][0].update(name="other"),
        lambda d: d["spec"]["containerGroups"][0]["containers"][0]["securityContext"][
            "capabilities"]["add"].append("SYS_ADMIN"),
        lambda d: d["metadata"].update(name="copy"),
        lambda d: d["metadata"].update(namespace="elsewhere"),
    ])
    def test_it_does_not_cover_anything_else(self, change: Any) -> None:
        doc = self.signed(art(security=CAPS))
        change(doc)
        assert not self.approver.verify(doc)

    def test_another_key_or_no_key_approves_nothing(self) -> None:
        doc = self.signed(art(security=CAPS))
        assert not LegacyApprover(b"other").verify(doc)
        assert not LegacyApprover(None).verify(doc)

    def test_the_key_comes_from_the_environment_or_a_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        doc = self.signed(art(security=CAPS))
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY", "k" * 32)
        assert load_legacy_approver(ApprovalSettings()).verify(doc)
        monkeypatch.delenv("ARTIFACT_OPERATOR_APPROVAL_KEY")
        (tmp_path / "key").write_text("k" * 32 + "\n")
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY_FILE", str(tmp_path / "key"))
        assert load_legacy_approver(ApprovalSettings()).verify(doc)
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY_FILE", str(tmp_path / "missing"))
        assert not load_legacy_approver(ApprovalSettings()).configured


def test_repository_label_is_patched_only_when_missing_or_wrong() -> None:
    doc = art(repository="shop")
    assert repository_label_patch(doc, parse(doc)) == \
        {"metadata": {"labels": {"workload.dev/repository": "shop"}}}
    doc["metadata"]["labels"] = {"workload.dev/repository": "shop"}
    assert repository_label_patch(doc, parse(doc)) is None
    doc["spec"].pop("repository")
    assert repository_label_patch(doc, parse(doc)) == \
        {"metadata": {"labels": {"workload.dev/repository": None}}}


class TestServing:
    def test_off_with_port_zero_or_without_a_default_certificate(self) -> None:
        assert enabled(WebhookSettings(webhook_port=0)) is False
        if not (DEFAULT_CERT_DIR / "tls.crt").exists():
            assert enabled(WebhookSettings()) is False

    def test_a_named_certificate_that_is_missing_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit, match="not found"):
            enabled(WebhookSettings(webhook_cert=tmp_path / "tls.crt",
                                    webhook_key=tmp_path / "tls.key"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


class TestShippedManifests:
    def test_webhook_configurations_call_the_handlers_through_the_service(self) -> None:
        configs = {d["kind"]: d for d in _docs(WEBHOOK / "manifests.yaml")}
        service = _docs(WEBHOOK / "service.yaml")[0]
        # Only the validating webhook: nothing is signed or mutated any more.
        expected = {"ValidatingWebhookConfiguration": (VALIDATE_ID, {"CREATE", "UPDATE",
                                                                      "DELETE"})}
        assert set(configs) == set(expected)
        for kind, (handler_id, operations) in expected.items():
            config = configs[kind]
            assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
                "artifact-operator-system/artifact-operator-serving-cert"
            (hook,) = config["webhooks"]
            ref = hook["clientConfig"]["service"]
            assert ref["path"] == f"/{handler_id}"
            assert (ref["name"], ref["namespace"]) == (service["metadata"]["name"],
                                                      service["metadata"]["namespace"])
            assert hook["failurePolicy"] == "Fail"
            assert set(hook["rules"][0]["operations"]) == operations
        (port,) = service["spec"]["ports"]
        assert port["port"] == 443
        # The Service targets the manager container's named port, which is the webhook port.
        manager = _docs(WEBHOOK.parent / "manager" / "manager.yaml")
        (deployment,) = [d for d in manager if d["kind"] == "Deployment"]
        ports = {p["name"]: p["containerPort"]
                 for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert ports[port["targetPort"]] == WebhookSettings().webhook_port

    def test_the_certificate_lands_where_the_operator_reads_it(self) -> None:
        cert = next(d for d in _docs(WEBHOOK.parent / "certmanager" / "certificate.yaml")
                    if d["kind"] == "Certificate")
        patch = _docs(WEBHOOK.parent / "default" / "manager_webhook_patch.yaml")[0]
        patch = patch["spec"]["template"]["spec"]
        volume = next(v for v in patch["volumes"] if v["name"] == "webhook-cert")
        mount = next(m for m in patch["containers"][0]["volumeMounts"]
                     if m["name"] == "webhook-cert")
        assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
        assert Path(mount["mountPath"]) == DEFAULT_CERT_DIR

    def test_selfsigned_script_makes_a_certificate_for_the_service(self, tmp_path: Path) -> None:
        subprocess.run([str(WEBHOOK / "selfsigned.sh"), "--certs-only", str(tmp_path)],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"),
                        str(tmp_path / "tls.crt")], check=True, capture_output=True)
        sans = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "tls.crt"), "-noout",
                               "-ext", "subjectAltName"], check=True, capture_output=True,
                              text=True).stdout
        assert "DNS:artifact-operator-webhook-service.artifact-operator-system.svc" in sans

    def test_roles(self) -> None:
        rbac = REPO / "deploy" / "rbac"
        roles = {d["metadata"]["name"]: d for name in ("admin", "editor", "viewer")
                 for d in _docs(rbac / f"artifact_{name}_role.yaml")}

        def verbs(role: str) -> set[str]:
            return {v for rule in roles[role]["rules"] if "artifacts" in rule["resources"]
                    for v in rule["verbs"]}

        def approval_verbs(role: str) -> set[str]:
            return {v for rule in roles[role]["rules"]
                    if "artifactapprovals" in rule["resources"] for v in rule["verbs"]}

        # Approving is writing an ArtifactApproval: admins only; the others read.
        assert {"create", "update", "patch", "delete"} <= approval_verbs("artifact-admin")
        assert approval_verbs("artifact-editor") == {"get", "list", "watch"}
        assert approval_verbs("artifact-viewer") == {"get", "list", "watch"}
        assert "elevate" in verbs("artifact-admin")
        assert "elevate" not in verbs("artifact-editor")
        assert {"create", "update", "patch", "delete"} <= verbs("artifact-editor")
        assert verbs("artifact-viewer") == {"get", "list", "watch"}
        labels = {n: r["metadata"].get("labels", {}) for n, r in roles.items()}
        assert labels["artifact-editor"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
        assert labels["artifact-viewer"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate")
                       for k in labels["artifact-admin"])


def test_the_network_policy_admits_only_given_addresses_to_the_webhook_port() -> None:
    (policy,) = _docs(WEBHOOK / "networkpolicy.yaml")
    webhook_rules = [r for r in policy["spec"]["ingress"]
                     if any(p["port"] == WebhookSettings().webhook_port for p in r["ports"])]
    (rule,) = webhook_rules
    assert [list(f) for f in rule["from"]] == [["ipBlock"]]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
