"""Teleport programs: run on Aer, compared with the monolithic circuit's ideal distribution."""

from __future__ import annotations

import io

import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qpy
from qiskit.quantum_info import hellinger_fidelity
from qiskit_aer import AerSimulator

from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition, partition
from qorch.planner.teleport import CO_SIMULATION_NOTE, TeleportProgram, compile_teleport
from qorch.qpu.composite_noise import (
    build_composite_noise_model,
    defer_feed_forward,
    simulate_composite,
)
from qorch.qpu.executor import one_density_matrix
from tests.support import ghz

from .support import NOISY, ideal_distribution, link, node, qft_adder

SHOTS = 8000


def _compile(
    circuit: QuantumCircuit, nodes: list[NodeSlot], links: list[LinkSlot]
) -> TeleportProgram:
    placed = partition(circuit, nodes, links, min_nodes=2)
    assert placed is not None
    return compile_teleport(circuit, placed, nodes, links)


def _run(
    program: TeleportProgram, shots: int = SHOTS, *, seed: int = 11, defer: bool = True
) -> dict[str, int]:
    counts = simulate_composite(program.circuit, program.noise, shots, seed=seed, defer=defer)
    return program.original_counts(counts)


def test_noiseless_ghz_over_two_nodes_is_exact() -> None:
    circuit = ghz(10)
    program = _compile(circuit, [node("a", 6), node("b", 6)], [link("a", "b")])
    counts = _run(program)
    assert set(counts) <= {"0" * 10, "1" * 10}
    assert hellinger_fidelity(counts, ideal_distribution(circuit)) >= 0.99
    assert program.bell_pairs == {"a-b": 1}
    assert program.estimated_fidelity == 1.0


def test_noiseless_qft_adder_over_two_nodes_matches_the_monolithic_circuit() -> None:
    circuit = qft_adder(8)
    nodes, links = [node("a", 5), node("b", 5)], [link("a", "b")]
    placed = partition(circuit, nodes, links)
    assert placed is not None
    program = compile_teleport(circuit, placed, nodes, links)
    assert program.nonlocal_gates == placed.nonlocal_gates >= 30  # all-to-all phases span nodes
    # Phase blocks run through shared cats: far fewer pairs than one per nonlocal gate.
    assert sum(program.bell_pairs.values()) <= placed.nonlocal_gates / 2
    counts = _run(program)
    assert hellinger_fidelity(counts, ideal_distribution(circuit)) >= 0.99


def test_noisy_link_costs_about_what_the_estimate_says() -> None:
    circuit = ghz(10)
    nodes = [node("a", 6), node("b", 6)]
    program = _compile(circuit, nodes, [link("a", "b", fidelity=0.9)])
    measured = hellinger_fidelity(_run(program), ideal_distribution(circuit))
    estimated_drop = 1 - program.estimated_fidelity
    assert estimated_drop == pytest.approx(0.1)
    # Z errors on the pair dephase the GHZ state, which counts cannot see: ~2/3 of the drop shows.
    assert 0.4 * estimated_drop <= 1 - measured <= 1.5 * estimated_drop
    assert "Bell pair" in program.fidelity.limited_by()


def test_program_shape_width_registers_owners_and_note() -> None:
    circuit = ghz(10)
    program = _compile(circuit, [node("a", 6), node("b", 6)], [link("a", "b", 0.95)])
    qc = program.circuit
    assert qc.num_qubits == 12  # 10 data qubits + one communication qubit per node
    assert program.qubit_owner[:10] == ["a"] * 5 + ["b"] * 5
    assert sorted(program.qubit_owner[10:]) == ["a", "b"]
    assert program.qubits_per_node() == {"a": 6, "b": 6}
    assert qc.cregs[0] == circuit.cregs[0] or qc.cregs[0].size == circuit.cregs[0].size
    assert [r.size for r in qc.cregs] == [10, 2]
    ops = qc.count_ops()
    assert ops["if_else"] == 2 and ops["initialize"] == 1
    assert program.note == CO_SIMULATION_NOTE
    assert program.noise["bellPairs"][0]["fidelity"] == 0.95


def test_the_program_survives_qpy_with_its_markers() -> None:
    program = _compile(ghz(6), [node("a", 4), node("b", 4)], [link("a", "b", 0.9)])
    buf = io.BytesIO()
    qpy.dump(program.circuit, buf)
    buf.seek(0)
    loaded = qpy.load(buf)[0]
    labels = {inst.operation.label for inst in loaded.data if inst.operation.name == "id"}
    assert labels == {"qorch_bell_0"}


def test_heralded_generation_is_reported_per_link() -> None:
    slow = link("a", "b", rate_hz=1000, success=0.25)
    program = _compile(ghz(10), [node("a", 6), node("b", 6)], [slow])
    assert program.expected_attempts == {"a-b": 4.0}
    assert program.expected_generation_seconds == {"a-b": pytest.approx(0.004)}
    assert program.generation_seconds(100) == {"a-b": pytest.approx(0.4)}


def test_feed_forward_latency_charges_idle_relaxation() -> None:
    nodes = [node("a", 6, NOISY), node("b", 6, NOISY)]
    quick = _compile(ghz(10), nodes, [link("a", "b", latency_us=0)])
    slow = _compile(ghz(10), nodes, [link("a", "b", latency_us=20)])
    assert slow.estimated_fidelity < quick.estimated_fidelity
    assert slow.noise["idle"][0]["microseconds"] == 20
    assert len(slow.noise["idle"][0]["qubits"]) == 11  # all data qubits + the waiting half
    assert "feed-forward" in slow.fidelity.limited_by()


def test_any_two_qubit_gate_is_teleported_after_decomposition() -> None:
    qc = QuantumCircuit(4, 4)
    qc.h([0, 1])
    qc.rzz(0.7, 1, 2)
    qc.swap(0, 3)
    qc.ccx(0, 1, 2)
    qc.cp(0.3, 3, 1)
    qc.ry(0.4, 2)
    qc.cz(2, 0)
    qc.measure(range(4), range(4))
    nodes = [node("a", 3), node("b", 3)]
    placed = Partition({0: "a", 1: "a", 2: "b", 3: "b"}, 0, {}, ("a", "b"))
    program = compile_teleport(qc, placed, nodes, [link("a", "b")])
    assert sum(program.bell_pairs.values()) > 3
    assert hellinger_fidelity(_run(program, 4000), ideal_distribution(qc)) >= 0.99


def test_original_counts_keep_the_register_layout_of_the_monolithic_circuit() -> None:
    q = QuantumRegister(4, "q")
    low, high = ClassicalRegister(2, "low"), ClassicalRegister(2, "high")
    qc = QuantumCircuit(q, low, high)
    qc.x(0)
    qc.cx(0, 3)
    qc.measure([0, 1], low)
    qc.measure([2, 3], high)
    program = _compile(qc, [node("a", 3), node("b", 3)], [link("a", "b")])
    teleported = _run(program, 200)
    monolithic = AerSimulator().run(qc, shots=200).result().get_counts()
    assert set(teleported) == set(monolithic) == {"10 01"}


def test_deferred_and_literal_feed_forward_agree_under_noise() -> None:
    circuit = ghz(6)
    nodes = [node("a", 4, NOISY), node("b", 4, NOISY)]
    program = _compile(circuit, nodes, [link("a", "b", 0.9, latency_us=5)])
    deferred = _run(program, 4000, defer=True)
    literal = _run(program, 4000, seed=7_000_003, defer=False)  # independent shot seeds
    # Two independent 4000-shot samples over ~60 outcomes sit near 0.99 by sampling alone.
    assert hellinger_fidelity(deferred, literal) >= 0.98


def test_a_gate_between_unlinked_nodes_is_refused() -> None:
    placed = Partition({0: "a", 1: "b"}, 1, {}, ("a", "b"))
    qc = QuantumCircuit(2)
    qc.cx(0, 1)
    with pytest.raises(ValueError, match="no link"):
        compile_teleport(qc, placed, [node("a", 2), node("b", 2)], [])


def test_a_program_that_overflows_a_node_is_refused() -> None:
    # Both data qubits fit, but not with the communication qubit beside them.
    placed = Partition({0: "a", 1: "a", 2: "b"}, 1, {"a-b": 1}, ("a", "b"))
    qc = QuantumCircuit(3)
    qc.cx(1, 2)
    with pytest.raises(ValueError, match="does not fit"):
        compile_teleport(qc, placed, [node("a", 2), node("b", 2)], [link("a", "b")])


def test_a_noisy_program_of_one_density_matrix_draws_the_counts_aer_would() -> None:
    # Aer itself would evolve one density matrix here (more shots than 2^8, measured at the
    # end); the program reads the noise as channels instead: the same seeded counts.
    program = _compile(ghz(4), [node("a", 4, NOISY), node("b", 4, NOISY)], [link("a", "b", 0.9)])
    deferred = defer_feed_forward(program.circuit, keep_resets=True)
    assert one_density_matrix(deferred, 4000, resets=True)
    ours = simulate_composite(program.circuit, program.noise, 4000, seed=5)
    terms = AerSimulator(noise_model=build_composite_noise_model(program.noise))
    result = terms.run(deferred, shots=4000, seed_simulator=5).result()
    assert result.results[0].metadata["method"] == "density_matrix"
    assert ours == result.get_counts()
