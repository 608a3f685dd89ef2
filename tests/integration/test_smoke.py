from __future__ import annotations

import pytest
from kubernetes.client import ApiException

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.wait import wait_for

pytestmark = pytest.mark.cluster


def test_service_artifact_becomes_deployment_and_service(cluster: Cluster, namespace: str,
                                                         operator: object) -> None:
    create_artifact(cluster, namespace, {
        "metadata": {"name": "web"},
        "spec": {"containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}]}]},
    })
    def deployment() -> object:
        try:
            return cluster.apps.read_namespaced_deployment("web-api", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    wait_for(deployment, timeout=30, what="Deployment web-api")
    status = wait_for(lambda: get_artifact(cluster, namespace, "web").get("status", {})
                      .get("phase"), timeout=30, what="a phase")
    assert status in ("Progressing", "Pending")
