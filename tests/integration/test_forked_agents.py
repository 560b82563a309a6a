"""Agents forked from `qorch run`'s fork server run as a new `qorch qpu-agent` process would:
in the caller's environment and folder at the time, not the server's from when it started."""

from __future__ import annotations

import pytest

from qorch.channel.identity import Identity
from qorch.local.agents import AgentProcess, fork, start_forkserver
from tests.support import make_node


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
