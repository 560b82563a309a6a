"""Cancelling programs, and shots run in chunks with the QPU free in between: a cancelled
program stops at its next chunk and a calibration gets in. Real Aer, in process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from qiskit import QuantumCircuit

from qorch.agent_protocol import AgentError, ErrorCode
from qorch.pipeline.resources import calibrate_node
from qorch.qpu.agent import QpuAgent, next_chunk_shots
from qorch.qpu.circuits import encode_circuit
from qorch.qpu.executor import NodeExecutor
from tests.support import deep_circuit, ghz, make_node

from .support import InProcess

# ~2 s on 2 busy cores: far longer than a chunk, short enough for a unit test.
SLOW_QUBITS = 10
SLOW_SHOTS = 1500


def slow_node(name: str, qubits: int = SLOW_QUBITS) -> Any:
    """Gate noise: Aer simulates every shot of a circuit on its own (without it, shots split
    only at mid-circuit measurements, and shot branching runs each branch once)."""
    return make_node(name, qubits, noise={"twoQubitError": 0.001})


def slow_circuit(n: int = SLOW_QUBITS, layers: int = 4) -> QuantumCircuit:
    """Non-Clifford, with a mid-circuit measurement; slow on a `slow_node`."""
    qc = QuantumCircuit(n, n)
    for layer in range(layers):
        for q in range(n):
            qc.rx(0.3 + 0.1 * q + layer, q)
        for q in range(layer % 2, n - 1, 2):
            qc.cx(q, q + 1)
    qc.measure(0, 0)
    qc.h(0)
    qc.measure(range(n), range(n))
    return qc


def payload(program_id: str, circuit: QuantumCircuit, shots: int, **extra: Any) -> dict[str, Any]:
    return {"programId": program_id, "circuit": encode_circuit(circuit), "shots": shots, **extra}


def start(agent: QpuAgent, body: dict[str, Any]) -> asyncio.Task[dict[str, Any]]:
    return asyncio.create_task(agent.handle("run", body))


async def until_busy(agent: QpuAgent) -> None:
    async with asyncio.timeout(10):
        while not agent.health().busy:
            await asyncio.sleep(0.01)


async def test_a_queued_program_cancelled_never_runs() -> None:
    agent = QpuAgent(slow_node("queue"))
    running = start(agent, payload("long", slow_circuit(), SLOW_SHOTS))
    await until_busy(agent)
    queued = start(agent, payload("queued", ghz(3), 100))
    await asyncio.sleep(0.05)

    reply = await agent.handle("cancel", {"programIds": ["queued", "never-sent"]})

    assert reply == {"cancelled": ["queued"], "unknown": ["never-sent"], "finished": []}
    with pytest.raises(AgentError) as info:
        await queued
    assert info.value.code == ErrorCode.CANCELLED
    assert not running.done()  # refused at once, not when the program ahead of it ends
    first = await running
    assert agent.health().programs_run == 1
    # Re-sent, or sent after its cancel overtook it: refused, not run.
    for program_id in ("queued", "never-sent"):
        with pytest.raises(AgentError) as info:
            await agent.handle("run", payload(program_id, ghz(3), 100))
        assert info.value.code == ErrorCode.CANCELLED
    assert agent.health().programs_run == 1
    # A finished program keeps its result.
    reply = await agent.handle("cancel", {"programIds": ["long"]})
    assert reply == {"cancelled": [], "unknown": [], "finished": ["long"]}
    assert await agent.handle("run", payload("long", slow_circuit(), SLOW_SHOTS)) == first
    # Cancelling again is harmless and says the same.
    again = await agent.handle("cancel", {"programIds": ["queued"]})
    assert again == {"cancelled": ["queued"], "unknown": [], "finished": []}


async def test_a_running_program_stops_at_its_next_chunk() -> None:
    agent = QpuAgent(slow_node("stop"))
    agent.chunk_seconds = 0.1
    shots = 3 * SLOW_SHOTS  # a second or two: a loaded machine's stalls stay well under half
    began = time.perf_counter()
    await agent.handle("run", payload("whole", slow_circuit(), shots))
    whole = time.perf_counter() - began

    began = time.perf_counter()
    # Two clients await the same program: both hear it was cancelled.
    waiters = [start(agent, payload("stopped", slow_circuit(), shots)) for _ in range(2)]
    await until_busy(agent)
    await asyncio.sleep(0.1 * whole)
    reply = await agent.handle("cancel", {"programIds": ["stopped"]})
    assert reply["cancelled"] == ["stopped"]
    for waiter in waiters:
        with pytest.raises(AgentError) as info:
            await waiter
        assert info.value.code == ErrorCode.CANCELLED
    stopped = time.perf_counter() - began

    assert stopped < 0.5 * whole, (stopped, whole)
    health = agent.health()
    assert health.programs_run == 1 and not health.busy


async def test_a_calibration_gets_in_between_the_chunks_of_a_long_program() -> None:
    agent = QpuAgent(slow_node("interleave"))
    program = start(agent, payload("long", slow_circuit(), 2 * SLOW_SHOTS))
    await until_busy(agent)

    calibration = await agent.handle("calibrate", {})

    assert not program.done()
    assert calibration["readoutError"] == 0
    reply = await program
    assert sum(reply["counts"].values()) == 2 * SLOW_SHOTS


async def test_a_calibration_does_not_wait_for_a_program_that_runs_as_one_step() -> None:
    """Without gate noise a program is one simulation: a calibration (or a link probe)
    asked meanwhile answers Busy at once, rather than after the whole program, by which
    time the operator would have found the node unreachable."""
    agent = QpuAgent(make_node("one-step", 22))
    agent.qpu_wait_seconds = 0.05
    program = start(agent, payload("one-step", deep_circuit(22, 12), 2000))
    async with asyncio.timeout(60):
        # The simulation (in the agent's simulation process) holds the QPU; the compile
        # step before it may let a calibration in, as any step boundary does.
        while agent._in_child is None:
            await asyncio.sleep(0.01)

    with pytest.raises(AgentError) as info:
        await agent.handle("calibrate", {})

    assert info.value.code == ErrorCode.BUSY
    # The operator keeps the node as it was: the node is busy, not unreachable.
    node = agent.node
    assert await calibrate_node(node, InProcess(agent)) == node.status
    assert not program.done()
    reply = await program
    assert sum(reply["counts"].values()) == 2000
    calibration = await agent.handle("calibrate", {})  # free again: it runs
    assert calibration["readoutError"] == 0


def noisy_node() -> Any:
    return make_node("seeded", 6, noise={"twoQubitError": 0.05, "readoutError": 0.02})


async def test_seeded_chunked_runs_are_reproducible_and_their_counts_add_up() -> None:
    agent = QpuAgent(noisy_node())
    agent.first_chunk_shots = 16  # many chunks: 16, 64, 256, 1024, ...
    shot_by_shot, sampled = slow_circuit(6), ghz(6)
    shots = 1500

    async def counts(program_id: str, circuit: QuantumCircuit, seed: int) -> dict[str, int]:
        body = payload(program_id, circuit, shots, seed=seed)
        return (await agent.handle("run", body))["counts"]

    for name, circuit in (("shots", shot_by_shot), ("sampled", sampled)):
        first = await counts(f"{name}-1", circuit, 7)
        assert sum(first.values()) == shots
        assert await counts(f"{name}-2", circuit, 7) == first
        assert await counts(f"{name}-3", circuit, 8) != first
    # Shot i of a chunk starting at shot k gets seed + k + i, as in one run of all shots.
    whole = NodeExecutor(noisy_node().spec).run(shot_by_shot, shots, 7)
    assert await counts("shots-4", shot_by_shot, 7) == whole.counts

    batch = {
        "programId": "batch",
        "circuits": [encode_circuit(c) for c in (shot_by_shot, sampled)],
        "shots": shots,
        "seed": 3,
    }
    reply = await agent.handle("run", batch)
    assert [sum(c.values()) for c in reply["results"]] == [shots, shots]
    assert set(reply) >= {"transpileSeconds", "simulateSeconds", "results"}
    assert agent.health().programs_run == 8


async def test_a_co_simulated_program_runs_in_chunks_too() -> None:
    agent = QpuAgent(make_node("cosim", 4))
    agent.first_chunk_shots = 16
    qc = QuantumCircuit(3, 3)
    qc.measure(0, 0)  # mid-circuit: shot by shot
    qc.h(0)
    qc.measure(range(3), range(3))
    noise = {
        "version": 1,
        "basisGates": ["cx", "rz", "sx", "x", "h"],
        "nodes": {"a": {}, "b": {"readoutError": 0.3}},
        "qubitOwner": ["a", "a", "b"],
        "bellPairs": [],
        "idle": [],
    }
    replies = [
        await agent.handle("run", payload(f"co-{i}", qc, 1000, noise=noise, seed=5))
        for i in range(2)
    ]
    counts = replies[0]["counts"]
    assert sum(counts.values()) == 1000 and counts == replies[1]["counts"]
    flipped = sum(n for key, n in counts.items() if key[0] == "1")  # qubit 2, on node b
    assert 200 < flipped < 400


def test_chunks_are_sized_from_the_last_one() -> None:
    # Measure-sampled: the rest at once, the simulation is the cost.
    assert next_chunk_shots(10_000, 128, 2.0, sampled=True, seeded=False) == 10_000
    # Shot by shot: about target_seconds at the last chunk's rate.
    assert next_chunk_shots(10_000, 100, 0.1, sampled=False, seeded=False) == 500
    assert next_chunk_shots(10_000, 100, 0.1, sampled=False, seeded=False, target_seconds=1) == 1000
    assert next_chunk_shots(300, 100, 0.01, sampled=False, seeded=False) == 300
    assert next_chunk_shots(10_000, 1, 60.0, sampled=False, seeded=False) == 1
    # Seeded: by a fixed factor, whatever the time, so a seed always splits the same way.
    assert next_chunk_shots(10_000, 128, 0.001, sampled=False, seeded=True) == 512
    assert next_chunk_shots(10_000, 128, 30.0, sampled=False, seeded=True) == 512
    assert next_chunk_shots(100, 128, 30.0, sampled=False, seeded=True) == 100
