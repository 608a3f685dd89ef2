"""A real node next to the control plane: ../shared/k8s/node/node.sh (containerd, runc, a CNI
bridge, kubelet, kube-scheduler, kube-proxy, cluster DNS), inside netns.sh's private network
namespace. `start` returns once the Node is Ready; `stop` ends exactly what `start` started."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "node-1"
# netns.sh's defaults; node.sh and netns.sh read the same variables.
NODE_IP = os.environ.get("NODE_IP", "10.200.0.1")


class NodeError(RuntimeError):
    pass


def in_private_netns(node_ip: str = NODE_IP) -> bool:
    """True inside netns.sh: its namespace has the interface `node0` holding the node IP (no
    other network namespace here has it, so nothing outside is ever touched)."""
    done = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "node0"],
                          capture_output=True, text=True)
    return done.returncode == 0 and f" {node_ip}/" in done.stdout


@dataclass
class Node:
    script_dir: Path     # ../shared/k8s/node
    workdir: Path        # node.sh's state, logs and pids
    kubeconfig: Path     # an admin kubeconfig on https://NODE_IP:PORT
    name: str = NODE_NAME
    started: bool = False

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def start(self, timeout: float = 180) -> None:
        self.started = True  # from here on, stop() has something to stop, even on failure
        done = subprocess.run(
            [str(self.script_dir / "node.sh"), "start", str(self.workdir), str(self.kubeconfig)],
            capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise NodeError(f"node.sh start failed ({done.returncode}): {done.stderr}"
                            f"{self.log_tail('kubelet')}")

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(self.script_dir / "node.sh"), "stop", str(self.workdir)],
                           capture_output=True, timeout=120)
            self.started = False

    def log_tail(self, component: str, chars: int = 3000) -> str:
        path = self.workdir / f"{component}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
