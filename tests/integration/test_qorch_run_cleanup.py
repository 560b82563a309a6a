"""An interrupted or failed `qorch run` leaves no agent running and no folder of keys behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qorch.api.manifests import load_manifests
from qorch.local import runner
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart"


def agent_pids(parent: int) -> set[int]:
    """Live `qorch qpu-agent` processes whose parent is `parent`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] != "Z" and b"qpu-agent" in cmdline:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("qorch-run-"))


def slow_job() -> str:
    """A job that runs for tens of seconds: mid-circuit measurements make the simulator run
    every shot on its own."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', "qreg q[6];", "creg c[6];"]
    for layer in range(15):
        lines += [f"rx(0.{layer % 9 + 1}) q[{q}];" for q in range(6)]
        lines += [f"cx q[{q}], q[{q + 1}];" for q in (0, 2, 4, 1, 3)]
        if layer % 3 == 0:
            lines.append(f"measure q[{layer % 6}] -> c[{layer % 6}];")
    lines.append("measure q -> c;")
    qasm = "".join(f"      {line}\n" for line in lines)
    return (
        "apiVersion: qorch.dev/v1alpha1\nkind: DistributedJob\nmetadata: {name: slow}\n"
        f"spec:\n  shots: 20000\n  strategy: single\n  circuit:\n    qasm: |\n{qasm}"
    )


@pytest.fixture
def slow_quickstart(tmp_path) -> Path:
    """The quickstart's nodes with a job long enough that the run is still going when
    signalled."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "nodes.yaml").write_text((QUICKSTART / "nodes.yaml").read_text())
    (manifests / "slow-job.yaml").write_text(slow_job())
    return manifests


def start_run(manifests: Path, tmpdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qorch", "run", str(manifests)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    ("signum", "moment"),
    [
        (signal.SIGTERM, "agents up"),
        (signal.SIGINT, "agents up"),
        (signal.SIGHUP, "agents up"),
        (signal.SIGTERM, "agents starting"),
        (signal.SIGINT, "agents starting"),
    ],
)
def test_a_signal_stops_the_agents_and_removes_the_keys(tmp_path, slow_quickstart, signum, moment):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_run(slow_quickstart, tmpdir)
    try:
        assert proc.stdout is not None
        output: list[str] = []
        if moment == "agents up":  # both nodes answered their first health check
            while sum("Ready" in line for line in output if line.startswith("[")) < 2:
                line = proc.stdout.readline()
                assert line, "".join(output)
                output.append(line)
        agents: set[int] = set()

        def both_agents_started() -> bool:
            agents.update(agent_pids(proc.pid))
            return len(agents) == 2

        wait_for(both_agents_started, "two agents")
        assert leftovers(tmpdir), "the run keeps its keys in a qorch-run-* folder"
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output.append(rest)
    assert proc.returncode == 128 + signum, "".join(output)
    assert f"stopped by {signal.Signals(signum).name}" in rest
    assert "Traceback" not in rest, rest
    assert not [pid for pid in agents if alive(pid)], "agents outlived the run"
    assert leftovers(tmpdir) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_an_exception_after_the_agents_started_still_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    async def broken(self, calibrate=True, probe_links=True):
        self.started = agent_pids(os.getpid())
        raise RuntimeError("observation failed")

    monkeypatch.setattr(runner.EmbeddedControlPlane, "observe", broken)
    seen: list[runner.EmbeddedControlPlane] = []
    original = runner.EmbeddedControlPlane.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(runner.EmbeddedControlPlane, "__init__", recording)
    with pytest.raises(RuntimeError, match="observation failed"):
        await runner.run(load_manifests([QUICKSTART]))
    (plane,) = seen
    assert len(plane.started) == 2
    await asyncio.sleep(0)
    assert not [pid for pid in plane.started if alive(pid)]
    assert leftovers(tmp_path) == []


def agents_using(folder: Path) -> list[int]:
    """Live `qorch qpu-agent` processes whose arguments name a file under `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (
                b"qpu-agent" in cmdline
                and str(folder).encode() in cmdline
                and alive(int(entry.name))
            ):
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_arguments_found_unusable_while_the_agents_start_leave_nothing_behind(tmp_path):
    """The agents start before the policy is validated (its imports take as long as
    theirs): a policy that does not validate still ends the run with exit 2, its agents
    stopped and its keys removed."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text("maxQubits: lots\n")
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", str(QUICKSTART), "--policy", str(policy)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"run: policy {policy} is invalid" in proc.stderr and "maxQubits" in proc.stderr
    assert "starting 2 QPU agent(s)" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert agents_using(tmpdir) == []
    assert leftovers(tmpdir) == []
