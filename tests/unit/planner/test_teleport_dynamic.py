"""Teleport carries mid-circuit measurement, reset, if/else, switch and bounded loops across
nodes; the measured bits a conditional on another node reads cost a classical message."""

from __future__ import annotations

import io

import pytest
from qiskit import QuantumCircuit, qpy

from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition, partition
from qorch.planner.teleport import TeleportProgram, compile_teleport
from qorch.qpu.composite_noise import simulate_composite
from tests.dynamic_circuits import (
    branch_distribution,
    conditioned_x_across,
    l1_bound,
    l1_distance,
    mid_circuit_reset,
    repeat_until_success,
    teleportation,
)

from .support import NOISY, link, node

SHOTS = 8000
NODES = [node("a", 4), node("b", 4)]
LINKS = [link("a", "b", latency_us=5)]


def _split(*on_b: int, width: int) -> Partition:
    assignment = {q: ("b" if q in on_b else "a") for q in range(width)}
    return Partition(assignment, 0, {}, ("a", "b"))


def _counts(program: TeleportProgram, seed: int = 5) -> dict[str, int]:
    raw = simulate_composite(program.circuit, program.noise, SHOTS, seed=seed)
    return program.original_counts(raw)


CASES = [
    ("teleportation", teleportation(), (2,)),  # the corrections act on the far node
    ("repeat-until-success", repeat_until_success(3), (3,)),  # the retried CX spans nodes
    ("mid-circuit reset", mid_circuit_reset(), (2,)),
    ("conditioned X across", conditioned_x_across(4), (2, 3)),
]


@pytest.mark.parametrize(("name", "circuit", "on_b"), CASES, ids=[c[0] for c in CASES])
def test_dynamic_circuits_across_two_nodes_match_their_exact_distribution(
    name: str, circuit: QuantumCircuit, on_b: tuple[int, ...]
) -> None:
    program = compile_teleport(circuit, _split(*on_b, width=circuit.num_qubits), NODES, LINKS)
    exact = branch_distribution(circuit)
    counts = _counts(program)
    assert sum(counts.values()) == SHOTS
    assert l1_distance(counts, exact) <= l1_bound(len(exact), SHOTS)


def test_conditionals_on_the_far_node_wait_for_the_bits() -> None:
    circuit = teleportation()
    nodes = [node("a", 4, NOISY), node("b", 4, NOISY)]
    slow = compile_teleport(circuit, _split(2, width=3), nodes, [link("a", "b", latency_us=20)])
    quick = compile_teleport(circuit, _split(2, width=3), nodes, [link("a", "b", latency_us=0)])
    # m0 and m1 are measured on a and read on b: one message carries both.
    assert slow.conditional_messages == quick.conditional_messages == 1
    assert slow.bell_pairs == {"a-b": 1}  # the entangling CX(q1, q2) only
    assert slow.estimated_fidelity < quick.estimated_fidelity
    factor = next(k for k in slow.fidelity.factors if k.startswith("feed-forward waits on b"))
    assert "20 us over a-b" in factor
    idle = {entry["label"]: entry for entry in slow.noise["idle"]}
    assert all(slow.qubit_owner[q] in ("a", "b") for e in idle.values() for q in e["qubits"])


def test_bits_already_on_the_node_need_no_message() -> None:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(0)  # same node as the measurement
    qc.measure([0, 1], [0, 1])
    program = compile_teleport(qc, _split(1, width=2), NODES, LINKS)
    assert program.conditional_messages == 0
    remeasured = qc.copy()
    with remeasured.if_test((remeasured.clbits[0], 1)):
        remeasured.x(1)  # on b: one message
    with remeasured.if_test((remeasured.clbits[0], 0)):
        remeasured.z(1)  # the value is there already
    program = compile_teleport(remeasured, _split(1, width=2), NODES, LINKS)
    assert program.conditional_messages == 1


def test_a_conditional_between_unlinked_nodes_is_refused() -> None:
    qc = QuantumCircuit(3, 1)
    qc.h(0)
    qc.cx(0, 2)
    qc.cx(2, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    placed = Partition({0: "a", 1: "c", 2: "b"}, 2, {}, ("a", "b", "c"))
    nodes = [node("a", 3), node("b", 3), node("c", 3)]
    with pytest.raises(ValueError, match="on c reads bits measured on a, which no link"):
        compile_teleport(qc, placed, nodes, [link("a", "b"), link("b", "c")])


def test_a_loop_over_the_limit_is_refused_with_its_reason() -> None:
    qc = QuantumCircuit(2, 1)
    with qc.for_loop(range(5000)):
        qc.cx(0, 1)
    with pytest.raises(ValueError, match="maxForLoopIterations"):
        compile_teleport(qc, _split(1, width=2), NODES, LINKS)


def test_a_dynamic_program_survives_qpy_with_its_conditions() -> None:
    circuit = conditioned_x_across(4)
    program = compile_teleport(circuit, _split(2, 3, width=4), NODES, LINKS)
    buffer = io.BytesIO()
    qpy.dump(program.circuit, buffer)
    buffer.seek(0)
    (loaded,) = qpy.load(buffer)
    counts = program.original_counts(simulate_composite(loaded, program.noise, SHOTS, seed=9))
    exact = branch_distribution(circuit)
    assert l1_distance(counts, exact) <= l1_bound(len(exact), SHOTS)


# Every dynamic benchmark of MQT Bench 2.3, at a size that fits two small nodes.
MQT = [
    ("ghz_dynamic", 4),
    ("ghz_dynamic", 6),
    ("dynamic_qft", 4),
    ("iqpe", 3),
    ("seven_qubit_steane_code", 13),
    ("shors_nine_qubit_code", 17),
]


@pytest.mark.parametrize(("name", "size"), MQT, ids=[f"{n}-{s}" for n, s in MQT])
def test_mqt_bench_dynamic_circuits_run_across_two_nodes(name: str, size: int) -> None:
    bench = pytest.importorskip("mqt.bench")
    circuit = bench.get_benchmark(name, bench.BenchmarkLevel.INDEP, size)
    nodes: list[NodeSlot] = [node("a", size // 2 + 3), node("b", size // 2 + 3)]
    links: list[LinkSlot] = [link("a", "b", latency_us=5)]
    placed = partition(circuit, nodes, links, min_nodes=2)
    assert placed is not None
    program = compile_teleport(circuit, placed, nodes, links)
    exact = branch_distribution(circuit)
    counts = _counts(program)
    assert l1_distance(counts, exact) <= l1_bound(len(exact), SHOTS)
