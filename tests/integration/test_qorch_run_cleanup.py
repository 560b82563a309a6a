"""An interrupted or failed `qorch run` leaves no agent running and no folder of keys behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from qorch.api.manifests import load_manifests
from qorch.local import runner
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart"


def processes() -> dict[int, list[str]]:
    """Every live process's /proc/PID/stat fields after the command name, and its name last."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry.name)] = [*fields, stat[stat.index("(") + 1 : stat.rindex(")")]]
    return found


def agent_pids(root: int) -> set[int]:
    """Live `qorch qpu-agent` processes that descend from `root` (`qorch run` forks its
    agents from a server it starts)."""
    table = processes()
    below = {root}
    while more := {pid for pid, f in table.items() if int(f[1]) in below} - below:
        below |= more
    return {pid for pid in below - {root} if table[pid][-1] == "qpu-agent"}


def left_in_session(session: int) -> list[int]:
    """Live processes of the session: whatever a run started in its own session left."""
    return [pid for pid, f in processes().items() if int(f[3]) == session]


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


def start_run(
    manifests: Path, tmpdir: Path, stdout: int = subprocess.PIPE, stderr: int = subprocess.STDOUT
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qorch", "run", str(manifests)],
        stdout=stdout,
        stderr=stderr,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        start_new_session=True,
    )


def run_to_end(
    args: list[str], tmpdir: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in the repository, to its end, with a TMPDIR of its own."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        timeout=timeout,
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
    assert list(tmpdir.iterdir()) == []  # keys, and the agents' fork server's socket
    # The agents' fork server ends once nothing holds it.
    wait_for(lambda: not left_in_session(proc.pid), "the run's processes to end", 30)


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


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_arguments_found_unusable_while_the_agents_start_leave_nothing_behind(tmp_path):
    """The agents start before the policy is validated (its imports take as long as
    theirs): a policy that does not validate still ends the run with exit 2, its agents
    stopped and its keys removed."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text("maxQubits: lots\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "qorch", "run", str(QUICKSTART), "--policy", str(policy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        start_new_session=True,  # its session id is its pid
    )
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 2, stdout + stderr
    assert f"run: policy {policy} is invalid" in stderr and "maxQubits" in stderr
    assert "starting 2 QPU agent(s)" in stdout
    assert "Traceback" not in stderr
    wait_for(lambda: not left_in_session(run.pid), "the run's processes to end", 30)
    assert list(tmpdir.iterdir()) == []


def encrypted_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import mldsa

    return mldsa.MLDSA65PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


@pytest.mark.parametrize("kind", ["missing", "malformed", "encrypted"])
def test_an_unusable_identity_key_is_named_and_leaves_nothing_behind(tmp_path, kind):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    key = tmp_path / "operator.key"
    if kind == "malformed":
        key.write_bytes(b"not a key\n")
    elif kind == "encrypted":
        key.write_bytes(encrypted_key())
    done = run_to_end(["-m", "qorch", "run", str(QUICKSTART), "--identity-key", str(key)], tmpdir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("run: --identity-key") and str(key) in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # refused before any agent starts
    assert list(tmpdir.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_run_killed_outright_leaves_no_agent_and_ends_its_output(tmp_path, slow_quickstart):
    """SIGKILL cannot be caught: the run's folder stays, but its agents and their fork
    server end with it, and a reader of its output sees the end at once."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_run(slow_quickstart, tmpdir)
    try:
        assert proc.stdout is not None
        output = []
        while not any("Running" in line for line in output):
            line = proc.stdout.readline()
            assert line, "".join(output)
            output.append(line)
        assert len(agent_pids(proc.pid)) == 2
        proc.kill()
        reader = threading.Thread(target=proc.stdout.read)
        reader.start()
        reader.join(timeout=60)  # forever, when agents held the output open
        assert not reader.is_alive(), "the run's output did not end with it"
        wait_for(lambda: not left_in_session(proc.pid), "the run's processes to end", 60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pid in left_in_session(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.0, 0.5])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_group_while_the_agents_start_stops_the_run_cleanly(
    tmp_path, delay, signum
):
    """A terminal's Ctrl-C or hang-up, or a SIGTERM to the group, reaches every process of
    it, the agents' fork server too, perhaps while it imports their modules."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start_run(QUICKSTART, tmpdir)
    try:
        assert proc.stdout is not None
        output = [proc.stdout.readline()]
        assert "starting 2 QPU agent(s)" in output[0], output
        time.sleep(delay)
        os.killpg(proc.pid, signum)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output.append(rest)
    text = "".join(output)
    assert proc.returncode in (0, 128 + signum), text  # 0: it finished first
    assert "Traceback" not in text, text
    wait_for(lambda: not left_in_session(proc.pid), "the run's processes to end", 30)
    assert list(tmpdir.iterdir()) == []


def test_a_temporary_folder_too_deep_for_a_socket_still_runs(tmp_path):
    """The fork server listens on a socket under TMPDIR, whose path Linux caps at 108
    bytes: the agents are then started as new processes instead."""
    tmpdir = tmp_path / ("d" * 100)
    tmpdir.mkdir()
    done = run_to_end(["-m", "qorch", "run", str(QUICKSTART)], tmpdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ghz: Succeeded" in done.stdout
    assert "spawned, not forked" in done.stderr
    assert list(tmpdir.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path):
    """`qorch run … | head -1`: once the reader has gone, the run stops what it started and
    ends as SIGPIPE ends a tool, without a traceback."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    reading, writing = os.pipe()
    proc = start_run(QUICKSTART, tmpdir, stdout=writing, stderr=subprocess.PIPE)
    os.close(writing)
    with os.fdopen(reading) as output:
        assert "starting 2 QPU agent(s)" in output.readline()
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGPIPE, stderr
    assert "Traceback" not in stderr, stderr
    wait_for(lambda: not left_in_session(proc.pid), "the run's processes to end", 30)
    assert list(tmpdir.iterdir()) == []


def test_a_broken_pipe_that_is_not_its_output_still_shows():
    """Only a closed standard output ends a command quietly: a broken socket or pipe of its
    own is a failure, shown as one."""
    code = (
        "import qorch.cli as cli\n"
        "def main(argv=None):\n"
        "    raise BrokenPipeError(32, 'a peer closed its socket')\n"
        "cli.main = main\n"
        "cli.command()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "a peer closed its socket" in done.stderr


@pytest.mark.parametrize(("command", "said"), [("run", "ghz: Succeeded"), ("plan", "ghz (")])
def test_a_run_whose_predictions_ran_aside_ends_without_a_warning(tmp_path, command, said):
    """Every prediction runs in the planner's simulation process: the command stops it, and
    its queues' named semaphores are released before the exit, which would not (os._exit)."""
    code = (
        "import qorch.planner.prediction as prediction\n"
        "prediction.ASIDE_SECONDS = 0.0\n"
        "import qorch.cli as cli\n"
        f"cli.command([{command!r}, {str(QUICKSTART)!r}])\n"
    )
    done = run_to_end(["-c", code], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert said in done.stdout
    assert "leaked semaphore" not in done.stderr and "Traceback" not in done.stderr, done.stderr


HANGING_SERVER = """
from qorch import cli
from qorch.local import fork_server
fork_server.FORK_SERVER_MODULES.append("hang_on_import")  # a server still importing
{inject}
cli.command({arguments!r})
"""


def hanging_server_run(tmp_path: Path, arguments: list[str], inject: str = "") -> list[str]:
    """`qorch ARGUMENTS` (through `cli.command`, as the executable) whose fork server
    never finishes importing: whatever ends the run must end the server too."""
    (tmp_path / "hang_on_import.py").write_text("import time\ntime.sleep(3600)\n")
    code = HANGING_SERVER.format(inject=inject, arguments=arguments)
    return [sys.executable, "-c", code]


def hanging_env(tmp_path: Path) -> dict[str, str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(tmp_path), "TMPDIR": str(tmpdir)}


@pytest.mark.parametrize(
    ("arguments", "inject", "code", "said"),
    [
        (["run", "{folder}"], "", 2, "unusable manifests"),
        (["run"], "", 2, "the following arguments are required: paths"),  # argparse's exit
        (
            ["run", "{folder}"],
            "def interrupted(*args): raise KeyboardInterrupt\ncli._load_manifests = interrupted",
            128 + signal.SIGINT,
            "qorch: interrupted",
        ),
    ],
    ids=["manifests", "usage", "ctrl-c"],
)
def test_a_run_that_ends_before_its_agents_start_ends_its_server(
    tmp_path, arguments, inject, code, said
):
    """The server starts first of all, and imports for long after a run refused at once (or
    interrupted before it answers Ctrl-C itself): it ends with the run, not holding the
    output open until its imports are done (here: never), and leaves no socket folder."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "node.yaml").write_text("kind: QuantumNode\nspec: {}\n")
    env = hanging_env(tmp_path)
    done = subprocess.run(
        hanging_server_run(tmp_path, [a.format(folder=folder) for a in arguments], inject),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert list(Path(env["TMPDIR"]).iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_run_killed_while_its_server_imports_takes_the_server_with_it(tmp_path):
    """SIGKILL cannot be caught, and before its imports the run cannot answer other
    signals by stopping what it started: the server, tied to the run, ends with it."""
    run = subprocess.Popen(
        hanging_server_run(tmp_path, ["run", str(QUICKSTART)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=hanging_env(tmp_path),
        start_new_session=True,
    )
    try:
        server = lambda: [p for p, f in processes().items() if f[1] == str(run.pid)]  # noqa: E731
        wait_for(lambda: len(left_in_session(run.pid)) >= 3, "the run's tracker and server")
        assert server()
        run.kill()
        run.wait()
        wait_for(lambda: not left_in_session(run.pid), "the run's processes to end", 30)
    finally:
        run.kill()
        run.wait()
