"""Cancel over the authenticated channel, as the operator sends it when a job is deleted or
re-routed: the agent is a `qorch qpu-agent` process and the code reaches every caller."""

from __future__ import annotations

import asyncio

import pytest
from qiskit import QuantumCircuit

from qorch.agent_protocol import AgentError, ErrorCode
from qorch.qpu.circuits import encode_circuit
from tests.support import deep_circuit, make_node

QUBITS = 10
# Gate noise: every shot is simulated on its own (a noiseless node defers the mid-circuit
# measurement and draws all shots from one simulation).
SHOT_BY_SHOT = {"twoQubitError": 0.001}


def slow_circuit() -> QuantumCircuit:
    """Non-Clifford with a mid-circuit measurement: ~1 ms a shot on a SHOT_BY_SHOT node."""
    qc = QuantumCircuit(QUBITS, QUBITS)
    for layer in range(4):
        for q in range(QUBITS):
            qc.rx(0.3 + 0.1 * q + layer, q)
        for q in range(layer % 2, QUBITS - 1, 2):
            qc.cx(q, q + 1)
    qc.measure(0, 0)
    qc.h(0)
    qc.measure(range(QUBITS), range(QUBITS))
    return qc


async def until_held(client, program_id: str) -> None:
    """Until the agent holds `program_id` (its run call reached the agent)."""
    async with asyncio.timeout(30):
        while True:
            try:
                await client.call("wait", {"programId": program_id, "waitSeconds": 0}, timeout=5)
                return
            except AgentError as error:
                if error.code != ErrorCode.UNKNOWN_PROGRAM:
                    raise
            await asyncio.sleep(0.05)


async def test_cancelled_programs_fail_with_cancelled_for_every_caller(start_agent):
    agent = await start_agent(make_node("cancel-me", QUBITS, noise=SHOT_BY_SHOT))
    runner, queuer, operator = agent.client(), agent.client(), agent.client()
    encoded = encode_circuit(slow_circuit())

    async def run(client, program_id: str, shots: int) -> dict:
        body = {"programId": program_id, "circuit": encoded, "shots": shots}
        return await client.call("run", body, timeout=120)

    try:
        # The queuer's channel first, and a running program of about a minute: it must
        # still run once the queued one has reached the agent, however loaded the machine.
        await queuer.call("health", {})
        running = asyncio.create_task(run(runner, "job/1/p0", 60_000))
        async with asyncio.timeout(30):
            while not (await operator.call("health", {}))["busy"]:
                await asyncio.sleep(0.05)
        queued = asyncio.create_task(run(queuer, "job/1/cut-b", 100))
        await until_held(operator, "job/1/cut-b")

        reply = await operator.call(
            "cancel", {"programIds": ["job/1/p0", "job/1/cut-b", "job/0/p0"]}, timeout=5
        )
        assert sorted(reply["cancelled"]) == ["job/1/cut-b", "job/1/p0"]
        assert reply["unknown"] == ["job/0/p0"] and reply["finished"] == []
        for task in (running, queued):
            with pytest.raises(AgentError) as info:
                await task
            assert info.value.code == ErrorCode.CANCELLED
        with pytest.raises(AgentError) as info:
            await run(operator, "job/1/cut-b", 100)
        assert info.value.code == ErrorCode.CANCELLED
        health = await operator.call("health", {})
    finally:
        for client in (runner, queuer, operator):
            await client.close()
    assert health["programsRun"] == 0 and not health["busy"]


async def test_a_cancel_that_kills_the_simulation_process_leaves_the_agent_serving(start_agent):
    agent = await start_agent(make_node("long-run", 18))
    client = agent.client()
    body = {"programId": "job/1/p0", "circuit": encode_circuit(deep_circuit(18, 400)), "shots": 100}
    try:
        running = asyncio.create_task(client.call("run", body, timeout=300))
        async with asyncio.timeout(60):
            while not (await client.call("health", {}, timeout=5))["busy"]:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # in the simulation process by now
        reply = await client.call("cancel", {"programIds": ["job/1/p0"]}, timeout=5)
        assert reply["cancelled"] == ["job/1/p0"]
        with pytest.raises(AgentError) as info:
            await running
        assert info.value.code == ErrorCode.CANCELLED
        # The agent lives on and runs the next program in a new simulation process.
        small = {"programId": "job/2/p0", "circuit": encode_circuit(deep_circuit(4, 2))}
        done = await client.call("run", {**small, "shots": 100}, timeout=120)
        assert sum(done["counts"].values()) == 100
        assert (await client.call("health", {}, timeout=5))["programsRun"] == 1
    finally:
        await client.close()
    assert agent.process.proc.returncode is None
