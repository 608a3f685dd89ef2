"""The operator's admission webhook on loopback: a throwaway CA and serving certificate, the
operator serving it, and a ValidatingWebhookConfiguration that sends one namespace's
Artifacts to it (other tests' namespaces are left alone)."""

from __future__ import annotations

import base64
import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from .controlplane import ADMIN_TOKEN, ControlPlane, free_port
from .operator import OperatorProcess

SELECTOR_LABEL = "artifact-operator.test/webhook"


@dataclass
class ServingCert:
    ca: Path
    cert: Path
    key: Path


def make_serving_cert(directory: Path) -> ServingCert:
    """A CA and a serving certificate for IP 127.0.0.1 signed by it, made with openssl."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
        "-out", str(d / "ca.crt"), "-days", "1", "-subj", "/CN=artifact-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "tls.key"),
        "-out", str(d / "tls.csr"), "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "tls.crt"),
        "-days", "1", "-extfile", str(d / "san.ext"))
    return ServingCert(d / "ca.crt", d / "tls.crt", d / "tls.key")


def _webhook(name: str, path: str, port: int, ca: bytes, namespace: str,
             operations: list[str], failure_policy: str = "Fail") -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "timeoutSeconds": 10,
        "clientConfig": {"url": f"https://127.0.0.1:{port}{path}",
                         "caBundle": base64.b64encode(ca).decode()},
        "rules": [{"apiGroups": ["workload.dev"], "apiVersions": ["v1alpha1"],
                   "resources": ["artifacts"], "operations": operations,
                   "scope": "Namespaced"}],
        "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: namespace}},
    }


@contextlib.contextmanager
def registered_webhooks(api: client.ApiClient, namespace: str, port: int,
                        ca: Path, failure_policy: str = "Fail") -> Iterator[None]:
    """Register the webhook for `namespace` only; unregister on exit."""
    core = client.CoreV1Api(api)
    core.patch_namespace(namespace, {"metadata": {"labels": {SELECTOR_LABEL: namespace}}})
    adm = client.AdmissionregistrationV1Api(api)
    name = f"artifact-{namespace}"
    data = ca.read_bytes()
    adm.create_validating_webhook_configuration({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [_webhook("validate-artifact.workload.dev", "/validate-artifact", port,
                              data, namespace, ["CREATE", "UPDATE", "DELETE"],
                              failure_policy)]})
    try:
        yield
    finally:
        # Unregistered before the namespace goes, so its deletion is not held up by us.
        with contextlib.suppress(client.ApiException):
            adm.delete_validating_webhook_configuration(name)


def webhook_operator(kubeconfig: Path, namespace: str | None, log_path: Path,
                     cert: ServingCert, *, approval_key: str | None = None,
                     extra_args: list[str] | None = None,
                     env: dict[str, str] | None = None) -> OperatorProcess:
    """The operator serving the webhooks on loopback; `namespace` None watches all."""
    port = free_port()
    env = dict(env or {})
    if approval_key:
        env["ARTIFACT_OPERATOR_APPROVAL_KEY"] = approval_key
    proc = OperatorProcess(kubeconfig, [namespace] if namespace else None, log_path, env=env,
                           args=["--webhook-port", str(port), "--webhook-host", "127.0.0.1",
                                 "--webhook-cert", str(cert.cert),
                                 "--webhook-key", str(cert.key), *(extra_args or [])])
    proc.webhook_port = port  # type: ignore[attr-defined]
    return proc


@contextlib.contextmanager
def serving_webhooks(api: client.ApiClient, namespace: str, proc: OperatorProcess,
                     ca: Path) -> Iterator[OperatorProcess]:
    """Start `proc` (a `webhook_operator`), register its webhooks for `namespace`, and
    stop it afterwards, printing its log (shown when the test fails). Start returns once
    /readyz answers, and readiness includes the webhook server listening."""
    proc.start()
    try:
        with registered_webhooks(api, namespace, proc.webhook_port,  # type: ignore[attr-defined]
                                 ca):
            yield proc
    finally:
        proc.stop()
        print("---- operator log ----\n" + proc.logs()[-20000:])


def user_api(cluster_kubeconfig: Path, user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
    """An API client that acts as `user` (impersonated by the admin)."""
    from kubernetes import config

    api = config.new_client_from_config(str(cluster_kubeconfig))
    api.set_default_header("Impersonate-User", user)
    for group in groups:
        # The client sends one header value; enough for the single group tests use.
        api.set_default_header("Impersonate-Group", group)
    return api


def user_kubeconfig(cp_or_path: ControlPlane | Path, directory: Path, user: str) -> Path:
    """A kubeconfig for kubectl that acts as `user` (the admin token, impersonating)."""
    import yaml

    if isinstance(cp_or_path, ControlPlane):
        base = yaml.safe_load(cp_or_path.kubeconfig.read_text())
    else:
        base = yaml.safe_load(cp_or_path.read_text())
    base["users"] = [{"name": "user", "user": {"token": ADMIN_TOKEN, "as": user}}]
    path = directory / f"kubeconfig-{user}"
    path.write_text(yaml.safe_dump(base))
    return path


def bind(rbac: client.RbacAuthorizationV1Api, namespace: str, user: str, role: str) -> None:
    rbac.create_namespaced_role_binding(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": f"{user}-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })
