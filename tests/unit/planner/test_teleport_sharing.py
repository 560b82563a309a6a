"""Shared cats and teledata: the programs stay exact and consume the pairs they report.

Every correctness check compares the exact outcome distribution of the noiseless program
(feed-forward deferred as `simulate_composite` does) with the monolithic circuit's, to 1e-9:
a missing correction, a cat kept open across a gate that breaks it, or a qubit left behind by
a move changes the distribution. Circuits end with basis changes where a Z-basis readout
alone could not see a wrong phase.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import hellinger_fidelity

from qorch.pipeline.planning import plan_status, reservation
from qorch.pipeline.reservations import link_resource
from qorch.pipeline.strategies import choose_candidate, strategy_named
from qorch.pipeline.strategies.teleport import TeleportWork
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition, partition
from qorch.planner.teleport import TeleportProgram, compile_teleport
from qorch.qpu.composite_noise import simulate_composite

from .support import (
    NOISY,
    estimate_candidates,
    ideal_distribution,
    link,
    node,
    program_distribution,
    qft_adder,
)


def assert_exact(program: TeleportProgram, circuit: QuantumCircuit) -> None:
    got, want = program_distribution(program), ideal_distribution(circuit)
    worst = max(abs(got.get(k, 0.0) - want.get(k, 0.0)) for k in {*got, *want})
    assert worst < 1e-9, f"the program's distribution is off by {worst:g}"


def placed(assignment: str, spare: int = 0) -> tuple[Partition, list[NodeSlot], list[LinkSlot]]:
    """Qubit i on node assignment[i], every node linked to every other, `spare` free qubits
    per node beyond its data and one communication qubit."""
    names = sorted(set(assignment))
    nodes = [node(n, assignment.count(n) + 1 + spare) for n in names]
    links = [link(x, y) for i, x in enumerate(names) for y in names[i + 1 :]]
    part = Partition(dict(enumerate(assignment)), 0, {}, tuple(names))
    return part, nodes, links


def compiled(
    circuit: QuantumCircuit, assignment: str, spare: int = 0, **kwargs: bool
) -> TeleportProgram:
    part, nodes, links = placed(assignment, spare)
    return compile_teleport(circuit, part, nodes, links, **kwargs)


def star_ghz(width: int, *, x_basis: bool = False) -> QuantumCircuit:
    """q0 controls every other qubit; in the X basis a wrong phase on q0 shows."""
    qc = QuantumCircuit(width, width)
    qc.h(0)
    for q in range(1, width):
        qc.cx(0, q)
    if x_basis:
        qc.h(range(width))
    qc.measure(range(width), range(width))
    return qc


def chain_ghz(width: int) -> QuantumCircuit:
    """The GHZ chain of `support.ghz`, read out in the X basis."""
    qc = QuantumCircuit(width, width)
    qc.h(0)
    for q in range(width - 1):
        qc.cx(q, q + 1)
    qc.h(range(width))
    qc.measure(range(width), range(width))
    return qc


def random_cx_cz(width: int, gates: int, seed: int) -> QuantumCircuit:
    """Random CX and CZ between random one-qubit gates, from a generic product state; a few
    hub qubits take part more often, so that some controls could share a cat and others not."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(width, width)
    for q in range(width):
        qc.ry(rng.uniform(0, math.pi), q)
        qc.rz(rng.uniform(0, math.pi), q)
    hubs = [0, width - 1]
    for _ in range(gates):
        if rng.random() < 0.55:
            a = int(rng.choice(hubs)) if rng.random() < 0.5 else int(rng.integers(width))
            b = int(rng.choice([q for q in range(width) if q != a]))
            (qc.cx if rng.random() < 0.7 else qc.cz)(a, b)
        else:
            q = int(rng.integers(width))
            kind = int(rng.integers(6))
            if kind == 0:
                qc.h(q)
            elif kind == 1:
                qc.rz(rng.uniform(-math.pi, math.pi), q)
            elif kind == 2:
                qc.t(q)
            elif kind == 3:
                qc.sx(q)
            elif kind == 4:
                qc.ry(rng.uniform(-math.pi, math.pi), q)
            else:
                qc.s(q)
    for q in range(width):
        qc.ry(rng.uniform(0, math.pi), q)
    qc.measure(range(width), range(width))
    return qc


# -- pair counts ---------------------------------------------------------------------------


def test_a_star_ghz_shares_one_bell_pair_for_five_remote_gates() -> None:
    circuit = star_ghz(6, x_basis=True)
    program = compiled(circuit, "abbbbb")
    assert program.nonlocal_gates == 5
    assert program.bell_pairs == {"a-b": 1}
    assert program.circuit.count_ops()["if_else"] == 2  # one entangler, one disentangler
    assert_exact(program, circuit)


def test_a_star_over_three_nodes_keeps_one_cat_open_on_each() -> None:
    circuit = star_ghz(7, x_basis=True)
    program = compiled(circuit, "abcbcbc")  # targets alternate between the two nodes
    assert program.nonlocal_gates == 6
    assert program.bell_pairs == {"a-b": 1, "a-c": 1}
    assert_exact(program, circuit)


def test_the_estimate_and_generation_time_follow_the_pairs_consumed() -> None:
    circuit = star_ghz(6)
    part, nodes, _ = placed("abbbbb")
    slow = link("a", "b", 0.9, rate_hz=1000, success=0.25)
    program = compile_teleport(circuit, part, nodes, [slow])
    assert program.estimated_fidelity == pytest.approx(0.9)  # one pair, not 0.9**5
    assert program.expected_generation_seconds == {"a-b": pytest.approx(0.004)}
    assert program.expected_attempts == {"a-b": 4.0}


def test_fewer_pairs_mean_fewer_feed_forward_waits() -> None:
    circuit = star_ghz(6)
    part = Partition(dict(enumerate("abbbbb")), 5, {}, ("a", "b"))
    nodes = [node("a", 2, NOISY), node("b", 6, NOISY)]
    program = compile_teleport(circuit, part, nodes, [link("a", "b", latency_us=10)])
    idle = {tuple(m["qubits"]) for m in program.noise["idle"]}
    assert len(idle) == 1  # one link, one marker
    markers = [
        inst.operation.label
        for inst in program.circuit.data
        if inst.operation.name == "id" and (inst.operation.label or "").startswith("qorch_idle")
    ]
    # Two messages (entangler, disentangler), each a marker on the qubits of both nodes.
    assert len(markers) == 2 * 6 + 1  # six data qubits twice, plus the waiting mirror once
    # The estimate charges the same two waits, not two per nonlocal gate.
    assert "feed-forward waits on b (2 x 10 us over a-b)" in program.fidelity.factors


def test_a_phase_block_is_diagonal_on_both_qubits_and_takes_one_pair() -> None:
    # CPhase decomposes to CX P CX: either qubit's mirror runs it, and no cat closes.
    qc = QuantumCircuit(4, 4)
    qc.h(range(4))
    qc.cp(0.7, 0, 2)
    qc.cp(1.1, 3, 0)  # 0 is now the CX target of the decomposition: still diagonal
    qc.rzz(0.4, 0, 3)
    qc.cz(2, 0)
    qc.h(range(4))
    qc.measure(range(4), range(4))
    program = compiled(qc, "aabb")
    assert program.nonlocal_gates == 7
    assert program.bell_pairs == {"a-b": 1}
    assert_exact(program, qc)


# -- when the cat must close ---------------------------------------------------------------


def _control_then(between: str) -> QuantumCircuit:
    """CX(0, 2), something on the control or its node, CX(0, 3); 0 and 1 on a, 2-4 on b."""
    qc = QuantumCircuit(5, 5)
    for q in range(5):
        qc.ry(0.3 + 0.4 * q, q)
    qc.cx(0, 2)
    if between == "h":
        qc.h(0)
    elif between == "rz":
        qc.rz(0.9, 0)
    elif between == "t":
        qc.t(0)
    elif between == "target":
        qc.cx(1, 0)  # local, but the control becomes a target
    elif between == "control":
        qc.cx(0, 1)  # local, the control stays a control
    elif between == "other":
        qc.cx(1, 3)  # needs b's communication qubit for another control
    qc.cx(0, 3)
    qc.cz(4, 0)
    qc.h(range(5))
    qc.measure(range(5), range(5))
    return qc


@pytest.mark.parametrize(
    ("between", "pairs"),
    [
        ("nothing", 1),
        ("rz", 1),
        ("t", 1),
        ("control", 1),
        ("h", 2),
        ("target", 2),
        ("other", 3),
    ],
)
def test_the_cat_stays_open_only_across_operations_diagonal_on_the_control(
    between: str, pairs: int
) -> None:
    circuit = _control_then(between)
    program = compiled(circuit, "aabbb", teledata=False)
    assert program.bell_pairs == {"a-b": pairs}
    assert_exact(program, circuit)


def test_the_cat_closes_before_the_control_is_measured() -> None:
    qc = QuantumCircuit(4, 4)
    qc.h(0)
    qc.cx(0, 2)
    qc.measure(0, 0)
    qc.cx(0, 3)  # after the measurement: a new cat
    qc.measure([1, 2, 3], [1, 2, 3])
    program = compiled(qc, "aabb", teledata=False)
    assert program.bell_pairs == {"a-b": 2}
    data = program.circuit.data
    measured_at = next(
        i
        for i, inst in enumerate(data)
        if inst.operation.name == "measure" and program.circuit.find_bit(inst.qubits[0]).index == 0
    )
    corrections = [i for i, inst in enumerate(data) if inst.operation.name == "if_else"]
    assert corrections[1] < measured_at  # the Z correction of the first cat came first
    counts = program.original_counts(
        simulate_composite(program.circuit, program.noise, 400, seed=5, defer=False)
    )
    assert set(counts) == {"0000", "1101"}


# -- correctness over circuit families -----------------------------------------------------


@pytest.mark.parametrize("assignment", ["aaabbb", "aabbcc", "abcabc"])
def test_ghz_chains_and_stars_are_exact(assignment: str) -> None:
    for circuit in (chain_ghz(6), star_ghz(6, x_basis=True)):
        assert_exact(compiled(circuit, assignment, spare=1), circuit)


@pytest.mark.parametrize("count", [2, 3])
def test_a_qft_adder_is_exact_with_far_fewer_pairs(count: int) -> None:
    circuit = qft_adder(8)
    nodes = [node(n, math.ceil(8 / count) + 1) for n in "abc"[:count]]
    links = [link(x, y) for i, x in enumerate("abc"[:count]) for y in "abc"[i + 1 : count]]
    part = partition(circuit, nodes, links, min_nodes=2)
    assert part is not None and len(part.nodes) == count
    program = compile_teleport(circuit, part, nodes, links)
    assert sum(program.bell_pairs.values()) <= part.nonlocal_gates / 2
    assert_exact(program, circuit)


@pytest.mark.parametrize("seed", range(12))
def test_random_cx_cz_circuits_are_exact_over_two_and_three_nodes(seed: int) -> None:
    circuit = random_cx_cz(6, 40, seed)
    for assignment, spare in (("aaabbb", 0), ("aabbcc", 1), ("abcabc", 2)):
        program = compiled(circuit, assignment, spare)
        assert sum(program.bell_pairs.values()) <= program.nonlocal_gates
        assert_exact(program, circuit)


def test_random_circuits_exercise_sharing_and_teledata() -> None:
    shared = moved = 0
    for seed in range(12):
        circuit = random_cx_cz(6, 40, seed)
        program = compiled(circuit, "abcabc", spare=2)
        shared += program.nonlocal_gates - sum(program.bell_pairs.values())
        moved += program.teledata
    assert shared > 50 and moved > 0  # the exactness checks above are not vacuous


@pytest.mark.parametrize("seed", range(8))
def test_qiskit_random_circuits_with_every_gate_are_exact(seed: int) -> None:
    circuit = random_circuit(6, 8, max_operands=2, seed=seed)
    circuit.measure_all()
    for assignment in ("aaabbb", "abcabc"):
        assert_exact(compiled(circuit, assignment, spare=2), circuit)


# -- teledata ------------------------------------------------------------------------------


def _target_run(*, then_local: bool) -> QuantumCircuit:
    """q0 on a is the target of three controls on b, then controls one of them: every gate
    needs its own cat, while a move of q0 to b costs two pairs (one if it never returns)."""
    qc = QuantumCircuit(5, 5)
    for q in range(5):
        qc.ry(0.2 + 0.5 * q, q)
    qc.cx(2, 0)
    qc.cx(3, 0)
    qc.cx(4, 0)
    qc.cx(0, 2)
    if then_local:
        qc.cx(0, 1)
        qc.h(0)
    qc.h(range(5))
    qc.measure(range(5), range(5))
    return qc


def test_teledata_moves_a_qubit_when_that_saves_pairs() -> None:
    circuit = _target_run(then_local=True)
    gadgets = compiled(circuit, "aabbb", spare=1, teledata=False)
    moved = compiled(circuit, "aabbb", spare=1)
    assert gadgets.bell_pairs == {"a-b": 4} and gadgets.teledata == 0
    assert moved.bell_pairs == {"a-b": 2} and moved.teledata == 2  # there and back
    assert moved.qubits_per_node() == {"a": 3, "b": 5}  # b lends its free qubit
    assert_exact(moved, circuit)


def test_a_qubit_that_is_only_measured_afterwards_does_not_come_back() -> None:
    circuit = _target_run(then_local=False)
    program = compiled(circuit, "aabbb", spare=1)
    assert program.bell_pairs == {"a-b": 1} and program.teledata == 1
    assert_exact(program, circuit)


def test_teledata_needs_a_free_qubit_on_the_destination() -> None:
    circuit = _target_run(then_local=True)
    program = compiled(circuit, "aabbb", spare=0)
    assert program.teledata == 0 and program.bell_pairs == {"a-b": 4}
    assert_exact(program, circuit)


@pytest.mark.parametrize(("width", "moves"), [(23, 2), (24, 0)])
def test_a_move_never_makes_the_program_too_wide_to_co_simulate(width: int, moves: int) -> None:
    # The target run on qubits 0-4, idle qubits to fill: data + 2 communication qubits is 25
    # (room for the moved qubit) or 26, the most one agent co-simulates.
    circuit = QuantumCircuit(width, width)
    circuit.compose(_target_run(then_local=True), range(5), range(5), inplace=True)
    assignment = "aabbb" + "a" * (width - 5)
    program = compiled(circuit, assignment, spare=1)
    assert program.teledata == moves
    assert program.circuit.num_qubits == width + 2 + (1 if moves else 0)


def test_packable_runs_are_not_moved() -> None:
    circuit = star_ghz(6, x_basis=True)
    program = compiled(circuit, "abbbbb", spare=3)
    assert program.teledata == 0 and program.bell_pairs == {"a-b": 1}


def test_literal_feed_forward_agrees_for_moves_and_shared_cats() -> None:
    qc = QuantumCircuit(5, 5)
    qc.h(0)
    qc.x(4)
    qc.cx(2, 0)
    qc.cx(3, 0)
    qc.cx(4, 0)
    qc.cx(0, 2)
    qc.cx(0, 1)
    qc.cx(1, 3)
    qc.cx(1, 4)
    qc.measure(range(5), range(5))
    program = compiled(qc, "aabbb", spare=1)
    assert program.teledata == 2 and program.bell_pairs == {"a-b": 3}
    literal = program.original_counts(
        simulate_composite(program.circuit, program.noise, 1000, seed=3, defer=False)
    )
    assert hellinger_fidelity(literal, ideal_distribution(qc)) >= 0.99
    assert_exact(program, qc)


def test_deferred_and_literal_feed_forward_agree_under_noise_with_a_move() -> None:
    circuit = _target_run(then_local=True)
    part, _, _ = placed("aabbb")
    nodes = [node("a", 3, NOISY), node("b", 5, NOISY)]
    program = compile_teleport(circuit, part, nodes, [link("a", "b", 0.95, latency_us=5)])
    assert program.teledata == 2
    deferred = program.original_counts(
        simulate_composite(program.circuit, program.noise, 4000, seed=1, defer=True)
    )
    literal = program.original_counts(
        simulate_composite(program.circuit, program.noise, 4000, seed=7_000_003, defer=False)
    )
    assert hellinger_fidelity(deferred, literal) >= 0.98


# -- what the plan records -----------------------------------------------------------------


def test_the_plan_reserves_the_pairs_the_program_consumes() -> None:
    circuit = star_ghz(6)
    nodes, links = [node("a", 4), node("b", 4)], [link("a", "b")]
    candidates = estimate_candidates(
        circuit, None, nodes, links, shots=1000, timeout_seconds=10, max_sampling_overhead=100
    )
    choice = choose_candidate(candidates, None, "teleport")
    assert not isinstance(choice, str) and isinstance(choice.plan, TeleportProgram)
    assert choice.partition is not None
    plan = plan_status(choice, candidates, strategy_named("teleport").shape(choice, circuit, 1000))
    assert plan.nonlocal_gates == choice.partition.nonlocal_gates
    assert [(u.link, u.bell_pairs, u.raw_bell_pairs) for u in plan.bell_pairs] == [
        (name, n, n)
        for name, n in choice.plan.bell_pairs.items()  # raw: nothing purified
    ]
    assert sum(u.bell_pairs for u in plan.bell_pairs) < plan.nonlocal_gates
    want = reservation("ns", plan, TeleportWork(circuit, choice.plan), 1000, 10)
    assert want[link_resource("ns", "a-b")] == pytest.approx(
        sum(choice.plan.bell_pairs.values()) * 1000 / 10
    )
