"""Reads a group's pods, and the Events of those that run unready, when its Deployment cannot
say why it is not ready or how often its containers restarted (logic/pods.py decides when,
and what they mean)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.status import ArtifactStatus
from artifact_operator.controller.view import Obj, Ref
from artifact_operator.kube.client import ApiError, Kube
from artifact_operator.logic import pods
from artifact_operator.logic.rollout import deployment_stuck

log = logging.getLogger(__name__)

# Unready running pods whose Events are read, per group and pass: enough to quote a probe
# failure, bounded for a group of many replicas that all fail the same way.
EVENT_READS = 3


class PodReader:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def facts(self, artifact: Artifact, live: Mapping[Ref, Obj],
                    stored: ArtifactStatus) -> dict[str, pods.PodFacts]:
        """Facts of the groups whose pods are worth reading now (`pods.should_read`)."""
        before = {g.name: g.ready_replicas for g in stored.container_groups}
        out: dict[str, pods.PodFacts] = {}
        for group in artifact.spec.container_groups:
            deployment = live.get(("Deployment",
                                   naming.group_object_name(artifact.name, group.name)))
            if not pods.should_read(deployment, before.get(group.name),
                                    deployment_stuck(deployment)):
                continue
            assert deployment is not None
            try:
                out[group.name] = await self._read(artifact.namespace, deployment)
            except ApiError as exc:
                # Diagnosis only: without it the status still says what the Deployment says
                # (an install whose role predates pod reads gets here with 403).
                log.info("pods of %s/%s not read: %s", artifact.namespace,
                         deployment["metadata"]["name"], exc)
        return out

    async def _read(self, namespace: str, deployment: Obj) -> pods.PodFacts:
        match = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        if not match:
            return pods.PodFacts()
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        found = await self.kube.list("v1", "Pod", namespace, label_selector=selector)
        events: list[Obj] = []
        for name in pods.unexplained(found)[:EVENT_READS]:
            events += await self.kube.list(
                "v1", "Event", namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}")
        return pods.facts(found, events)
