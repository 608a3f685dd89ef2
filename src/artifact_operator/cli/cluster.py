"""The plugin's cluster access: the Artifacts API of the user's kubeconfig, and kubectl's
wording for the API server's errors. Uses the Kubernetes client library (the `plugin` extra),
imported only when a command talks to a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from artifact_operator.api.approval import APPROVAL_PLURAL
from artifact_operator.api.base import API_GROUP, API_VERSION, KIND, PLURAL

Obj = dict[str, Any]
RESOURCE = f"{PLURAL}.{API_GROUP}"
# Per request, so that an unreachable server is an error rather than a hang.
REQUEST_TIMEOUT = 30


class PluginError(Exception):
    """An error to print as it is, and exit 1."""


class Cluster:
    """The custom objects API and namespace of the user's kubeconfig and context."""

    def __init__(self, kubeconfig: str | None, context: str | None,
                 namespace: str | None) -> None:
        from kubernetes import client, config

        try:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context)
            contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=kubeconfig)
        except (config.ConfigException, OSError) as exc:
            raise PluginError(f"error: cannot load kubeconfig: {exc}") from exc
        current = next((c for c in contexts if c["name"] == context), active) if context \
            else active
        self.namespace = namespace or (current or {}).get("context", {}).get(
            "namespace") or "default"
        self.api = client.CustomObjectsApi(api)

    def get(self, name: str) -> Obj:
        return self._call(self.api.get_namespaced_custom_object, API_GROUP, API_VERSION,
                          self.namespace, PLURAL, name)

    def create(self, body: Obj) -> Obj:
        return self._call(self.api.create_namespaced_custom_object, API_GROUP, API_VERSION,
                          self.namespace, PLURAL, body)

    def merge_patch(self, name: str, patch: Obj) -> Obj:
        return self._call(self.api.patch_namespaced_custom_object, API_GROUP, API_VERSION,
                          self.namespace, PLURAL, name, patch,
                          _content_type="application/merge-patch+json")

    def list(self, label_selector: str) -> list[Obj]:
        got = self._call(self.api.list_namespaced_custom_object, API_GROUP, API_VERSION,
                         self.namespace, PLURAL, label_selector=label_selector)
        return list(got.get("items", []))

    def get_approval(self, name: str) -> Obj | None:
        from kubernetes.client import ApiException

        try:
            return self._call(self.api.get_namespaced_custom_object, API_GROUP, API_VERSION,
                              self.namespace, APPROVAL_PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_approval(self, body: Obj) -> Obj:
        return self._call(self.api.create_namespaced_custom_object, API_GROUP, API_VERSION,
                          self.namespace, APPROVAL_PLURAL, body)

    def replace_approval(self, name: str, body: Obj) -> Obj:
        """A full replace carrying the resourceVersion read: a concurrent change is a 409,
        never overwritten."""
        return self._call(self.api.replace_namespaced_custom_object, API_GROUP, API_VERSION,
                          self.namespace, APPROVAL_PLURAL, name, body)

    def watch(self, name: str, resource_version: str, timeout: float) -> Any:
        """Events of one artifact after `resource_version`, for at most `timeout` seconds."""
        from kubernetes import watch

        return watch.Watch().stream(  # type: ignore[no-untyped-call]
            self.api.list_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace,
            PLURAL, field_selector=f"metadata.name={name}", resource_version=resource_version,
            timeout_seconds=max(1, int(timeout)), _request_timeout=timeout + REQUEST_TIMEOUT)

    @staticmethod
    def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        return dict(method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs))


def server_error(exc: Exception) -> PluginError:
    """kubectl's wording for an API error: `Error from server (Reason): message`."""
    from kubernetes.client import ApiException

    if not isinstance(exc, ApiException):
        # urllib3's MaxRetryError wraps the cause (refused, TLS, DNS) in `reason`.
        return PluginError(
            f"error: cannot reach the API server: {getattr(exc, 'reason', None) or exc}")
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    reason = status.get("reason") or exc.reason or f"HTTP {exc.status}"
    message = status.get("message") or exc.body or exc.reason
    if exc.status == 404 and not (status.get("details") or {}).get("name"):
        message = f"{message} (is the {KIND} CRD {RESOURCE} installed?)"
    return PluginError(f"Error from server ({reason}): {message}")
