"""What e2e tests use to act as a user (kubectl with the cluster's kubeconfig) and to look at
pods from outside (HTTP to a pod's port)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from kubernetes import client

from ..conftest import Cluster, install_crd
from ..support import images
from ..support.images import BuiltImage
from ..support.node import Node
from ..support.operator import OperatorProcess
from ..support.wait import until_ok


@dataclass
class HttpAnswer:
    status: int
    body: str


@dataclass
class E2E:
    cluster: Cluster
    refs: dict[str, str]              # image name (images.IMAGES) -> reference pods use
    built: dict[str, BuiltImage]
    # "direct": the test process reaches pod IPs (inside netns.sh); "proxy": through the API
    # server's pod proxy (a cluster elsewhere, whose pod network the test process is not on).
    pod_access: Literal["direct", "proxy"]
    node: Node | None

    @cached_property
    def version(self) -> Any:
        return client.VersionApi(self.cluster.api).get_code()

    @property
    def kube_version(self) -> str:
        return str(self.version.git_version)

    @property
    def minor(self) -> int:
        return int("".join(ch for ch in self.version.minor if ch.isdigit()))

    def server_version(self) -> str:
        return f"kube-apiserver {self.kube_version}"

    def api_versions(self) -> list[str]:
        """The server's discovery, as `helm install` reads it for `.Capabilities`."""
        return self.kubectl("api-versions").stdout.split()

    def pinned(self, name: str) -> str:
        """The reference pods use for image `name`, by digest (the manifest's, which a push
        keeps): how an approved artifact must name its image."""
        return images.pinned(images.containerd_name(self.refs[name]),
                             images.manifest_digest(self.built[name].archive))

    def env(self) -> dict[str, str]:
        """The environment of a user whose kubectl context is this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 240) -> subprocess.CompletedProcess[str]:
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl is needed on PATH"
        done = subprocess.run([kubectl, *args], input=input, capture_output=True, text=True,
                              env=self.env(), timeout=timeout)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def pod_get(self, pod: Any, port: int, path: str) -> HttpAnswer:
        """GET http://<pod IP>:<port><path>, as a Prometheus scrape or a probe would."""
        if self.pod_access == "direct":
            return _get(f"http://{pod.status.pod_ip}:{port}{path}")
        return _proxied(lambda: self.cluster.core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:{port}", pod.metadata.namespace, path.lstrip("/"),
            _preload_content=False))

    def service_get(self, service: Any, port: int, path: str) -> HttpAnswer:
        """GET through a Service's cluster IP (kube-proxy's rules), or the service proxy."""
        if self.pod_access == "direct":
            return _get(f"http://{service.spec.cluster_ip}:{port}{path}")
        return _proxied(lambda: self.cluster.core.connect_get_namespaced_service_proxy_with_path(
            f"{service.metadata.name}:{port}", service.metadata.namespace, path.lstrip("/"),
            _preload_content=False))


def until_200(get: Callable[[], HttpAnswer], what: str, timeout: float = 30) -> HttpAnswer:
    """Poll `get` until it answers 200: a Service's rules and endpoints follow a pod's
    readiness within moments, not at once (refused or timed-out connections, OSErrors such
    as URLError, are retried)."""
    def ok() -> HttpAnswer:
        answer = get()
        assert answer.status == 200, answer
        return answer
    return until_ok(ok, timeout=timeout, what=what, retry=(AssertionError, OSError))


def _get(url: str) -> HttpAnswer:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return HttpAnswer(resp.status, resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read().decode(errors="replace"))


def _proxied(call: Callable[[], Any]) -> HttpAnswer:
    try:
        resp = call()
    except client.ApiException as exc:
        return HttpAnswer(int(exc.status), str(exc.body))
    return HttpAnswer(resp.status, resp.data.decode(errors="replace"))


@contextlib.contextmanager
def job_build_operator(e2e: E2E, log_dir: Path, *, output: str, builder: str,
                       environments: dict[str, str]) -> Iterator[OperatorProcess]:
    """The operator, watching all namespaces, on the Job build engine: builds pushed under
    `output` by the `builder` image (pinned), generated Dockerfiles on `environments` (id/version
    -> base image)."""
    install_crd(e2e.cluster.api)
    with OperatorProcess(
            e2e.cluster.kubeconfig, None, log_dir / "operator.log",
            env={"ARTIFACT_OPERATOR_BUILD_ENGINE": "job",
                 "ARTIFACT_OPERATOR_BUILD_OUTPUT_REPOSITORY": output,
                 "ARTIFACT_OPERATOR_BUILD_BUILDER_IMAGE": builder,
                 "ARTIFACT_OPERATOR_BUILD_EXECUTION_ENVIRONMENTS": json.dumps(environments)},
    ) as proc:
        yield proc


def plugin(e2e: E2E, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl artifact ARGS` (the installed plugin) against the e2e cluster."""
    exe = Path(sys.executable).parent / "kubectl-artifact"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=e2e.env(),
                          timeout=60)
