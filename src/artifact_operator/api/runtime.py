"""Per-group runtime overrides (`spec.runtime.<group>`): replicas or autoscaling, resources,
and where the pods may be scheduled."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from artifact_operator.api.base import MAX_LIST, MAX_MAP, Model
from artifact_operator.api.exposure import Expose, Metrics


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


# Kubernetes quantities arrive as strings or numbers (`nvidia.com/gpu: 1`).
Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class Resources(Model):
    limits: dict[str, Quantity] | None = Field(None, max_length=MAX_MAP)
    requests: dict[str, Quantity] | None = Field(None, max_length=MAX_MAP)


MAX_METRICS = 16


class Autoscaling(Model):
    """A HorizontalPodAutoscaler for the group's Deployment (autoscaling/v2; v2beta2 on
    servers without v2, such as 1.20), which then owns its replica count. Without a target
    or `metrics`, the HPA's own default applies: 80% average CPU utilization."""

    min_replicas: int = Field(1, ge=1, description="Fewest replicas (at least 1).")
    max_replicas: int = Field(ge=1, description="Most replicas; at least minReplicas.")
    target_cpu_utilization: int | None = Field(
        None, ge=1, le=1000, description="Average CPU utilization to keep, in percent of the "
        "containers' CPU requests.")
    target_memory_utilization: int | None = Field(
        None, ge=1, le=1000, description="Average memory utilization to keep, in percent of "
        "the containers' memory requests.")
    metrics: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_METRICS,
        json_schema_extra={"items": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": True}},
        description="More metrics, as the HPA's own `metrics` list (autoscaling/v2 "
        "MetricSpec: Pods, Object, External, ContainerResource), passed through.")


class RuntimeOverride(Model):
    """Per-group runtime settings. Without `replicas` the operator leaves the replica count to
    whoever sets it (an HPA, `kubectl scale`)."""

    replicas: int | None = Field(None, ge=0)
    autoscaling: Autoscaling | None = Field(
        None, description="Scale the group with a HorizontalPodAutoscaler; not with replicas.")
    expose: Expose | None = Field(
        None, description="Reach the group from outside the cluster: an Ingress or an "
        "HTTPRoute to its Service (a group with a primary container).")
    metrics: Metrics | None = Field(
        None, description="Have Prometheus scrape the group: a ServiceMonitor of its Service "
        "(a group with a primary container).")
    resources: Resources | None = None
    node_selector: dict[str, str] | None = Field(None, max_length=MAX_MAP)
    tolerations: list[Toleration] | None = Field(None, max_length=MAX_LIST)

