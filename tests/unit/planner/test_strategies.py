"""Choosing a strategy: the auto rule, the ebit budget and the rejection messages."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import hellinger_fidelity
from qiskit_aer import AerSimulator

from qorch.pipeline.strategies import choose_candidate, strategy_named
from qorch.planner.cutting import CutPlan
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.strategies import Candidate
from qorch.planner.teleport import TeleportProgram
from tests.support import ghz

from .support import NOISY, ansatz, estimate_candidates, link, node


def _candidates(
    circuit: QuantumCircuit,
    nodes: list[NodeSlot],
    links: list[LinkSlot],
    observables: list[str] | None = None,
    *,
    shots: int = 1000,
    timeout: float = 600,
    overhead: float = 100,
) -> dict[str, Candidate]:
    found = estimate_candidates(
        circuit,
        observables,
        nodes,
        links,
        shots=shots,
        timeout_seconds=timeout,
        max_sampling_overhead=overhead,
    )
    assert [c.strategy for c in found] == ["single", "teleport", "cut", "locc-cut"]
    return {c.strategy: c for c in found}


def test_single_wins_when_one_node_holds_the_circuit() -> None:
    nodes = [node("a", 6, NOISY), node("b", 6, NOISY), node("big", 12, NOISY)]
    found = _candidates(ghz(10), nodes, [link("a", "b", 0.95)])
    assert found["single"].feasible and found["single"].plan == "big"
    best = choose_candidate(list(found.values()), fidelity_budget=None)
    assert isinstance(best, Candidate) and best.strategy == "single"


def test_teleport_when_the_circuit_must_span_linked_nodes() -> None:
    nodes = [node("a", 6, NOISY), node("b", 6, NOISY)]
    found = _candidates(ghz(10), nodes, [link("a", "b", 0.95)])
    assert not found["single"].feasible
    assert "no node has 10 free qubits" in found["single"].reason
    assert not found["cut"].feasible and "no observables" in found["cut"].reason
    best = choose_candidate(list(found.values()), fidelity_budget=0.1)
    assert isinstance(best, Candidate) and best.strategy == "teleport"
    assert isinstance(best.plan, TeleportProgram)
    assert 0 < best.estimated_fidelity < 0.95


def test_cut_competes_only_when_observables_are_given() -> None:
    nodes = [node("a", 4, NOISY), node("b", 4, NOISY)]
    found = _candidates(ansatz(), nodes, [], ["ZZZZZZZZ", "XXXXXXXX"])
    assert not found["teleport"].feasible  # no links and no room for communication qubits
    cut = found["cut"]
    assert cut.feasible and isinstance(cut.plan, CutPlan)
    assert cut.sampling_overhead == 81
    assert "sampling overhead 81" in cut.reason
    best = choose_candidate(list(found.values()), fidelity_budget=None)
    assert isinstance(best, Candidate) and best.strategy == "cut"


def test_cut_over_the_overhead_bound_is_infeasible_and_says_so() -> None:
    nodes = [node("a", 4), node("b", 4)]
    found = _candidates(ansatz(), nodes, [], ["Z" * 8], overhead=50)
    assert not found["cut"].feasible
    assert "above the bound 50" in found["cut"].reason
    verdict = choose_candidate(list(found.values()), fidelity_budget=None)
    assert isinstance(verdict, str) and "above the bound 50" in verdict


def test_unreachable_budget_is_rejected_naming_the_best_estimate_and_its_limit() -> None:
    nodes = [node("a", 6, NOISY), node("b", 6, NOISY)]
    found = _candidates(ghz(10), nodes, [link("a", "b", 0.95)])
    teleport = found["teleport"]
    verdict = choose_candidate(list(found.values()), fidelity_budget=0.999)
    assert isinstance(verdict, str)
    assert "fidelityBudget 0.999" in verdict
    assert f"{teleport.estimated_fidelity:.4f}" in verdict
    assert "teleport" in verdict and teleport.limited_by in verdict


def test_links_that_cannot_herald_enough_bell_pairs_in_time_are_rejected() -> None:
    # One Bell pair per shot at 1000 attempts/s and p = 0.1: 10 ms each, 100 s for 10k shots.
    slow = link("a", "b", 0.99, rate_hz=1000, success=0.1)
    nodes = [node("a", 6), node("b", 6)]
    found = _candidates(ghz(10), nodes, [slow], shots=10_000, timeout=60)
    teleport = found["teleport"]
    assert not teleport.feasible
    assert "must herald 10000 Bell pairs" in teleport.reason
    assert "timeoutSeconds 60" in teleport.reason
    verdict = choose_candidate(list(found.values()), fidelity_budget=None)
    assert isinstance(verdict, str) and "must herald" in verdict
    # The same job with a longer timeout fits.
    relaxed = _candidates(ghz(10), nodes, [slow], shots=10_000, timeout=120)
    assert relaxed["teleport"].feasible


def test_a_forced_strategy_is_considered_alone() -> None:
    nodes = [node("a", 6), node("b", 6), node("big", 12)]
    found = list(_candidates(ghz(10), nodes, [link("a", "b")]).values())
    forced = choose_candidate(found, fidelity_budget=None, strategy="teleport")
    assert isinstance(forced, Candidate) and forced.strategy == "teleport"
    assert isinstance(choose_candidate(found, None, strategy="cut"), str)


def test_equal_estimates_prefer_the_simpler_strategy() -> None:
    nodes = [node("a", 6), node("b", 6), node("big", 12)]
    found = list(_candidates(ghz(10), nodes, [link("a", "b")]).values())
    # Noiseless: single and teleport predict the same, the expected Hellinger fidelity of
    # finite shots of the exact distribution, just under 1.
    by_name = {c.strategy: c for c in found}
    assert by_name["single"].estimated_fidelity == by_name["teleport"].estimated_fidelity
    best = choose_candidate(found, fidelity_budget=0.999)
    assert isinstance(best, Candidate) and best.strategy == "single"
    assert best.estimated_fidelity == pytest.approx(1.0, abs=1e-3)


def test_a_mid_circuit_measurement_before_a_remote_gate_is_teleported_correctly() -> None:
    qc = QuantumCircuit(6, 6)
    qc.h(0)
    for q in range(3):
        qc.cx(q, q + 1)
    qc.measure(3, 3)  # measured, then used by a gate that crosses the partition
    qc.cx(3, 4)
    qc.cx(4, 5)
    qc.cx(3, 0)
    qc.measure(range(6), range(6))

    found = estimate_candidates(
        qc, None, [node("a", 5), node("b", 5)], [link("a", "b")],
        shots=100, timeout_seconds=600, max_sampling_overhead=1e4,
    )  # fmt: skip

    teleport = next(c for c in found if c.strategy == "teleport")
    assert teleport.feasible, teleport.reason
    program = teleport.plan
    assert isinstance(program, TeleportProgram)
    sim = AerSimulator(seed_simulator=11)
    shots = 20_000
    expected = sim.run(qc, shots=shots).result().get_counts()
    got = program.original_counts(sim.run(program.circuit, shots=shots).result().get_counts())
    # Both distributions are uniform over two outcomes; with seeded sampling the fidelity is
    # fixed, and 0.99 sits far below what 20k shots of the same distribution give (~0.9999).
    assert hellinger_fidelity(expected, got) > 0.99


def test_a_failing_estimate_makes_its_candidate_infeasible_and_spares_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'name'")

    monkeypatch.setattr(strategy_named("teleport"), "estimate", broken)

    found = estimate_candidates(
        ghz(4), None, [node("a", 5), node("b", 5)], [link("a", "b")],
        shots=100, timeout_seconds=600, max_sampling_overhead=1e4,
    )  # fmt: skip

    by_name = {c.strategy: c for c in found}
    assert by_name["single"].feasible
    assert not by_name["teleport"].feasible
    assert "could not be estimated (AttributeError" in by_name["teleport"].reason


def test_a_forced_strategy_is_estimated_alone() -> None:
    found = estimate_candidates(
        ghz(4), None, [node("a", 5), node("b", 5)], [link("a", "b")],
        shots=100, timeout_seconds=600, max_sampling_overhead=1e4, strategy="single",
    )  # fmt: skip

    assert [c.strategy for c in found] == ["single"]
