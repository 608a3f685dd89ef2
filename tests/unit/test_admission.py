"""The webhook's decisions, the approval signature and the shipped webhook/RBAC manifests.
No cluster: these are the pure parts; tests/integration/test_admission.py runs them for real."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from artifact_operator.api.validation import parse
from artifact_operator.app.context import load_approver
from artifact_operator.logic.admission import (
    Approval,
    annotation_after,
    approval_decision,
    review,
)
from artifact_operator.logic.approval import ANNOTATION, Approver
from artifact_operator.logic.elevated import elevated_paths
from artifact_operator.logic.render import render
from artifact_operator.logic.repository import repository_label_patch
from artifact_operator.settings import DEFAULT_CERT_DIR, ApprovalSettings, Settings, WebhookSettings
from artifact_operator.webhook.server import MUTATE_ID, VALIDATE_ID, enabled

from ..support.builders import service_artifact

REPO = Path(__file__).resolve().parents[2]
WEBHOOK = REPO / "deploy" / "webhook"


def art(name: str = "a", *, lifecycle: str = "draft", security: dict[str, Any] | None = None,
        image: str = "nginx:1", **spec: Any) -> dict[str, Any]:
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
        assert paths(review("UPDATE", old, art(security=CAPS, image="other:1")).admin_only) \
            == ["spec.containerGroups[0].containers[0].securityContext.capabilities.add"]

    def test_paths_agree_with_the_renderer(self) -> None:
        security = {"capabilities": {"add": ["X"]}, "allowPrivilegeEscalation": True,
                    "seccompProfile": {"type": "Unconfined"}}
        doc = art(security=security)
        dropped = render(parse(doc), Settings()).elevated_dropped
        assert elevated_paths(doc["spec"]) == dropped and len(dropped) == 3


class TestApproval:
    approver = Approver(b"k" * 32)

    def signed(self, doc: dict[str, Any]) -> dict[str, Any]:
        value = self.approver.sign("ns", doc["metadata"]["name"], doc["spec"])
        assert value is not None
        doc["metadata"]["annotations"] = {ANNOTATION: value}
        return doc

    def test_an_approval_verifies_for_what_was_approved(self) -> None:
        doc = self.signed(art(security=CAPS))
        assert self.approver.verify(doc)
        doc["spec"]["description"] = "not elevated, not covered"
        assert self.approver.verify(doc)

    @pytest.mark.parametrize("change", [
        lambda d: d["spec"]["containerGroups"][0]["containers"][0].update(imageUri="evil:1"),
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
        assert not Approver(b"other").verify(doc)
        assert not Approver(None).verify(doc)
        assert Approver(None).sign("ns", "a", doc["spec"]) is None

    def test_nothing_elevated_needs_no_approval(self) -> None:
        assert self.approver.sign("ns", "a", art()["spec"]) is None

    def test_the_key_comes_from_the_environment_or_a_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        doc = self.signed(art(security=CAPS))
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY", "k" * 32)
        assert load_approver(ApprovalSettings()).verify(doc)
        monkeypatch.delenv("ARTIFACT_OPERATOR_APPROVAL_KEY")
        (tmp_path / "key").write_text("k" * 32 + "\n")
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY_FILE", str(tmp_path / "key"))
        assert load_approver(ApprovalSettings()).verify(doc)
        monkeypatch.setenv("ARTIFACT_OPERATOR_APPROVAL_KEY_FILE", str(tmp_path / "missing"))
        assert not load_approver(ApprovalSettings()).configured


def test_repository_label_is_patched_only_when_missing_or_wrong() -> None:
    doc = art(repository="shop")
    assert repository_label_patch(doc, parse(doc)) == \
        {"metadata": {"labels": {"workload.dev/repository": "shop"}}}
    doc["metadata"]["labels"] = {"workload.dev/repository": "shop"}
    assert repository_label_patch(doc, parse(doc)) is None
    doc["spec"].pop("repository")
    assert repository_label_patch(doc, parse(doc)) == \
        {"metadata": {"labels": {"workload.dev/repository": None}}}


class TestApprovalDecision:
    """What the mutating webhook does with the approval annotation (pure)."""

    def with_annotation(self, doc: dict[str, Any], value: str | None) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        if value is not None:
            doc["metadata"]["annotations"] = {ANNOTATION: value}
        return doc

    def test_nothing_elevated_keeps_nothing(self) -> None:
        assert approval_decision("CREATE", None, art()).action is Approval.keep
        stale = self.with_annotation(art(), "hmac-sha256:old")
        assert approval_decision("UPDATE", stale, stale).action is Approval.clear

    def test_new_or_changed_elevated_fields_ask_who_is_asking(self) -> None:
        assert approval_decision("CREATE", None, art(security=CAPS)).action is Approval.ask
        old = self.with_annotation(art(security=CAPS), "sig")
        more = self.with_annotation(
            art(security={"capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}}), "sig")
        assert approval_decision("UPDATE", old, more).action is Approval.ask
        other_image = self.with_annotation(art(security=CAPS, image="other:1"), "sig")
        assert approval_decision("UPDATE", old, other_image).action is Approval.ask

    def test_a_forged_or_removed_annotation_is_asked_about(self) -> None:
        old = self.with_annotation(art(security=CAPS), "sig")
        forged = self.with_annotation(art(security=CAPS), "hmac-sha256:forged")
        decision = approval_decision("UPDATE", old, forged)
        assert (decision.action, decision.given, decision.previous) == \
            (Approval.ask, "hmac-sha256:forged", "sig")
        # Anyone but an admin gets the stored approval back, whatever they sent.
        assert annotation_after(decision, admin=False, signature=None) == "sig"
        assert annotation_after(decision, admin=True, signature="new") == "new"

    def test_unrelated_writes_keep_the_standing_approval(self) -> None:
        old = self.with_annotation(art(security=CAPS), "sig")
        relabelled = self.with_annotation(art(security=CAPS, description="x"), "sig")
        relabelled["metadata"]["labels"] = {"workload.dev/repository": "shop"}
        assert approval_decision("UPDATE", old, relabelled).action is Approval.keep

    def test_a_non_admin_creating_with_elevated_fields_stores_no_approval(self) -> None:
        decision = approval_decision("CREATE", None, self.with_annotation(
            art(security=CAPS), "hmac-sha256:copied-from-elsewhere"))
        assert decision.action is Approval.ask
        assert annotation_after(decision, admin=False, signature=None) is None


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
        expected = {"ValidatingWebhookConfiguration": (VALIDATE_ID, {"CREATE", "UPDATE",
                                                                      "DELETE"}),
                    "MutatingWebhookConfiguration": (MUTATE_ID, {"CREATE", "UPDATE"})}
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

        assert "elevate" in verbs("artifact-admin")
        assert "elevate" not in verbs("artifact-editor")
        assert {"create", "update", "patch", "delete"} <= verbs("artifact-editor")
        assert verbs("artifact-viewer") == {"get", "list", "watch"}
        labels = {n: r["metadata"].get("labels", {}) for n, r in roles.items()}
        assert labels["artifact-editor"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
        assert labels["artifact-viewer"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate")
                       for k in labels["artifact-admin"])
