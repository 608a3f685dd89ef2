"""The e2e tier: the operator installed the way users install it, on a node whose pods run.

By default (`make e2e`) the session starts, inside netns.sh's private network namespace, the
control plane in its in-cluster mode (pods reach the API server; tests/support/controlplane.py
with `node_ip`) and a real node (../shared/k8s/node/node.sh: containerd, kubelet, scheduler,
kube-proxy), and imports the test-time images (tests/support/images.py) into the node's
containerd. The test process is inside that namespace too and reaches pod IPs directly.

With ARTIFACT_TEST_USE_KUBECONFIG=1 the same tests run against the cluster in KUBECONFIG
(kind, or any other): the images are pushed to ARTIFACT_TEST_IMAGE_REGISTRY with skopeo, or
loaded by the command in ARTIFACT_TEST_IMAGE_LOAD (`{archive}` is replaced by each image's
archive, e.g. `kind load image-archive {archive}`), and pods are reached through the API
server's pod proxy. Under CI=true a node that cannot start fails the run; nothing is skipped.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from ..conftest import Cluster, _unavailable
from ..support import images
from ..support.controlplane import ControlPlane, ControlPlaneError, default_assets
from ..support.node import NODE_IP, Node, NodeError, in_private_netns
from .support import E2E

_SUMMARY: list[str] = []


def _built_images() -> dict[str, images.BuiltImage]:
    """The images `make e2e` built before entering the namespace (ARTIFACT_E2E_IMAGES), or
    built now (needs the package registries, so only outside the private namespace)."""
    prebuilt = os.environ.get("ARTIFACT_E2E_IMAGES")
    if prebuilt and (Path(prebuilt) / "images.json").exists():
        built = images.load(Path(prebuilt))
        missing = set(images.IMAGES) - set(built)
        if not missing:
            return built
        _unavailable(f"{prebuilt} lacks images {sorted(missing)}: run `make e2e-images`")
    out = Path(tempfile.mkdtemp(prefix="artifact-e2e-images-"))
    try:
        return images.build(list(images.IMAGES), out)
    except (images.ImageBuildError, OSError) as exc:
        _unavailable(f"cannot build the test images ({exc}); `make e2e` builds them first")
        raise


@pytest.fixture(scope="session")
def built_images() -> dict[str, images.BuiltImage]:
    return _built_images()


@pytest.fixture(scope="session")
def e2e(built_images: dict[str, images.BuiltImage],
        request: pytest.FixtureRequest) -> Iterator[E2E]:
    if os.environ.get("ARTIFACT_TEST_USE_KUBECONFIG") == "1":
        yield from _kubeconfig_cluster(built_images)
    else:
        yield from _local_node(built_images, request.session)


def _local_node(built: dict[str, images.BuiltImage], session: pytest.Session) -> Iterator[E2E]:
    if not in_private_netns():
        _unavailable(f"not inside netns.sh's network namespace (no node0 with {NODE_IP}): "
                     "run `make e2e`, or set ARTIFACT_TEST_USE_KUBECONFIG=1")
    assets = default_assets()
    if assets is None:
        _unavailable("KUBEBUILDER_ASSETS is not set and ../shared/k8s/bin does not exist")
    assert assets is not None
    cp = ControlPlane(assets, node_ip=NODE_IP)
    node = Node(images.node_dir(), cp.workdir / "node", cp.kubeconfig)
    # One finally for every path out, failures and interrupts included: containerd's shims
    # and mounts outlive the tests otherwise.
    try:
        try:
            cp.start()
            node.start()
            for image in built.values():
                images.import_into_containerd(image, node.containerd_socket)
        except (ControlPlaneError, NodeError, images.ImageBuildError, OSError,
                subprocess.TimeoutExpired) as exc:
            _unavailable(f"the node did not start: {exc}")
        api = config.new_client_from_config(str(cp.kubeconfig))
        refs = {name: image.ref for name, image in built.items()}
        env = E2E(Cluster(cp.kubeconfig, api, cp), refs, built, pod_access="direct", node=node)
        _SUMMARY.append(f"{env.server_version()} with a real node ({node.name}, containerd, "
                        f"kubelet) at {cp.url}")
        try:
            yield env
        finally:
            api.close()
            if session.testsfailed:  # the logs go with the control plane's directory
                for component in ("kubelet", "containerd"):
                    print(f"---- {component} ----\n{node.log_tail(component)}")
    finally:
        try:
            node.stop()
        finally:
            cp.stop()


def _kubeconfig_cluster(built: dict[str, images.BuiltImage]) -> Iterator[E2E]:
    kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    registry = os.environ.get("ARTIFACT_TEST_IMAGE_REGISTRY")
    load = os.environ.get("ARTIFACT_TEST_IMAGE_LOAD")
    refs: dict[str, str] = {}
    for name, image in built.items():
        if registry:
            refs[name] = images.push(image, registry)
        elif load:
            subprocess.run(shlex.split(load.format(archive=image.archive)), check=True)
            refs[name] = image.ref
        else:
            _unavailable("a KUBECONFIG cluster needs ARTIFACT_TEST_IMAGE_REGISTRY or "
                         "ARTIFACT_TEST_IMAGE_LOAD to get the test images")
    api = config.new_client_from_config(str(kubeconfig))
    env = E2E(Cluster(kubeconfig, api, None), refs, built, pod_access="proxy", node=None)
    _SUMMARY.append(f"{env.server_version()} from KUBECONFIG ({api.configuration.host})")
    try:
        yield env
    finally:
        api.close()


@pytest.fixture(scope="session")
def cluster(e2e: E2E) -> Cluster:
    """The root conftest's `namespace` fixture (and its helpers) work on the e2e cluster."""
    return e2e.cluster


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the e2e tests ran, so a CI log shows they met real pods."""
    ran = [r for key in ("passed", "failed", "error") for r in terminalreporter.stats.get(key, [])
           if "e2e" in getattr(r, "keywords", {}) and getattr(r, "when", "") == "call"]
    if _SUMMARY:
        terminalreporter.write_line(f"{len(ran)} e2e tests ran on {_SUMMARY[0]}")
