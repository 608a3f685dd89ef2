"""`runtime.<group>.expose`: the group's Ingress or HTTPRoute, and what their status says.
Pure.

Both are named like the group's Deployment and Service, labelled and owned like every child,
and route to the group's Service on the primary container's port. The Ingress is
`networking.k8s.io/v1` (served from Kubernetes 1.19 on); the HTTPRoute is rendered in the
version the cluster serves (logic/served.py), and not at all where it serves none: the group
then runs as it would without `expose`, and the condition `Exposed` says why
(`RouteApiMissing`). `Exposed` never holds back `Ready`: the workload runs and answers in the
cluster whether or not an ingress controller or Gateway has picked the route up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.exposure import Expose, HttpRouteExposure, IngressExposure
from artifact_operator.api.naming import group_object_name
from artifact_operator.api.runtime import RuntimeOverride
from artifact_operator.api.status import Reason
from artifact_operator.logic.served import ServedApis

Manifest = dict[str, Any]
Obj = Mapping[str, Any]

INGRESS_API = "networking.k8s.io/v1"


def objects(expose: Expose | None, service: str, port: int, meta: Manifest,
            apis: ServedApis) -> tuple[list[Manifest], list[str]]:
    """The group's Ingress or HTTPRoute to `service`:`port`, and the kinds it asks for that
    the cluster does not serve (not rendered). `meta`: the group's object metadata."""
    if expose is None:
        return [], []
    if expose.ingress is not None:
        return [ingress(expose.ingress, service, port, meta)], []
    if expose.http_route is not None:
        if apis.http_route is None:
            return [], ["HTTPRoute"]
        return [http_route(expose.http_route, service, port, meta, apis.http_route)], []
    return [], []  # neither: refused by the rules before rendering


def ingress(spec: IngressExposure, service: str, port: int, meta: Manifest) -> Manifest:
    metadata = dict(meta)
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    path = {"path": spec.path, "pathType": spec.path_type,
            "backend": {"service": {"name": service, "port": {"number": port}}}}
    rule: Manifest = {"http": {"paths": [path]}}
    if spec.host is not None:
        rule = {"host": spec.host, **rule}
    body: Manifest = {}
    if spec.class_name is not None:
        body["ingressClassName"] = spec.class_name
    if spec.tls_secret is not None:
        body["tls"] = [{"hosts": [spec.host], "secretName": spec.tls_secret}]
    body["rules"] = [rule]
    return {"apiVersion": INGRESS_API, "kind": "Ingress", "metadata": metadata, "spec": body}


def http_route(spec: HttpRouteExposure, service: str, port: int, meta: Manifest,
               api_version: str) -> Manifest:
    body: Manifest = {"parentRefs": [p.dump() for p in spec.parent_refs]}
    if spec.hostnames:
        body["hostnames"] = list(spec.hostnames)
    body["rules"] = [{
        "matches": [{"path": {"type": "PathPrefix", "value": spec.path}}],
        "backendRefs": [{"name": service, "port": port}],
    }]
    return {"apiVersion": api_version, "kind": "HTTPRoute", "metadata": dict(meta),
            "spec": body}


# -- what their status says ----------------------------------------------------------------

@dataclass(frozen=True)
class Reach:
    """What one group's Ingress or HTTPRoute reports."""

    ok: bool
    reason: Reason
    message: str
    endpoint: str | None = None


# The order in which a problem names the condition's reason: the one to act on first.
_FIRST = (Reason.route_api_missing, Reason.apply_failed, Reason.route_not_accepted,
          Reason.awaiting_address)


def reaches(artifact: Artifact, held: set[str], unserved: Mapping[str, list[str]],
            live: Mapping[tuple[str, str], Obj]) -> dict[str, Reach]:
    """Per group with `expose` that is rendered (not held back), what its route reports."""
    out = {}
    for group in artifact.spec.container_groups:
        runtime = (artifact.spec.runtime or {}).get(group.name) or RuntimeOverride()
        if runtime.expose is None or group.name in held:
            continue
        name = group_object_name(artifact.name, group.name)
        if runtime.expose.ingress is not None:
            out[group.name] = _ingress_reach(runtime.expose.ingress, name,
                                             live.get(("Ingress", name)))
        elif runtime.expose.http_route is not None:
            out[group.name] = _route_reach(runtime.expose.http_route, name,
                                           live.get(("HTTPRoute", name)),
                                           "HTTPRoute" in unserved.get(group.name, ()))
    return out


def condition(reached: Mapping[str, Reach]) -> tuple[bool, Reason, str] | None:
    """The `Exposed` condition: (status, reason, message); None when no group asks."""
    if not reached:
        return None
    bad = [r for r in reached.values() if not r.ok]
    if not bad:
        return True, Reason.exposed, "; ".join(r.message for r in reached.values())
    reason = min((r.reason for r in bad), key=_FIRST.index)
    return False, reason, "; ".join(r.message for r in bad)


def _ingress_reach(spec: IngressExposure, name: str, live: Obj | None) -> Reach:
    if live is None:
        return Reach(False, Reason.apply_failed, f"Ingress {name} is not applied")
    balancers = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = next((b.get("hostname") or b.get("ip") for b in balancers
                    if b.get("hostname") or b.get("ip")), None)
    if address is None:
        return Reach(False, Reason.awaiting_address,
                     f"Ingress {name} has no address yet (its ingress controller sets one)")
    host = spec.host if spec.host and not spec.host.startswith("*") else address
    url = f"{'https' if spec.tls_secret else 'http'}://{host}{spec.path}"
    return Reach(True, Reason.exposed, f"Ingress {name} at {url}", url)


def _route_reach(spec: HttpRouteExposure, name: str, live: Obj | None,
                 unserved: bool) -> Reach:
    if unserved:
        return Reach(False, Reason.route_api_missing,
                     f"HTTPRoute {name} is not rendered: the cluster does not serve the "
                     "Gateway API (gateway.networking.k8s.io HTTPRoutes); install its CRDs "
                     "and the operator renders it (the group runs meanwhile)")
    if live is None:
        return Reach(False, Reason.apply_failed, f"HTTPRoute {name} is not applied")
    accepted, refused = [], []
    for parent in (live.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        who = "/".join(p for p in (ref.get("namespace"), ref.get("name")) if p)
        cond = next((c for c in parent.get("conditions") or [] if c.get("type") == "Accepted"),
                    None)
        if cond is not None and cond.get("status") == "True":
            accepted.append(who)
        elif cond is not None:
            refused.append(f"{who}: {cond.get('reason')}: {cond.get('message') or ''}".rstrip(
                ": "))
    if not accepted:
        why = "; ".join(refused) or "no Gateway has accepted it yet"
        return Reach(False, Reason.route_not_accepted, f"HTTPRoute {name}: {why}")
    host = next((h for h in spec.hostnames or [] if not h.startswith("*")), None)
    url = f"{spec.scheme}://{host}{spec.path}" if host else None
    where = f"at {url}" if url else "at the Gateway's address (no host name)"
    return Reach(True, Reason.exposed,
                 f"HTTPRoute {name} accepted by {', '.join(accepted)} {where}", url)
