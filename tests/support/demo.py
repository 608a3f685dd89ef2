"""`make demo`: a local cluster with a real node, the operator, and deploy/samples/ Ready.

The e2e tier's harness, kept running: inside netns.sh's private network namespace (the
Makefile wraps this), the control plane (tests/support/controlplane.py) and a real node
(tests/support/node.py: containerd, kubelet, kube-proxy), the test-time images imported; the
CRD applied as README.md says; `artifact-operator run --all-namespaces` as a process; the
samples applied to `default` with local images (tests/support/local_samples.py). It prints
`kubectl get art` as it changes until every sample is Ready, says how to talk to the cluster,
and stays up until Ctrl-C or SIGTERM (`make demo-stop`), then stops all of it.

    python -m tests.support.demo --images DIR --state .demo
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import yaml
from kubernetes import client, config

from . import images, local_samples
from .controlplane import ControlPlane, default_assets
from .node import NODE_IP, Node, in_private_netns
from .operator import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "default"
READY_TIMEOUT = 300.0


def say(text: str = "") -> None:
    print(text, flush=True)


def kubectl(kubeconfig: Path, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], input=input,
                          capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="`make e2e-images` output")
    parser.add_argument("--state", type=Path, required=True,
                        help="where to write pid, kubeconfig and logs for demo-shell/demo-stop")
    args = parser.parse_args(argv)
    if not in_private_netns():
        sys.exit(f"run inside netns.sh (no node0 with {NODE_IP}): use `make demo`")
    assets = default_assets()
    if assets is None:
        sys.exit("no Kubernetes binaries: set KUBEBUILDER_ASSETS (default ../shared/k8s/bin)")
    built = images.load(args.images)
    missing = {"sample", "nim"} - set(built)
    if missing:
        sys.exit(f"{args.images} lacks images {sorted(missing)}: run `make e2e-images`")
    signal.signal(signal.SIGTERM, _stop)
    state = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state / "volumes", ignore_errors=True)  # a fresh cluster, fresh claims
    started = time.monotonic()
    cp = ControlPlane(assets, node_ip=NODE_IP)
    node = Node(images.node_dir(), cp.workdir / "node", cp.kubeconfig)
    operator: OperatorProcess | None = None
    try:
        say("starting the control plane (etcd, kube-apiserver, kube-controller-manager) ...")
        cp.start()
        say("starting the node (containerd, kubelet, kube-scheduler, kube-proxy) ...")
        node.start()
        for image in built.values():
            images.import_into_containerd(image, node.containerd_socket)
        kubeconfig = state / "kubeconfig"
        kubeconfig.write_text(cp.kubeconfig.read_text())
        say("kubectl apply --validate=false -f crds/")
        kubectl(kubeconfig, "apply", "--validate=false", "-f", str(REPO / "crds"))
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
                "crd/artifacts.workload.dev")
        say(f"artifact-operator run --all-namespaces   (log: {state / 'operator.log'})")
        operator = OperatorProcess(kubeconfig, None, state / "operator.log").start()
        refs = {name: image.ref for name, image in built.items()}
        needs, samples = local_samples.manifests(refs, NAMESPACE, state / "volumes")
        api = config.new_client_from_config(str(kubeconfig))
        local_samples.advertise_gpus(client.CoreV1Api(api), node.name,
                                     local_samples.gpus_needed(samples))
        api.close()
        kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all(needs))
        say("kubectl apply -f deploy/samples/   (with local stand-ins for the images)")
        say(kubectl(kubeconfig, "-n", NAMESPACE, "apply", "-f", "-",
                    input=yaml.safe_dump_all(samples)).stdout.rstrip())
        _watch_until_ready(kubeconfig, [s["metadata"]["name"] for s in samples], started)
        (state / "pid").write_text(f"{os.getpid()}\n")
        _how_to_talk(kubeconfig, state)
        signal.pause()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:
        say("\nstopping ...")
    finally:
        try:
            if operator is not None:
                operator.stop()
            node.stop()
        finally:
            cp.stop()
        (state / "pid").unlink(missing_ok=True)
    say("stopped")
    return 0


def _watch_until_ready(kubeconfig: Path, names: list[str], started: float) -> None:
    """Print `kubectl get art` whenever a row changes (but for its AGE) until all are Ready."""
    say()
    shown: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        phases = kubectl(kubeconfig, "-n", NAMESPACE, "get", "art", "-o",
                         "jsonpath={range .items[*]}{.status.phase}{'\\n'}{end}",
                         check=False).stdout.split()
        ready = len(phases) == len(names) and set(phases) == {"Ready"}
        table = kubectl(kubeconfig, "-n", NAMESPACE, "get", "art", check=False).stdout
        rows = [line.rsplit(None, 1)[0] for line in table.splitlines() if line.strip()]
        if rows != shown or ready:
            say(f"--- {time.monotonic() - started:.0f} s: kubectl get art")
            say(table.rstrip())
            shown = rows
        if ready:
            say(f"--- all {len(names)} samples Ready after {time.monotonic() - started:.0f} s")
            return
        time.sleep(2)
    say(f"--- not all Ready after {READY_TIMEOUT:.0f} s; see `kubectl describe art` "
        "(make demo-shell) and the operator log")


def _how_to_talk(kubeconfig: Path, state: Path) -> None:
    service = kubectl(kubeconfig, "-n", NAMESPACE, "get", "service", "web-api", "-o",
                      "jsonpath={.spec.clusterIP}", check=False).stdout.strip()
    say(f"""
The cluster lives in a private network namespace (nothing outside can reach it).
In another terminal, in this directory:

  make demo-shell                  # a shell inside it, KUBECONFIG set (exit to leave)
    kubectl get art,deploy,svc,pods,pvc
    kubectl describe art web
    curl http://{service or '<web-api cluster IP>'}:8080/ready      # the web sample's Service
    kubectl edit art web           # the operator rolls the change out
  tail -f {state / 'operator.log'}

Stop it: Ctrl-C here, or `make demo-stop`.""")


if __name__ == "__main__":
    sys.exit(main())
