"""Runs longer than any single exchange with the agent, over the channel to a `qorch
qpu-agent` process: the call's timeout is the program's budget, each exchange is bounded by
the liveness limit, and an agent that stops answering is noticed within that limit."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from qorch.agent_protocol import AgentError, ErrorCode
from qorch.qpu.circuits import encode_circuit
from qorch.qpu.transport import ProgressPolling, SecureAgentClient
from tests.integration.test_agent_cancel_channel import QUBITS, SHOT_BY_SHOT, slow_circuit
from tests.support import make_node

# Small numbers stand in for the defaults (5 s and 30 s). The liveness limit still leaves
# room for the agent being deaf while a chunk of shots runs (half a second, more on a busy
# machine); the program of the first test takes several times as long.
POLLING = ProgressPolling(wait_seconds=0.2, liveness_seconds=2.5)
LONG_SHOTS = 8000


class RecordingClient(SecureAgentClient):
    """Notes the op of every exchange it makes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ops: list[str] = []

    async def _call(self, op: str, payload: dict[str, Any], timeout: float | None) -> Any:
        self.ops.append(op)
        return await super()._call(op, payload, timeout)


def client_for(agent: Any) -> RecordingClient:
    return RecordingClient(
        agent.endpoint, agent.operator.identity, agent.identity.public_key, polling=POLLING
    )


def program(program_id: str, shots: int) -> dict[str, Any]:
    return {"programId": program_id, "circuit": encode_circuit(slow_circuit()), "shots": shots}


async def until_busy(agent: Any) -> None:
    probe = agent.client()
    try:
        async with asyncio.timeout(30):
            while not (await probe.call("health", {}))["busy"]:
                await asyncio.sleep(0.05)
    finally:
        await probe.close()


async def test_a_run_outlasting_the_liveness_limit_succeeds(start_agent) -> None:
    agent = await start_agent(make_node("marathon", QUBITS, noise=SHOT_BY_SHOT))
    client = client_for(agent)
    loop = asyncio.get_running_loop()
    try:
        began = loop.time()
        reply = await client.call("run", program("long", LONG_SHOTS), timeout=300)
        took = loop.time() - began
    finally:
        await client.close()
    assert sum(reply["counts"].values()) == LONG_SHOTS
    assert took > POLLING.liveness_seconds  # longer than any single exchange may last
    assert client.ops[0] == "run" and set(client.ops[1:]) == {"wait"}
    assert len(client.ops) >= 3


async def test_an_agent_that_stops_answering_is_detected_within_the_liveness_limit(
    start_agent,
) -> None:
    agent = await start_agent(make_node("frozen", QUBITS, noise=SHOT_BY_SHOT))
    client = client_for(agent)
    pid = agent.process.proc.pid
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(client.call("run", program("stuck", 50_000), timeout=300))
    try:
        await until_busy(agent)
        async with asyncio.timeout(30):  # progress reports in: the client asks again after each
            while client.ops.count("wait") < 2:
                await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)  # alive to TCP, deaf to everything else
        frozen_at = loop.time()
        with pytest.raises(AgentError) as info:
            await running
        noticed_after = loop.time() - frozen_at
    finally:
        os.kill(pid, signal.SIGCONT)
        await client.close()
    assert info.value.code == ErrorCode.UNREACHABLE
    assert "stopped answering" in info.value.message
    assert "last heard: Running" in info.value.message and "/50000 shots done" in info.value.message
    # Bounded by the liveness limit (plus scheduling), nowhere near the call's 300 s budget.
    assert noticed_after < 10 * POLLING.liveness_seconds


async def test_a_program_outliving_its_budget_times_out_saying_how_far_it_got(
    start_agent,
) -> None:
    agent = await start_agent(make_node("deadline", QUBITS, noise=SHOT_BY_SHOT))
    client = client_for(agent)
    try:
        with pytest.raises(AgentError) as info:
            await client.call("run", program("late", 50_000), timeout=5)
        health = await client.call("health", {})
    finally:
        await client.call("cancel", {"programIds": ["late"]}, timeout=5)
        await client.close()
    assert info.value.code == ErrorCode.TIMEOUT
    assert "was not finished when the call's 5 s ran out" in info.value.message
    assert "/50000 shots done" in info.value.message
    assert health["busy"]  # the agent was fine: only the budget ran out
