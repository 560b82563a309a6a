"""The planner's LOCC-cut estimate beside the gate cut: sampling overhead gamma^2, the link's
classical path required, its latency bounded by the timeout, and the lower overhead chosen."""

from __future__ import annotations

from qiskit import QuantumCircuit

from qorch.pipeline.strategies import choose_candidate, estimate_candidates
from qorch.planner.locc import LoccCutPlan
from qorch.planner.strategies import Demand, estimate_cut, estimate_locc_cut

from .support import link, node


def handover(two_wires: bool = False) -> QuantumCircuit:
    """q0..q2 entangled, then q2 (and q1) meet q3, q4 on the other node."""
    qc = QuantumCircuit(5)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(0, 2)
    qc.ry(0.7, 2)
    qc.cx(1, 2)
    qc.cx(2, 3)
    qc.cx(2, 4)
    if two_wires:
        qc.cx(1, 3)
    qc.cx(3, 4)
    return qc


OBSERVABLES = ["ZZZZZ", "XXXXX"]


def demand(circuit: QuantumCircuit, **kw: object) -> Demand:
    args: dict[str, object] = {
        "circuit": circuit,
        "observables": OBSERVABLES,
        "nodes": [node("a", 3), node("b", 3)],
        "links": [link("a", "b", latency_us=10)],
        "shots": 1000,
        "timeout_seconds": 60,
        "max_sampling_overhead": 1000,
    }
    args.update(kw)
    return Demand(**args)  # type: ignore[arg-type]


def test_one_wire_costs_9_where_the_gate_cut_costs_81() -> None:
    locc = estimate_locc_cut(demand(handover()))
    cut = estimate_cut(demand(handover()))
    assert locc.feasible and cut.feasible, (locc.reason, cut.reason)
    assert locc.sampling_overhead == 9 and cut.sampling_overhead == 81
    assert isinstance(locc.plan, LoccCutPlan) and locc.plan.cut.wires == (2,)
    assert "sampling overhead 9 (without communication 16" in locc.reason
    assert "over link a-b (10 us each)" in locc.reason


def test_auto_reports_every_candidate_and_takes_the_lower_overhead() -> None:
    candidates = estimate_candidates(demand(handover()))
    by_name = {c.strategy: c for c in candidates}
    assert {"single", "teleport", "cut", "locc-cut"} <= set(by_name)
    assert by_name["cut"].estimated_fidelity == by_name["locc-cut"].estimated_fidelity == 1.0
    chosen = choose_candidate(candidates, None)
    assert not isinstance(chosen, str) and chosen.strategy == "locc-cut"


def test_two_wires_cost_49() -> None:
    locc = estimate_locc_cut(demand(handover(True), nodes=[node("a", 3), node("b", 4)]))
    assert locc.feasible, locc.reason
    assert isinstance(locc.plan, LoccCutPlan) and locc.plan.wires == 2
    assert locc.sampling_overhead == 49
    assert "without communication 256" in locc.reason


def test_without_a_link_there_is_no_classical_path() -> None:
    locc = estimate_locc_cut(demand(handover(), links=[]))
    assert not locc.feasible and "classical path" in locc.reason


def test_a_message_per_shot_must_fit_the_timeout() -> None:
    slow = demand(handover(), links=[link("a", "b", latency_us=1e5)], timeout_seconds=10)
    locc = estimate_locc_cut(slow)
    assert not locc.feasible
    assert "a message per shot at 100000 us: 100 s > timeoutSeconds 10" in locc.reason


def test_the_overhead_bound_and_observables_apply() -> None:
    assert (
        "above the bound 5" in estimate_locc_cut(demand(handover(), max_sampling_overhead=5)).reason
    )
    assert "no observables" in estimate_locc_cut(demand(handover(), observables=None)).reason


def test_no_room_for_either_side() -> None:
    locc = estimate_locc_cut(demand(handover(), nodes=[node("a", 2), node("b", 2)]))
    assert not locc.feasible and "free qubits" in locc.reason
