"""Agents forked from `qorch run`'s fork server run as a new `qorch qpu-agent` process would:
in the caller's environment and folder at the time, not the server's from when it started."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qorch import cli
from qorch.channel.identity import Identity
from qorch.local.agents import NEVER_FORKED, AgentProcess, Forked, fork
from qorch.local.fork_server import start_forkserver
from tests.support import REPO, make_node


def keys(folder):
    """The node's private key file and the operator's public one."""
    key_file, _ = Identity.generate().save(folder / "node")
    _, operator_pub = Identity.generate().save(folder / "operator")
    return key_file, operator_pub


async def test_a_forked_agent_reads_the_environment_of_the_moment_it_is_forked(
    tmp_path, monkeypatch
):
    start_forkserver()  # up before the change below, as in a long test process
    key_file, operator_pub = keys(tmp_path)
    monkeypatch.setenv("QORCH_METRICS_PORT", "not-a-port")
    node = make_node("edge", 4)
    with pytest.raises(RuntimeError, match="QORCH_METRICS_PORT"):
        await AgentProcess.adopt(node, await fork(node, key_file, [operator_pub]))


async def test_a_forked_agent_works_in_the_callers_folder(tmp_path, monkeypatch):
    start_forkserver()
    key_file, operator_pub = keys(tmp_path)
    monkeypatch.chdir(tmp_path)
    node = make_node("edge", 4)
    agent = await AgentProcess.adopt(
        node, await fork(node, key_file.relative_to(tmp_path), [operator_pub])
    )
    assert agent.proc.returncode is None  # listening, with the key read from there
    await agent.stop()
    assert agent.proc.returncode == 0


async def test_a_kill_sent_before_the_fork_is_done_still_kills_it(tmp_path):
    """`fork` returns before the server has forked: a signal sent then waits for the pid, and
    a wait given up on meanwhile loses neither."""
    key_file, operator_pub = keys(tmp_path)
    node = make_node("edge", 4)
    proc = await fork(node, key_file, [operator_pub])
    proc.kill()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(proc.wait(), 0.001)
    assert await asyncio.wait_for(proc.wait(), 120) == -signal.SIGKILL
    assert proc.returncode == -signal.SIGKILL


async def test_an_agent_never_forked_reads_as_such_and_is_logged_once(caplog):
    """A fork that failed (the server gone) is an exit code, 255, however often it is
    waited for, and one warning with its cause."""
    started = asyncio.get_running_loop().create_future()
    process = multiprocessing.get_context("forkserver").Process(target=print)
    proc = Forked(process, asyncio.StreamReader(), started)
    assert proc.returncode is None
    started.set_exception(EOFError("the server went away"))
    assert await proc.wait() == NEVER_FORKED
    assert await proc.wait() == NEVER_FORKED
    await asyncio.sleep(0)  # the future's callbacks
    assert caplog.text.count("forked no agent: EOFError: the server went away") == 1


def test_runs_in_one_process_share_its_fork_server(capsys):
    """`main` leaves the process's fork server and its socket to the process: only the
    `qorch` executable, which ends the process after one command, removes the socket's
    folder."""
    quickstart = str(REPO / "examples" / "quickstart")
    assert cli.main(["run", quickstart]) == 0
    assert cli.main(["run", quickstart]) == 0
    assert capsys.readouterr().out.count("ghz: Succeeded") == 2


RUN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
START_SERVER = """
import multiprocessing.forkserver, sys
from qorch.local.fork_server import start_forkserver
assert start_forkserver()
print(multiprocessing.forkserver._forkserver._forkserver_pid, flush=True)
sys.stdin.read()
"""


def signal_set(status: str, field: str) -> set[int]:
    """The signals of one mask line of /proc/PID/status (`SigBlk`, `SigIgn`)."""
    mask = int(next(line for line in status.splitlines() if line.startswith(field)).split()[1], 16)
    return {signum for signum in range(1, 65) if mask >> (signum - 1) & 1}


def start_script(code: str, tmpdir: Path) -> subprocess.Popen[str]:
    """`python -c CODE` in the repository, reading stdin until killed; a TMPDIR of its own
    keeps the socket folder of a server it leaves behind killed."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )


def sample_signals(server: int) -> list[tuple[set[int], set[int]]]:
    """The server's blocked and ignored signals, sampled from now until it ignores the
    run's signals, and a moment after."""
    samples = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = Path(f"/proc/{server}/status").read_text()
        blocked, ignored = signal_set(status, "SigBlk"), signal_set(status, "SigIgn")
        samples.append((blocked, ignored))
        if set(RUN_SIGNALS) <= ignored:
            deadline = min(deadline, time.monotonic() + 0.5)
        time.sleep(0.001)  # a core left to the server on a loaded machine
    return samples


def assert_never_answers_the_runs_signals(samples: list[tuple[set[int], set[int]]]) -> None:
    assert all(set(RUN_SIGNALS) <= blocked | ignored for blocked, ignored in samples), samples[:3]
    blocked, ignored = samples[-1]
    assert set(RUN_SIGNALS) <= ignored
    assert not set(RUN_SIGNALS) & blocked  # ignored, not left blocked


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_the_fork_server_never_answers_the_runs_signals_not_even_while_it_starts(tmp_path):
    """A Ctrl-C to the run's group reaches its fork server too, from the first instant of
    its interpreter: it must neither die mid-import with a traceback nor end the agents
    past their own shutdown. Each sample of its signal masks, from the moment it exists,
    blocks or ignores every one of them."""
    starter = start_script(START_SERVER, tmp_path)
    try:
        assert starter.stdout is not None
        assert_never_answers_the_runs_signals(sample_signals(int(starter.stdout.readline())))
    finally:
        starter.kill()
        starter.wait()


RESTART_SERVER = """
import multiprocessing.forkserver, os, signal, sys, time
from qorch.local.fork_server import start_forkserver
assert start_forkserver()
first = multiprocessing.forkserver._forkserver._forkserver_pid
os.kill(first, signal.SIGKILL)
while open(f"/proc/{first}/stat").read().split(")")[-1].split()[0] != "Z":
    time.sleep(0.01)
assert start_forkserver()  # as `fork` asks before each agent
print(first, multiprocessing.forkserver._forkserver._forkserver_pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_fork_server_that_died_starts_again_as_the_first_did(tmp_path):
    """Not as multiprocessing would start it from the fork itself, without the run's
    signals held back."""
    starter = start_script(RESTART_SERVER, tmp_path)
    try:
        assert starter.stdout is not None
        first, again = map(int, starter.stdout.readline().split())
        assert again != first
        assert_never_answers_the_runs_signals(sample_signals(again))
    finally:
        starter.kill()
        starter.wait()


INTERRUPTED_START = """
import multiprocessing.forkserver, os, signal
from qorch.local import fork_server
start = multiprocessing.forkserver.ensure_running
def ensure_running():
    os.kill(os.getpid(), signal.SIGINT)  # held back while the server starts
    start()
multiprocessing.forkserver.ensure_running = ensure_running
try:
    fork_server.start_forkserver()
except KeyboardInterrupt:
    print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
"""


def test_a_ctrl_c_while_the_server_starts_arrives_after_and_leaves_the_caller_as_it_was():
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_START],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.stdout.split() == ["[]"], done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "asks"),
    [
        (["run", "examples/quickstart/"], True),
        (["--log-level", "debug", "run", "x"], True),
        (["--log-level=debug", "run", "x", "-o", "json"], True),
        (["run", "x", "--help"], False),
        (["-h"], False),
        (["plan", "run"], False),
        (["--log", "debug", "run", "x"], False),  # an abbreviation: the run starts it itself
        ([], False),
    ],
)
def test_the_server_gets_a_head_start_only_for_a_run(argv: list[str], asks: bool):
    assert cli._asks_for_a_run(argv) is asks


def test_the_command_reaches_the_server_before_its_own_imports():
    """The fork server starts before `main` parses the command line: importing the command
    and the server's starter imports none of what they wait for (0.2 s of it, before the
    server could start, made the start of every run that much later)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, qorch.cli, qorch.local.fork_server;"
            " waited = {'pydantic', 'asyncio', 'qiskit', 'numpy', 'stevedore'};"
            " print(sorted(waited & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
