"""Playing the kubelet on a control plane that has none: bind pods to a fake Node and mark
them Running and Ready, so Deployments report ready replicas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client

NODE = "fake-node"


def ensure_node(core: client.CoreV1Api) -> None:
    try:
        core.read_node(NODE)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE, "labels": {"kubernetes.io/hostname": NODE}}})


def make_pods_ready(core: client.CoreV1Api, namespace: str, selector: str) -> int:
    """Bind and mark ready every pending pod matching `selector`; returns how many."""
    ensure_node(core)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = 0
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        if pod.metadata.deletion_timestamp:
            continue
        name = pod.metadata.name
        if not pod.spec.node_name:
            core.create_namespaced_binding(namespace, {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}},
                _preload_content=False)
        if pod.status.phase == "Running" and all(
                c.ready for c in pod.status.container_statuses or []):
            continue
        statuses: list[dict[str, Any]] = [{
            "name": c.name, "ready": True, "restartCount": 0, "image": c.image,
            "imageID": f"docker://{c.image}", "started": True,
            "state": {"running": {"startedAt": now}},
        } for c in pod.spec.containers]
        core.patch_namespaced_pod_status(name, namespace, {"status": {
            "phase": "Running", "podIP": "10.0.0.1", "hostIP": "127.0.0.1", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": statuses,
        }})
        done += 1
    return done


def delete_pods(core: client.CoreV1Api, namespace: str, selector: str) -> None:
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
