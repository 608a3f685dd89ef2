"""The admission webhooks: every rule on every cluster, before anything is stored.

`/validate-artifact` (CREATE, UPDATE, DELETE) refuses an Artifact that breaks a rule of the
spec, with every violation at once; enforces the lifecycle (a locked spec never changes, never
goes back to draft, and only an admin deletes it); and accepts elevated securityContext fields
only from admins. `/mutate-artifact` (CREATE, UPDATE) records an admin's approval of elevated
fields in the `workload.dev/elevated-approval` annotation (see `approval.py`) and keeps
everyone else from setting or changing it.

"Admin" is decided by the API server: a SubjectAccessReview for the requesting user, verb
`elevate` on `artifacts.workload.dev` in the artifact's namespace.

Every replica serves the webhooks; nothing here reads reconciler state. kopf serves them
(`kopf.WebhookServer`, TLS) but does not manage the WebhookConfigurations: those ship in
`deploy/webhook/`, pointing at a Service, which kopf cannot configure.
"""

from __future__ import annotations

import argparse
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .approval import ANNOTATION, Approver, elevated_content, elevated_paths
from .kube import ApiError, Kube
from .models import API_GROUP, API_VERSION, PLURAL
from .rules import Violation, order
from .validation import format_violations, validate

log = logging.getLogger(__name__)

VALIDATE_ID = "validate-artifact"
MUTATE_ID = "mutate-artifact"
ELEVATE_VERB = "elevate"
# kubebuilder's convention, where cert-manager or the self-signed script mounts the cert.
DEFAULT_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")

Obj = dict[str, Any]


class WebhookSettings(BaseSettings):
    """`run --webhook-*` flags, or `ARTIFACT_OPERATOR_WEBHOOK_*` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ARTIFACT_OPERATOR_", frozen=True,
                                      extra="ignore")

    webhook_port: int = Field(9443, ge=0, le=65535, description="0 disables the webhooks.")
    webhook_cert: Path | None = Field(None, description="Serving certificate (PEM).")
    webhook_key: Path | None = Field(None, description="Private key of the certificate.")
    webhook_host: str | None = Field(None, description="Address to listen on (all if unset).")

    @property
    def cert(self) -> Path:
        return self.webhook_cert or DEFAULT_CERT_DIR / "tls.crt"

    @property
    def key(self) -> Path:
        return self.webhook_key or DEFAULT_CERT_DIR / "tls.key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--webhook-port", type=int, default=None,
                        help="serve the admission webhooks on this port (default 9443; 0: off)")
    parser.add_argument("--webhook-cert", default=None,
                        help=f"serving certificate (default {DEFAULT_CERT_DIR}/tls.crt)")
    parser.add_argument("--webhook-key", default=None,
                        help=f"its private key (default {DEFAULT_CERT_DIR}/tls.key)")
    parser.add_argument("--webhook-host", default=None,
                        help="address to listen on for the webhooks (default: all)")


def settings_from_args(args: argparse.Namespace) -> WebhookSettings:
    """Flags override the environment; absent flags leave it be."""
    given = {name: getattr(args, name, None)
             for name in ("webhook_port", "webhook_cert", "webhook_key", "webhook_host")}
    return WebhookSettings(**{k: v for k, v in given.items() if v is not None})


# -- the decisions (pure) ----------------------------------------------------------------

ADMIN_HINT = f"only an admin (verb {ELEVATE_VERB} on {PLURAL}.{API_GROUP}) may"


@dataclass
class Review:
    """What a request breaks: `violations` for anyone, `admin_only` unless an admin asks."""

    violations: list[Violation] = field(default_factory=list)
    admin_only: list[Violation] = field(default_factory=list)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _locked(obj: Mapping[str, Any] | None) -> bool:
    return _dict((obj or {}).get("spec")).get("lifecycle") == "locked"


def review(operation: str, old: Mapping[str, Any] | None,
           new: Mapping[str, Any] | None) -> Review:
    out = Review()
    if operation == "DELETE":
        if _locked(old):
            out.admin_only.append(Violation(
                "spec.lifecycle", f"the artifact is locked: {ADMIN_HINT} delete it"))
        return out
    if new is None:
        return out
    new_spec = _dict(new.get("spec"))
    old_spec = _dict(old.get("spec")) if old is not None else None
    # Metadata-only writes (labels, annotations) of an artifact stored before a rule existed
    # pass, so the operator can still label it; the spec is checked whenever it changes.
    if old_spec is None or new_spec != old_spec:
        out.violations += validate(dict(new))
    if old_spec is not None and _locked(old):
        if new_spec.get("lifecycle") != "locked":
            out.violations.append(Violation(
                "spec.lifecycle", "a locked artifact cannot go back to draft"))
        for key in sorted(set(old_spec) | set(new_spec)):
            if key != "lifecycle" and old_spec.get(key) != new_spec.get(key):
                out.violations.append(Violation(
                    f"spec.{key}", "the spec of a locked artifact cannot change"))
        out.violations.sort(key=order)
    content = elevated_content(new_spec)
    if content and content != elevated_content(old_spec):
        out.admin_only += [Violation(path, f"an elevated securityContext field: {ADMIN_HINT} "
                                     "set it") for path in elevated_paths(new_spec)]
    return out


def message(violations: list[Violation]) -> str:
    return f"{len(violations)} violation(s): {format_violations(violations)}"


# -- talking to the API server -----------------------------------------------------------

class Admission:
    """What the webhook handlers need: an API client for access reviews and the approver."""

    def __init__(self, kube: Kube, approver: Approver) -> None:
        self.kube = kube
        self.approver = approver

    async def is_admin(self, userinfo: Mapping[str, Any], namespace: str) -> bool:
        spec: Obj = {"resourceAttributes": {
            "namespace": namespace, "verb": ELEVATE_VERB, "group": API_GROUP,
            "resource": PLURAL}}
        for key in ("username", "uid", "groups", "extra"):
            if userinfo.get(key):
                spec["user" if key == "username" else key] = userinfo[key]
        reviewed = await self.kube.create({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "metadata": {}, "spec": spec})
        return bool(_dict(reviewed.get("status")).get("allowed"))

    async def namespace_terminating(self, namespace: str) -> bool:
        """Deleting a namespace deletes its locked artifacts too; whoever may delete a
        namespace may do that."""
        ns = await self.kube.get("v1", "Namespace", None, namespace)
        return ns is None or _dict(ns.get("status")).get("phase") == "Terminating"


def _admission(memo: Any) -> Admission:
    admission: Admission = memo.admission
    return admission


def _raw(body: Mapping[str, Any] | None) -> Obj | None:
    return dict(body) if body is not None else None


def _namespace(*bodies: Mapping[str, Any] | None) -> str:
    for body in bodies:
        ns = _dict((body or {}).get("metadata")).get("namespace")
        if ns:
            return str(ns)
    raise kopf.AdmissionError("the request names no namespace", code=400)


async def validate_artifact(*, operation: str | None = None, old: Any = None, new: Any = None,
                            userinfo: Any = None, memo: Any = None, **_: Any) -> None:
    operation = operation or ""
    found = review(operation, _raw(old), _raw(new))
    violations = list(found.violations)
    if found.admin_only:
        admission = _admission(memo)
        namespace = _namespace(new, old)
        try:
            allowed = await admission.is_admin(userinfo, namespace) or (
                operation == "DELETE" and await admission.namespace_terminating(namespace))
        except ApiError as exc:
            # Fail closed: an unanswered access review is a refusal, with the reason.
            raise kopf.AdmissionError(
                f"cannot check authorization, refusing: {exc.message}", code=503) from exc
        if not allowed:
            violations += found.admin_only
    if violations:
        code = 422 if found.violations else 403
        raise kopf.AdmissionError(message(violations), code=code)


async def mutate_artifact(*, operation: str | None = None, old: Any = None, new: Any = None,
                          userinfo: Any = None, memo: Any = None, patch: Any = None,
                          **_: Any) -> None:
    if new is None:
        return
    annotations = _dict(_dict(new.get("metadata")).get("annotations"))
    given = annotations.get(ANNOTATION)
    previous = _dict(_dict((old or {}).get("metadata")).get("annotations")).get(ANNOTATION)
    spec = _dict(new.get("spec"))
    content = elevated_content(spec)
    if not content:
        if given is not None:
            patch.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = None
        return
    # Re-decide only when the elevated fields or the annotation change: a metadata write by
    # anyone else (the operator labelling the artifact) keeps the standing approval.
    asked = (operation == "CREATE" or old is None or given != previous
             or content != elevated_content(_dict(old.get("spec"))))
    if not asked:
        return
    admission = _admission(memo)
    namespace = _namespace(new, old)
    try:
        admin = await admission.is_admin(userinfo, namespace)
    except ApiError as exc:
        raise kopf.AdmissionError(
            f"cannot check authorization, refusing: {exc.message}", code=503) from exc
    if admin:
        name = str(_dict(new.get("metadata")).get("name") or "")
        value = admission.approver.sign(namespace, name, spec)
    else:
        value = previous  # nobody but an admin sets or changes an approval
    if value != given:
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION] = value


# -- wiring --------------------------------------------------------------------------------

def _listening(host: str | None, port: int) -> Callable[[], bool]:
    address = host if host and host not in ("0.0.0.0", "::") else "127.0.0.1"

    def check() -> bool:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def register(webhook: WebhookSettings, approver: Approver) -> bool:
    """Register the webhook handlers and their server with kopf; False when they are off.

    Called only when the webhooks are to be served: kopf refuses to run with admission
    handlers and no server.
    """
    if webhook.webhook_port == 0:
        log.info("admission webhooks are off (--webhook-port 0)")
        return False
    explicit = webhook.webhook_cert is not None or webhook.webhook_key is not None
    missing = [str(p) for p in (webhook.cert, webhook.key) if not p.exists()]
    if missing and explicit:
        raise SystemExit(f"webhook certificate files not found: {', '.join(missing)}")
    if missing:
        log.warning("admission webhooks are off: no serving certificate at %s "
                    "(mount one, pass --webhook-cert/--webhook-key, or --webhook-port 0)",
                    DEFAULT_CERT_DIR)
        return False

    @kopf.on.startup(id="admission-startup")
    async def startup(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = kopf.WebhookServer(
            addr=webhook.webhook_host, port=webhook.webhook_port,
            certfile=str(webhook.cert), pkeyfile=str(webhook.key))
        memo.admission = Admission(await Kube.connect(), approver)
        health = getattr(memo, "health", None)
        if health is not None:
            # kopf binds the webhook server only after startup: until it listens, the pod
            # must not receive the Service's admission calls.
            health.readiness_checks["webhook"] = _listening(
                webhook.webhook_host, webhook.webhook_port)

    @kopf.on.cleanup(id="admission-cleanup")
    async def cleanup(memo: Any, **_: Any) -> None:
        admission = getattr(memo, "admission", None)
        if admission is not None:
            await admission.kube.close()

    kopf.on.validate(API_GROUP, API_VERSION, PLURAL, id=VALIDATE_ID,
                     operations=["CREATE", "UPDATE", "DELETE"])(validate_artifact)
    kopf.on.mutate(API_GROUP, API_VERSION, PLURAL, id=MUTATE_ID,
                   operations=["CREATE", "UPDATE"])(mutate_artifact)
    log.info("serving admission webhooks on port %d", webhook.webhook_port)
    return True
