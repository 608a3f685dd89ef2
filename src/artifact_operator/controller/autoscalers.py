"""Which HorizontalPodAutoscaler API the server serves: our HPAs (rendered for
`runtime.<group>.autoscaling`, logic/autoscaling.py) are rendered and watched in it."""

from __future__ import annotations

from artifact_operator.kube.client import Kube

VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2")


async def served_version(kube: Kube) -> str:
    """autoscaling/v2 where served (1.23+), else v2beta2 (1.20-1.22)."""
    for version in VERSIONS:
        if await kube.serves(version, "horizontalpodautoscalers"):
            return version
    return VERSIONS[-1]
