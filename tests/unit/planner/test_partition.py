"""Partitioning: capacities, links, few nodes, few Bell pairs."""

from __future__ import annotations

import networkx as nx
from qiskit import QuantumCircuit

from qorch.planner.circuits import interaction_weights
from qorch.planner.partition import naive_partition, partition
from tests.support import ghz

from .support import link, node


def _nonlocal_pairs(circuit: QuantumCircuit, assignment: dict[int, str]) -> set[frozenset[str]]:
    return {
        frozenset((assignment[a], assignment[b]))
        for a, b in interaction_weights(circuit)
        if assignment[a] != assignment[b]
    }


def _qaoa(width: int, seed: int) -> QuantumCircuit:
    graph = nx.random_regular_graph(3, width, seed=seed)
    qc = QuantumCircuit(width)
    qc.h(range(width))
    for a, b in graph.edges:
        qc.rzz(0.4, a, b)
    qc.rx(0.3, range(width))
    return qc


def test_ghz_splits_once_and_keeps_a_communication_qubit_per_node() -> None:
    nodes = [node("a", 6), node("b", 6)]
    placed = partition(ghz(10), nodes, [link("a", "b")])
    assert placed is not None
    assert placed.nonlocal_gates == 1
    assert placed.bell_pairs == {"a-b": 1}
    assert placed.nodes == ("a", "b")
    # 5 + 5: each node keeps one of its 6 qubits for its half of the Bell pairs.
    assert sorted(len(placed.qubits_on(n)) for n in placed.nodes) == [5, 5]


def test_capacities_are_respected() -> None:
    nodes = [node("a", 7), node("b", 4), node("c", 9)]
    links = [link("a", "b"), link("b", "c"), link("a", "c")]
    circuit = _qaoa(16, seed=3)
    placed = partition(circuit, nodes, links)
    assert placed is not None
    free = {n.name: n.free_qubits for n in nodes}
    for name in placed.nodes:
        assert len(placed.qubits_on(name)) <= free[name] - 1
    assert sorted(placed.assignment) == list(range(16))


def test_no_nonlocal_gate_between_unlinked_nodes() -> None:
    # a - b - c in a chain: a and c share no link, so no gate may join them.
    nodes = [node("a", 6), node("b", 6), node("c", 6)]
    links = [link("a", "b"), link("b", "c")]
    circuit = _qaoa(14, seed=5)
    placed = partition(circuit, nodes, links)
    assert placed is not None
    assert frozenset(("a", "c")) not in _nonlocal_pairs(circuit, placed.assignment)
    assert set(placed.bell_pairs) <= {"a-b", "b-c"}
    assert sum(placed.bell_pairs.values()) == placed.nonlocal_gates


def test_unlinked_nodes_cannot_share_a_circuit() -> None:
    assert partition(ghz(10), [node("a", 6), node("b", 6)], []) is None


def test_none_when_the_circuit_is_wider_than_all_nodes_together() -> None:
    nodes = [node("a", 4), node("b", 4)]
    assert partition(ghz(9), nodes, [link("a", "b")]) is None
    assert naive_partition(ghz(9), nodes, [link("a", "b")]) is None


def test_one_node_when_it_fits_unless_told_otherwise() -> None:
    nodes = [node("a", 4), node("big", 12), node("b", 4)]
    links = [link("a", "big"), link("big", "b")]
    placed = partition(ghz(10), nodes, links)
    assert placed is not None and placed.nodes == ("big",) and placed.nonlocal_gates == 0
    spread = partition(ghz(10), nodes, links, min_nodes=2)
    assert spread is not None and len(spread.nodes) == 2 and spread.nonlocal_gates >= 1


def test_fewest_nodes_that_hold_the_circuit() -> None:
    nodes = [node(n, 6) for n in "abcd"]
    links = [link(x, y) for x, y in ["ab", "ac", "ad", "bc", "bd", "cd"]]
    placed = partition(ghz(10), nodes, links)
    assert placed is not None and len(placed.nodes) == 2


def test_better_links_are_preferred_at_equal_cost() -> None:
    nodes = [node("a", 6), node("b", 6), node("c", 6)]
    links = [link("a", "b", 0.8), link("a", "c", 0.99), link("b", "c", 0.8)]
    placed = partition(ghz(10), nodes, links)
    assert placed is not None
    assert placed.bell_pairs == {"a-c": 1}


def test_beats_the_contiguous_baseline_on_a_structured_circuit() -> None:
    nodes = [node("a", 9), node("b", 9)]
    links = [link("a", "b")]
    circuit = _qaoa(16, seed=1)
    ours = partition(circuit, nodes, links)
    naive = naive_partition(circuit, nodes, links)
    assert ours is not None and naive is not None
    assert ours.nonlocal_gates < 0.7 * naive.nonlocal_gates


def test_never_worse_than_the_baseline() -> None:
    nodes = [node("a", 9), node("b", 9)]
    for circuit in (ghz(16), _qaoa(16, seed=2)):
        ours = partition(circuit, nodes, [link("a", "b")])
        naive = naive_partition(circuit, nodes, [link("a", "b")])
        assert ours is not None and naive is not None
        assert ours.nonlocal_gates <= naive.nonlocal_gates


def test_cutting_plans_need_no_links_and_no_communication_qubits() -> None:
    nodes = [node("a", 4), node("b", 4)]
    placed = partition(ghz(8), nodes, [], require_links=False)
    assert placed is not None
    assert placed.bell_pairs == {}
    assert placed.nonlocal_gates == 1
    assert sorted(len(placed.qubits_on(n)) for n in placed.nodes) == [4, 4]
