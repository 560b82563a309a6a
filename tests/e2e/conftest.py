"""A real kube-apiserver + etcd on loopback (hack/controlplane.py), the CRDs, the operator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OperatorKey
from tests.support import REPO

sys.path.insert(0, str(REPO / "hack"))
from controlplane import ControlPlane

KUBECTL = REPO / ".tools" / "bin" / "kubectl"


class Cluster:
    """kubectl against the test control plane."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.env = {**os.environ, **cp.env()}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [str(KUBECTL), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout if check else proc.stdout + proc.stderr

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json"))

    def wait_for(
        self,
        kind: str,
        name: str,
        namespace: str,
        predicate: Callable[[dict], bool],
        timeout: float = 120,
        selector: str | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        target = ["-l", selector] if selector else [name]
        while time.monotonic() < deadline:
            out = self.kubectl("get", kind, *target, "-n", namespace, "-o", "json", check=False)
            try:
                last = json.loads(out)
            except json.JSONDecodeError:
                last = {}
            if last and predicate(last):
                return last
            time.sleep(0.5)
        raise AssertionError(f"{kind}/{name} never matched; last seen: {json.dumps(last)[:3000]}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cp = ControlPlane(state_dir=tmp_path_factory.mktemp("cluster"))
    cp.start(pods=True)
    try:
        c = Cluster(cp)
        c.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
        yield c
    finally:
        cp.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    # The operator may be gone: drop finalizers so deletion never hangs.
    for kind in ("distributedjobs", "quantumnodes", "entanglementlinks"):
        out = cluster.kubectl("get", kind, "-n", name, "-o", "name", check=False)
        for obj in out.split():
            if "/" in obj:
                cluster.kubectl(
                    "patch",
                    obj,
                    "-n",
                    name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


class OperatorProcess:
    """`qorch operator` as a real child process, so a test can kill it."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log: Path,
        key_file: Path,
        *,
        more_namespaces: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
        pid_1: bool = False,
    ) -> None:
        self.cluster, self.namespace, self.log = cluster, namespace, log
        self.key_file = key_file
        self.more_namespaces = more_namespaces
        self.extra_env = extra_env or {}
        # As in a container: PID 1 of a PID namespace of its own, where a signal without a
        # handler is dropped rather than ending the process.
        self.pid_1 = pid_1
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.liveness = f"http://127.0.0.1:{sock.getsockname()[1]}/healthz"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        _STARTED.append(self)
        env = {
            **self.cluster.env,
            "QORCH_NODE_CHECK_SECONDS": "1",
            "QORCH_LINK_CHECK_SECONDS": "1",
            "QORCH_CALIBRATION_SECONDS": "3",
            "QORCH_METRICS_PORT": "0",
            "QORCH_CAPACITY_RETRY_SECONDS": "0.5",
            "QORCH_IDENTITY_KEY_FILE": str(self.key_file),
            **self.extra_env,
        }
        watched = [arg for ns in (self.namespace, *self.more_namespaces) for arg in ("-n", ns)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(["unshare", "--pid", "--fork", "--kill-child"] if self.pid_1 else []),
                    sys.executable,
                    "-m",
                    "qorch",
                    "--log-level",
                    "INFO",
                    "operator",
                    *watched,
                    "--liveness",
                    self.liveness,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def main_pid(self) -> int:
        """The host pid of the operator itself (under `unshare` when `pid_1`)."""
        assert self.proc is not None
        if not self.pid_1:
            return self.proc.pid
        deadline = time.monotonic() + 10
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while not (found := children.read_text().split()):
            assert time.monotonic() < deadline, "unshare started no operator"
            time.sleep(0.05)
        return int(found[0])

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the operator itself; SIGKILL if it has not ended within timeout."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.main_pid(), signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


#: Lines of an operator's log attached to the report of a test that failed with it.
LOG_TAIL_LINES = 300
#: The operators started while the current test ran (by fixtures or by the test itself).
_STARTED: list[OperatorProcess] = []


@pytest.fixture(autouse=True)
def _operators_of_this_test() -> Iterator[None]:
    _STARTED.clear()
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries the tail of each operator's log it ran: a failure in
    CI can then be read from its output alone."""
    report = yield
    if report.failed:
        shown: set[Path] = set()
        for op in _STARTED:
            if op.log.exists() and op.log not in shown:
                shown.add(op.log)
                tail = op.output().splitlines()[-LOG_TAIL_LINES:]
                report.sections.append((f"{op.log} (last {len(tail)} lines)", "\n".join(tail)))
    return report


@pytest.fixture
def operator(
    cluster: Cluster, namespace: str, tmp_path: Path, operator_key: OperatorKey
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster, namespace, tmp_path / "operator.log", operator_key.key_file)
    op.start()
    yield op
    op.stop()
