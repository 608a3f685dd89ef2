"""What a group offers beyond its cluster Service, per group in `spec.runtime.<group>`:
`expose` (an Ingress or a Gateway API HTTPRoute to the group's Service) and `metrics` (a
Prometheus Operator ServiceMonitor of it). Both need a group with a primary container with a
port, which is what gives it a Service (api/rules.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from artifact_operator.api.base import DNS_SUBDOMAIN, Model

# A host name, optionally a wildcard's (`*.example.com`), as Ingress and HTTPRoute take it.
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# An absolute URL path without query or fragment.
HTTP_PATH = r"^/[^?#\s]*$"
NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Prometheus' durations as ServiceMonitors take them (one unit is plenty here).
DURATION = r"^[0-9]+(ms|s|m|h)$"
# A label or annotation key: an optional DNS-subdomain prefix and a name (structural schemas
# cannot bound map keys: rules.py checks it, and CEL on 1.25+ servers).
QUALIFIED_NAME = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
MAX_KEY = 316  # a 253-character prefix, "/", a 63-character name
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
MAX_ANNOTATIONS = 32
MAX_LABELS = 16
MAX_PARENTS = 32  # the Gateway API's own bound
MAX_HOSTNAMES = 16  # likewise

Hostname = Annotated[str, Field(max_length=253, pattern=HOSTNAME)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]
AnnotationValue = Annotated[str, Field(max_length=4096)]


class IngressExposure(Model):
    """A `networking.k8s.io/v1` Ingress to the group's Service."""

    host: str | None = Field(
        None, max_length=253, pattern=HOSTNAME,
        description="Host name to match (`*.example.com` for a wildcard); unset: every host.")
    path: str = Field("/", max_length=1024, pattern=HTTP_PATH,
                      description="Path to route to the group.")
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = Field(
        "Prefix", description="How the ingress controller matches path.")
    class_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="ingressClassName: which ingress controller serves it; unset: the "
        "cluster's default class.")
    tls_secret: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="Secret (kubernetes.io/tls, in the artifact's namespace) the ingress "
        "controller terminates TLS for host with; needs host.")
    annotations: dict[str, AnnotationValue] | None = Field(
        None, max_length=MAX_ANNOTATIONS,
        description="Annotations of the Ingress, for its controller (e.g. cert-manager's "
        "cert-manager.io/cluster-issuer).")


class ParentRef(Model):
    """A Gateway (or a listener of one, by sectionName) the route attaches to."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str | None = Field(
        None, max_length=63, pattern=NAMESPACE,
        description="The Gateway's namespace; unset: the artifact's. Its listener must "
        "allow routes from here.")
    section_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, description="A listener's name.")


class HttpRouteExposure(Model):
    """A Gateway API HTTPRoute (`gateway.networking.k8s.io`) to the group's Service."""

    parent_refs: list[ParentRef] = Field(min_length=1, max_length=MAX_PARENTS,
                                         description="The Gateways to attach to.")
    hostnames: list[Hostname] | None = Field(
        None, max_length=MAX_HOSTNAMES,
        description="Host names to match; unset: those of the Gateway's listener.")
    path: str = Field("/", max_length=1024, pattern=HTTP_PATH,
                      description="Path prefix to route to the group.")
    scheme: Literal["http", "https"] = Field(
        "http", description="How clients reach the Gateway's listener: used only for "
        "status externalEndpoint (a route does not say whether its Gateway terminates TLS).")


class Expose(Model):
    """Reach the group from outside the cluster: exactly one of ingress and httpRoute."""

    ingress: IngressExposure | None = None
    http_route: HttpRouteExposure | None = None


class Metrics(Model):
    """A Prometheus Operator ServiceMonitor (`monitoring.coreos.com/v1`) scraping the group's
    Service, rendered while the cluster serves that API."""

    port: int | None = Field(
        None, ge=1024, le=65535,
        description="Port the primary container serves metrics on; unset: its port. Another "
        "port is added to the Service as `metrics`.")
    path: str = Field("/metrics", max_length=1024, pattern=HTTP_PATH,
                      description="HTTP path of the metrics.")
    interval: str | None = Field(
        None, pattern=DURATION,
        description="Scrape interval (e.g. 30s); unset: Prometheus' own.")
    labels: dict[str, LabelValue] | None = Field(
        None, max_length=MAX_LABELS,
        description="More labels on the ServiceMonitor, for a Prometheus whose "
        "serviceMonitorSelector asks for them (e.g. release: prometheus); the operator's own "
        "labels win.")
