"""Without gate noise a circuit runs in one chunk: simulated once for all its shots when its
measurements all come last, once per branch otherwise (shot branching). With gate noise,
shot by shot in chunks. Real Aer, in process."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit

from qorch.qpu.agent import QpuAgent
from qorch.qpu.circuits import encode_circuit, measures_only_at_end
from qorch.qpu.executor import NodeExecutor, Sample
from tests.support import ghz, make_node

NOISY = {"singleQubitError": 0.001, "twoQubitError": 0.01, "readoutError": 0.02}


def chunks_of(agent: QpuAgent) -> list[int]:
    """Record the shots of every simulation the agent's executor runs."""
    sizes: list[int] = []
    executor = agent.executor
    real = executor.sample

    def sample(compiled: QuantumCircuit, shots: int, seed: int | None = None) -> Sample:
        sizes.append(shots)
        return real(compiled, shots, seed)

    executor.sample = sample  # type: ignore[method-assign]
    return sizes


def mid_measured(width: int) -> QuantumCircuit:
    qc = ghz(width)
    qc.h(0)
    qc.measure(0, 0)
    return qc


@pytest.mark.parametrize(
    ("noise", "circuit", "shots", "once"),
    [
        ({}, ghz(4), 2000, True),
        ({"readoutError": 0.05}, ghz(4), 2000, True),  # readout error applies to samples
        # Gate noise, more shots than 2^4: Aer evolves one density matrix for all of them.
        (NOISY, ghz(4), 2000, True),
        (NOISY, ghz(4), 16, False),  # fewer: every shot is its own trajectory
        ({}, mid_measured(4), 2000, True),  # shot branching: one simulation per branch
        (NOISY, mid_measured(4), 2000, False),
    ],
    ids=[
        "noiseless",
        "readout-only",
        "gate-noise-density-matrix",
        "gate-noise-trajectories",
        "branching",
        "branching-with-gate-noise",
    ],
)
async def test_one_simulation_serves_every_shot_only_when_aer_can_sample(
    noise: dict, circuit: QuantumCircuit, shots: int, once: bool
) -> None:
    agent = QpuAgent(make_node("sampling", 4, noise=noise))
    sizes = chunks_of(agent)
    body = {"programId": "p", "circuit": encode_circuit(circuit), "shots": shots, "seed": 3}
    reply = await agent.handle("run", body)
    assert sum(reply["counts"].values()) == shots
    assert (sizes == [shots]) == once, sizes
    assert sum(sizes) == shots


async def test_seeded_counts_repeat_on_one_simulation() -> None:
    runs = []
    for _ in range(2):
        agent = QpuAgent(make_node("seeded", 4, noise={"readoutError": 0.05}))
        body = {"programId": "p", "circuit": encode_circuit(ghz(4)), "shots": 4000, "seed": 11}
        runs.append((await agent.handle("run", body))["counts"])
    assert runs[0] == runs[1]
    # Readout error reached the samples: some outcomes are neither all-zeros nor all-ones.
    assert sum(n for k, n in runs[0].items() if k not in ("0000", "1111")) > 100


def test_final_measurements_are_told_apart_from_mid_circuit_ones() -> None:
    assert measures_only_at_end(ghz(3))
    later_barrier = ghz(3)
    later_barrier.barrier()
    later_barrier.measure(0, 1)  # measured twice, still nothing but measurements after
    assert measures_only_at_end(later_barrier)
    assert not measures_only_at_end(mid_measured(3))
    reset = QuantumCircuit(2, 2)
    reset.reset(0)
    reset.measure([0, 1], [0, 1])
    assert not measures_only_at_end(reset)
    branching = QuantumCircuit(2, 2)
    branching.measure(0, 0)
    with branching.if_test((branching.clbits[0], 1)):
        branching.x(1)
    branching.measure(1, 1)
    assert not measures_only_at_end(branching)
    # A gate on a qubit not yet measured, after another was: still final for both.
    partial = QuantumCircuit(2, 2)
    partial.measure(0, 0)
    partial.h(1)
    partial.measure(1, 1)
    assert measures_only_at_end(partial)
    assert NodeExecutor(make_node("x", 2).spec).samples_at_once(partial, 100)


async def test_an_unseeded_program_is_priced_by_the_chunks_before_it() -> None:
    # 2000 shots of 12 qubits: fewer than 2^12, so simulated shot by shot.
    agent = QpuAgent(make_node("priced", 12, noise=NOISY))
    sizes = chunks_of(agent)
    circuit = encode_circuit(ghz(12))
    await agent.handle("run", {"programId": "first", "circuit": circuit, "shots": 2000})
    assert sizes[0] == agent.first_chunk_shots  # nothing to price it by yet
    del sizes[:]
    await agent.handle("run", {"programId": "second", "circuit": circuit, "shots": 2000})
    # Priced by the first program's chunks: no small chunk first (each shot of GHZ-12 takes
    # well under the 0.5 s / 8 it would need to be one).
    assert sizes[0] > agent.first_chunk_shots and sum(sizes) == 2000, sizes
    del sizes[:]
    seeded = {"programId": "seeded", "circuit": circuit, "shots": 2000, "seed": 5}
    await agent.handle("run", seeded)
    assert sizes[0] == agent.first_chunk_shots  # a seeded split never depends on history


@pytest.mark.parametrize(
    ("noise", "circuit", "as_written"),
    [
        ({}, ghz(4), True),
        ({"readoutError": 0.05}, ghz(4), True),  # misread outcomes, whichever gates ran
        (NOISY, ghz(4), False),  # gate noise is keyed to the node's gates
        ({}, mid_measured(4), False),  # chunks could outlive a change of the node's noise
    ],
    ids=["noiseless", "readout-only", "gate-noise", "mid-circuit-measurement"],
)
async def test_a_circuit_is_compiled_only_where_that_can_change_its_outcomes(
    noise: dict, circuit: QuantumCircuit, as_written: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without gate noise, and sampled in one run, the agent runs the circuit as written:
    compiling it to the node's gates would only cost time."""
    agent = QpuAgent(make_node("compiling", 4, noise=noise))
    ran: list[QuantumCircuit] = []
    real = agent.executor.sample

    def sample(compiled: QuantumCircuit, shots: int, seed: int | None = None) -> Sample:
        ran.append(compiled)
        return real(compiled, shots, seed)

    monkeypatch.setattr(agent.executor, "sample", sample)
    body = {"programId": "p", "circuit": encode_circuit(circuit), "shots": 2000, "seed": 5}
    reply = await agent.handle("run", body)
    assert sum(reply["counts"].values()) == 2000
    gates = {inst.operation.name for compiled in ran for inst in compiled.data}
    # ghz is written with h; the node's gates have none.
    assert ("h" in gates) == as_written, gates


@pytest.mark.parametrize("width", [3, 6])
def test_the_executor_expects_a_density_matrix_exactly_where_aer_chooses_one(width: int) -> None:
    """Under gate noise Aer evolves one density matrix, sampled for every shot, once the
    shots outnumber 2^n (n the qubits it simulates, not the node's): the agent runs those
    shots at once rather than in chunks that Aer would each simulate shot by shot."""
    executor = NodeExecutor(make_node("dm", 8, noise=NOISY).spec)
    compiled = executor.compile(ghz(width), seed=1)
    for shots in (2**width, 2**width + 1):
        result = executor.simulator.run(compiled, shots=shots, seed_simulator=1).result()
        method = result.results[0].metadata["method"]
        assert (method == "density_matrix") == executor.samples_at_once(compiled, shots)
        assert executor.simulations(compiled, shots) == min(shots, 2**width)
