from __future__ import annotations

import pytest

from ..conftest import Cluster, create_artifact, get_artifact
from ..support.wait import found, wait_for

pytestmark = pytest.mark.cluster


def test_service_artifact_becomes_deployment_and_service(cluster: Cluster, namespace: str,
                                                         operator: object) -> None:
    create_artifact(cluster, namespace, {
        "metadata": {"name": "web"},
        "spec": {"containerGroups": [{"name": "api", "containers": [
            {"name": "app", "imageUri": "nginx:1.27", "primary": True, "port": 8080}]}]},
    })
    wait_for(lambda: found(cluster.apps.read_namespaced_deployment, "web-api", namespace),
             timeout=30, what="Deployment web-api")
    status = wait_for(lambda: get_artifact(cluster, namespace, "web").get("status", {})
                      .get("phase"), timeout=30, what="a phase")
    assert status in ("Progressing", "Pending")
