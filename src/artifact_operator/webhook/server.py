"""The admission webhook, wired into kopf: every rule on every cluster, before anything is
stored.

`/validate-artifact` (CREATE, UPDATE, DELETE) refuses what `logic.admission.review` finds,
with every violation at once; admin-only findings stand unless the requester is an admin.
The decisions are pure (`logic/admission.py`); this module asks the API server what they
cannot know: "is this user an admin" is a SubjectAccessReview for verb `elevate` on
`artifacts.workload.dev` in the artifact's namespace.

The webhook grants nothing: it signs no approval (elevated fields run only under an
ArtifactApproval, which RBAC lets only admins write). It trusts the `userInfo` of a review
only as far as its caller is authenticated: with `webhook_client_ca` set, only a client
holding a certificate of that CA (the API server's admission client certificate) completes
the TLS handshake (`BoundedWebhookServer`). It also bounds what one caller can make it hold:
request bodies (aiohttp's limit) and requests in flight.

Every replica serves the webhook; nothing here reads reconciler state. kopf serves it
(`kopf.WebhookServer`, TLS) but does not manage the WebhookConfiguration: it ships in
`deploy/webhook/`, pointing at a Service, which kopf cannot configure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kopf

from artifact_operator.api.base import API_GROUP, API_VERSION, PLURAL
from artifact_operator.api.raw import as_dict
from artifact_operator.api.rules import Violation
from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.kube.webhook_server import BoundedWebhookServer
from artifact_operator.logic.admission import ELEVATE_VERB, message, review
from artifact_operator.logic.credentials import MAX_ADMISSION_READS, new_refs, not_usable, usable
from artifact_operator.settings import DEFAULT_CERT_DIR, WebhookSettings

log = logging.getLogger(__name__)

VALIDATE_ID = "validate-artifact"

Obj = dict[str, Any]


class Admission:
    """What the webhook handler needs: an API client for access reviews."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def is_admin(self, userinfo: Mapping[str, Any], namespace: str) -> bool:
        spec: Obj = {"resourceAttributes": {
            "namespace": namespace, "verb": ELEVATE_VERB, "group": API_GROUP,
            "resource": PLURAL}}
        for key in ("username", "uid", "groups", "extra"):
            if userinfo.get(key):
                spec["user" if key == "username" else key] = userinfo[key]
        reviewed = await self.kube.create_new({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "metadata": {}, "spec": spec})
        return bool(as_dict(reviewed.get("status")).get("allowed"))

    async def unusable_credentials(self, namespace: str, old: Mapping[str, Any] | None,
                                   new: Mapping[str, Any]) -> list[Violation]:
        """The `dr-credential` references the request adds to Secrets an artifact may not
        read, looked up with the operator's rights (a GET per Secret, at most
        MAX_ADMISSION_READS). A Secret that cannot be looked up is left to the operator,
        which holds its group back: this only answers early. The message is the same for a
        missing Secret and one that does not opt in (logic/credentials.py)."""
        old_spec = as_dict(old.get("spec")) if old is not None else None
        refs = new_refs(old_spec, as_dict(new.get("spec")))
        names = list(dict.fromkeys(ref.secret for ref in refs))[:MAX_ADMISSION_READS]
        found = await asyncio.gather(
            *(self.kube.get("v1", "Secret", namespace, name) for name in names),
            return_exceptions=True)
        bad = set()
        for name, secret in zip(names, found, strict=True):
            if isinstance(secret, ApiError):
                log.info("cannot look up Secret %s/%s for admission: %s", namespace, name,
                         secret)
            elif isinstance(secret, BaseException):
                raise secret
            elif not usable(secret):
                bad.add(name)
        return [Violation(f"{ref.path}.drCredentialId", not_usable(ref.secret))
                for ref in refs if ref.secret in bad]

    async def namespace_terminating(self, namespace: str) -> bool:
        """Deleting a namespace deletes its locked artifacts too; whoever may delete a
        namespace may do that."""
        ns = await self.kube.get("v1", "Namespace", None, namespace)
        return ns is None or as_dict(ns.get("status")).get("phase") == "Terminating"


def admission_of(memo: Any) -> Admission:
    """The Admission the composition root (app/context.py) put into kopf's memo."""
    admission = getattr(memo, "admission", None)
    if not isinstance(admission, Admission):
        raise kopf.AdmissionError("the webhook is not ready yet", code=503)
    return admission


def _raw(body: Mapping[str, Any] | None) -> Obj | None:
    return dict(body) if body is not None else None


def _namespace(*bodies: Mapping[str, Any] | None) -> str:
    for body in bodies:
        ns = as_dict((body or {}).get("metadata")).get("namespace")
        if ns:
            return str(ns)
    raise kopf.AdmissionError("the request names no namespace", code=400)


def _unanswered(exc: ApiError) -> kopf.AdmissionError:
    # Fail closed: an unanswered access review is a refusal, with the reason.
    return kopf.AdmissionError(f"cannot check authorization, refusing: {exc.message}",
                               code=503)


def _outside(watched: frozenset[str], *bodies: Mapping[str, Any] | None) -> bool:
    """A request from a namespace this operator does not watch: not ours to judge. On 1.20 the
    webhook configurations cannot select namespaces by name, so such requests do reach us."""
    if not watched:
        return False
    namespaces = {as_dict((b or {}).get("metadata")).get("namespace") for b in bodies if b}
    return bool(namespaces) and not namespaces & watched


async def validate_artifact(*, operation: str | None = None, old: Any = None, new: Any = None,
                            userinfo: Any = None, memo: Any = None,
                            watched: frozenset[str] = frozenset(), **_: Any) -> None:
    if _outside(watched, new, old):
        return
    operation = operation or ""
    found = review(operation, _raw(old), _raw(new))
    violations = list(found.violations)
    if new is not None and operation in ("CREATE", "UPDATE") and (
            old is None or as_dict(old.get("spec")) != as_dict(new.get("spec"))):
        violations += await admission_of(memo).unusable_credentials(
            _namespace(new, old), _raw(old), dict(new))
    if found.admin_only:
        admission = admission_of(memo)
        namespace = _namespace(new, old)
        try:
            allowed = await admission.is_admin(userinfo, namespace) or (
                operation == "DELETE" and await admission.namespace_terminating(namespace))
        except ApiError as exc:
            raise _unanswered(exc) from exc
        if not allowed:
            violations += found.admin_only
    if violations:
        code = 403 if violations == found.admin_only else 422
        raise kopf.AdmissionError(message(violations), code=code)


# -- wiring --------------------------------------------------------------------------------

def listening(host: str | None, port: int) -> Callable[[], bool]:
    """A readiness check: does the webhook server accept connections yet?"""
    address = host if host and host not in ("0.0.0.0", "::") else "127.0.0.1"

    def check() -> bool:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def enabled(webhook: WebhookSettings) -> bool:
    """Whether the webhooks are to be served; exits when given certificate files are missing."""
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
    return True


def register(webhook: WebhookSettings, namespaces: Iterable[str] = ()) -> None:
    """Register the webhook handler with kopf, judging requests from `namespaces` only (all
    when empty). Only when it is served: kopf refuses to run with admission handlers and no
    server (`serve` sets it at startup)."""
    kopf.on.validate(API_GROUP, API_VERSION, PLURAL, id=VALIDATE_ID,
                     operations=["CREATE", "UPDATE", "DELETE"])(
        functools.partial(validate_artifact, watched=frozenset(namespaces)))
    log.info("serving the admission webhook on port %d (client certificates %s)",
             webhook.webhook_port,
             "required" if webhook.webhook_client_ca else "not required")


def serve(settings: kopf.OperatorSettings, webhook: WebhookSettings) -> None:
    client_ca = webhook.webhook_client_ca
    settings.admission.server = BoundedWebhookServer(
        addr=webhook.webhook_host, port=webhook.webhook_port,
        certfile=str(webhook.cert), pkeyfile=str(webhook.key),
        # Mutual TLS: without a certificate of this CA, no request is even read.
        verify_mode=ssl.CERT_REQUIRED if client_ca else None,
        verify_cafile=str(client_ca) if client_ca else None,
        max_in_flight=webhook.webhook_max_in_flight)
