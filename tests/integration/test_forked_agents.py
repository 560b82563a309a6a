"""Agents forked from `qorch run`'s fork server run as a new `qorch qpu-agent` process would:
in the caller's environment and folder at the time, not the server's from when it started."""

from __future__ import annotations

import asyncio
import signal

import pytest

from qorch import cli
from qorch.channel.identity import Identity
from qorch.local.agents import AgentProcess, fork, start_forkserver
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


def test_runs_in_one_process_share_its_fork_server(capsys):
    """`main` leaves the process's fork server and its socket to the process: only the
    `qorch` executable, which ends the process after one command, removes the socket's
    folder."""
    quickstart = str(REPO / "examples" / "quickstart")
    assert cli.main(["run", quickstart]) == 0
    assert cli.main(["run", quickstart]) == 0
    assert capsys.readouterr().out.count("ghz: Succeeded") == 2
