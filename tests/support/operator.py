"""Run `artifact-operator run` as users run it: a separate process with a kubeconfig."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .controlplane import free_port
from .wait import wait_for


class OperatorProcess:
    """`artifact-operator run` for `namespaces` (None: all) with `kubeconfig`, its output in
    `log_path`; `env` adds to the environment (settings: `ARTIFACT_OPERATOR_*`), `args` to
    the command line.

    As a context manager it is started on entry (returning once /readyz answers) and, on
    exit, stopped and the end of its log printed, which pytest shows with a failing test:

        with OperatorProcess(kubeconfig, [namespace], tmp_path / "operator.log") as proc:
            ...
    """

    def __init__(self, kubeconfig: Path, namespaces: list[str] | None, log_path: Path,
                 env: dict[str, str] | None = None, args: list[str] | None = None,
                 user: int | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.env = env or {}
        self.args = args or []
        # Seen by the process as its uid and gid, like an image's USER. A user namespace maps
        # it, so the process keeps our file access (the interpreter may live under /root).
        self.user = user
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> OperatorProcess:
        # Free ports of our own: the defaults (8080, 8081) would clash between operators.
        cmd = [sys.executable, "-m", "artifact_operator", "run", "--bind-address", "127.0.0.1",
               "--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port),
               *self.args]
        for ns in self.namespaces or []:
            cmd += ["--namespace", ns]
        if not self.namespaces:
            cmd.append("--all-namespaces")
        if self.user is not None:
            cmd = ["unshare", "--user", f"--map-user={self.user}", f"--map-group={self.user}",
                   *cmd]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        wait_for(self._healthy, timeout=timeout, what="operator readiness endpoint")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"operator exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/readyz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_stopped(self) -> None:
        if self.proc is not None:
            self.proc.wait(30)

    def print_logs(self, tail: int = 20000) -> None:
        """The last `tail` characters of the log, on stdout (pytest shows them on failure)."""
        print(f"---- operator log {self.log_path} ----\n" + self.logs()[-tail:])

    def __enter__(self) -> OperatorProcess:
        try:
            return self.start()
        except BaseException:  # e.g. not ready in time: not left running, its log shown
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.print_logs()


def pause(seconds: float) -> None:
    """Only for tests that must show that nothing happens over a stretch of time."""
    time.sleep(seconds)
