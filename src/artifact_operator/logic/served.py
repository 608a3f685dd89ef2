"""Which optional APIs the cluster serves: the Gateway API's HTTPRoute and the Prometheus
Operator's ServiceMonitor are CRDs a cluster may not have. The controller asks the API server
(controller/apis.py) and the renderer renders neither where it is not served; offline
(`artifact-operator render`) both are taken as served, in their newest versions. Pure."""

from __future__ import annotations

from dataclasses import dataclass

# Newest first: the first one served is the one rendered and watched.
HTTP_ROUTE_VERSIONS = ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
SERVICE_MONITOR_VERSIONS = ("monitoring.coreos.com/v1",)
# kind -> (its plural, the versions we render it in)
OPTIONAL = {"HTTPRoute": ("httproutes", HTTP_ROUTE_VERSIONS),
            "ServiceMonitor": ("servicemonitors", SERVICE_MONITOR_VERSIONS)}


@dataclass(frozen=True)
class ServedApis:
    """The API version each optional kind is served in; None: not served."""

    http_route: str | None = HTTP_ROUTE_VERSIONS[0]
    service_monitor: str | None = SERVICE_MONITOR_VERSIONS[0]

    def version(self, kind: str) -> str | None:
        return self.http_route if kind == "HTTPRoute" else self.service_monitor

    def kinds(self) -> list[tuple[str, str]]:
        """(apiVersion, kind) of each served one."""
        return [(v, kind) for kind in OPTIONAL if (v := self.version(kind)) is not None]

    @property
    def complete(self) -> bool:
        return len(self.kinds()) == len(OPTIONAL)
