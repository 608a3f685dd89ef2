"""A real Kubernetes control plane on loopback, started from envtest-style assets.

etcd, kube-apiserver and kube-controller-manager are started as child processes on free ports,
with a token file for an admin user (and any extra users a test needs), and torn down on stop().
The same class backs the pytest fixtures, the e2e tier and the benchmark.

With `node_ip` it is started for pods that talk to it (the "in-cluster" mode of
../shared/k8s/README.md): the API server listens on every address of the private network
namespace and advertises `node_ip` as the `kubernetes` Service's endpoint, ServiceAccount
admission mounts tokens into pods, and the controller manager also runs the endpoint and Job
controllers that a real node's Services and Jobs need. Only ever inside netns.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ADMIN_TOKEN = "admintoken"

# Users the tests authenticate as with their own tokens (token, user, groups).
DEFAULT_USERS: tuple[tuple[str, str, str], ...] = (
    (ADMIN_TOKEN, "admin", "system:masters"),
)

# pvc-protection as in every real cluster: a deleted claim goes only once no scheduled pod
# mounts it (the API server adds its finalizer to every claim).
CONTROLLERS = (
    "deployment,replicaset,garbagecollector,namespace,serviceaccount,"
    "serviceaccount-token,persistentvolume-binder,persistentvolume-expander,pvc-protection,"
    "horizontalpodautoscaling"
)
# With a real node: Services get endpoints (kube-proxy routes by them), and Jobs run.
NODE_CONTROLLERS = CONTROLLERS + ",endpoint,endpointslice,job"


def default_assets() -> Path | None:
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "k8s" / "bin"
        if (candidate / "kube-apiserver").exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class ControlPlane:
    assets: Path
    users: tuple[tuple[str, str, str], ...] = DEFAULT_USERS
    extra_apiserver_args: list[str] = field(default_factory=list)
    extra_kcm_args: list[str] = field(default_factory=list)
    audit: bool = False
    # The node's address (netns.sh's NODE_IP) for the in-cluster mode; None: loopback only.
    node_ip: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="artifact-cp-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _args: dict[str, list[str]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        # In-cluster mode: the serving certificate names the node IP, not 127.0.0.1.
        return f"https://{self.node_ip or '127.0.0.1'}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def kubeconfig_for(self, token: str, name: str) -> Path:
        """A kubeconfig that authenticates with `token` (a user from `users`, or a SA token)."""
        path = self.workdir / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(self._kubeconfig_doc(token)))
        return path

    def _kubeconfig_doc(self, token: str) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
            "current-context": "local",
        }

    def start(self, timeout: float = 90.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self._args[name] = args
        self.processes[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        """SIGKILL one of the control plane's processes (a crash, not a shutdown)."""
        proc = self.processes[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def revive(self, name: str, timeout: float = 90.0) -> None:
        """Start a killed process again, as it was (same ports, same etcd data)."""
        self._spawn(name, self._args[name])
        if name == "kube-apiserver":
            self._wait_ready(timeout)

    def restart(self, name: str, timeout: float = 90.0) -> None:
        self.kill(name)
        self.revive(name, timeout)

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process holds its connections and answers nothing (a hung server)."""
        os.killpg(self.processes[name].pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGCONT)

    def _start(self, timeout: float) -> None:
        for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
            if not (self.assets / binary).exists():
                raise ControlPlaneError(f"{binary} not found in {self.assets}")
        d = self.workdir
        (d / "certs").mkdir(exist_ok=True)
        subprocess.run(["openssl", "genrsa", "-out", str(d / "sa.key"), "2048"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(d / "sa.key"), "-pubout",
                        "-out", str(d / "sa.pub")], check=True, capture_output=True)
        (d / "tokens.csv").write_text(
            "".join(f'{tok},{user},{user},"{groups}"\n' for tok, user, groups in self.users)
        )
        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            str(self.assets / "etcd"), "--data-dir", str(d / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
        ])
        self.port = free_port()
        if self.node_ip is None:
            network = ["--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                       "--endpoint-reconciler-type", "none",
                       # No pods run, so none needs a token mounted.
                       "--disable-admission-plugins", "ServiceAccount"]
        else:
            # Pods reach the API server through the `kubernetes` Service, whose endpoint the
            # lease reconciler keeps at the advertised node IP; logs/exec reach the kubelet on
            # the node's InternalIP. ServiceAccount admission stays on (the default).
            network = ["--bind-address", "0.0.0.0", "--advertise-address", self.node_ip,
                       "--endpoint-reconciler-type", "lease",
                       "--kubelet-preferred-address-types", "InternalIP,Hostname"]
        args = [
            str(self.assets / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
            *network, "--secure-port", str(self.port),
            "--cert-dir", str(d / "certs"), "--token-auth-file", str(d / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-key-file", str(d / "sa.pub"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--allow-privileged",
        ]
        if self.audit:
            policy = d / "audit-policy.yaml"
            # Metadata level for writes is enough to count them by user, verb and resource.
            policy.write_text(yaml.safe_dump({
                "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [
                    {"level": "Metadata",
                     "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
                    {"level": "None"},
                ],
            }))
            args += ["--audit-policy-file", str(policy), "--audit-log-path", str(self.audit_log),
                     "--audit-log-mode", "blocking", "--audit-log-format", "json",
                     # 0 means lumberjack's 100 MB, and a rotation makes the readers that
                     # count lines from a mark see no writes at all (the bench at N=3000).
                     "--audit-log-maxsize", "1000000"]
        self._spawn("kube-apiserver", args + self.extra_apiserver_args)
        self._wait_ready(timeout)
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig_doc(ADMIN_TOKEN)))
        self._spawn("kube-controller-manager", [
            str(self.assets / "kube-controller-manager"),
            "--kubeconfig", str(self.kubeconfig), "--bind-address", "127.0.0.1",
            "--secure-port", "0", "--port", "0", "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--controllers", CONTROLLERS if self.node_ip is None else NODE_CONTROLLERS,
            "--service-account-private-key-file", str(d / "sa.key"),
            "--root-ca-file", str(self.ca_file),
            *self.extra_kcm_args,
        ])

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")
            if self.ca_file.exists():
                ctx = ssl.create_default_context(cafile=str(self.ca_file))
                req = urllib.request.Request(
                    f"{self.url}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                try:
                    with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                        if resp.status == 200:
                            return
                except (urllib.error.URLError, OSError) as exc:
                    last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout}s: {last}")

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
