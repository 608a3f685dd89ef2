"""The kinds the operator reads or writes, and their REST paths (no discovery: each is a
fixed, served API of the versions we support)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k for k in (
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("v1", "Service", "services"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Secret", "secrets"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "Namespace", "namespaces", namespaced=False),
        Kind("v1", "Event", "events"),
        Kind("workload.dev/v1alpha1", "Artifact", "artifacts"),
        Kind("workload.dev/v1alpha1", "ArtifactApproval", "artifactapprovals"),
        Kind("coordination.k8s.io/v1", "Lease", "leases"),
        Kind("authorization.k8s.io/v1", "SubjectAccessReview", "subjectaccessreviews",
             namespaced=False),
        # Image builds: the engines' objects, and the build pods' termination messages.
        Kind("shipwright.io/v1beta1", "BuildRun", "buildruns"),
        Kind("batch/v1", "Job", "jobs"),
        Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        Kind("autoscaling/v2beta2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        # runtime.<group>.expose and .metrics; the last three only where served.
        Kind("networking.k8s.io/v1", "Ingress", "ingresses"),
        Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
        Kind("gateway.networking.k8s.io/v1beta1", "HTTPRoute", "httproutes"),
        Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    )
}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    return KINDS[(obj["apiVersion"], obj["kind"])]
