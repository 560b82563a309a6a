"""Device time and subexperiments of each strategy's candidate, from declared figures."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit

from qorch.api import NoiseSpec
from qorch.planner.strategies import Demand, estimate_single
from qorch.planner.workload import workload
from tests.support import ghz

from .support import NOISY, ansatz, estimate_candidates, link, node


def _demand(circuit: QuantumCircuit, nodes, links=(), observables=None, shots=1000) -> Demand:
    return Demand(circuit, observables, nodes, list(links), shots, 600, 100)


def test_a_single_shot_is_its_depth_in_slowest_gates_plus_a_measurement() -> None:
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    demand = _demand(bell, [node("a", 2, NOISY)])
    load = workload(estimate_single(demand), demand)
    # h becomes sx between frame changes (rz is free): sx, cx, measure are three layers of
    # the slowest gate (300 ns), and one measurement (1500 ns) ends the shot.
    assert load.seconds == pytest.approx(1000 * (3 * 300e-9 + 1500e-9))
    assert load.subexperiments is None


def test_without_declared_gate_times_there_is_no_estimate() -> None:
    demand = _demand(ghz(3), [node("a", 3, NoiseSpec(two_qubit_error=0.01))])
    assert workload(estimate_single(demand), demand).seconds is None


def test_a_teleport_shot_also_waits_for_its_bell_pairs_and_messages() -> None:
    nodes = [node("a", 6, NOISY), node("b", 6, NOISY)]
    slow = link("a", "b", 0.99, rate_hz=1e3, success=0.5, latency_us=50)
    found = estimate_candidates(
        ghz(10), None, nodes, [slow], shots=100, timeout_seconds=600, max_sampling_overhead=100
    )
    teleport = next(c for c in found if c.strategy == "teleport")
    assert teleport.feasible, teleport.reason
    load = workload(teleport, _demand(ghz(10), nodes, [slow], shots=100))
    pairs = sum(teleport.plan.bell_pairs.values())  # type: ignore[union-attr]
    waits = 100 * pairs * (slow.seconds_per_pair + 50e-6)
    assert load.seconds is not None and waits < load.seconds < waits + 100 * 1e-4


def test_a_cut_counts_every_subexperiment_of_the_busiest_node() -> None:
    nodes = [node("a", 4, NOISY), node("b", 4, NOISY)]
    circuit, observables = ansatz(6, layers=1), ["ZZZZZZ"]
    found = estimate_candidates(
        circuit, observables, nodes, [], shots=1000, timeout_seconds=600, max_sampling_overhead=100
    )
    cut = next(c for c in found if c.strategy == "cut")
    assert cut.feasible, cut.reason
    load = workload(cut, _demand(circuit, nodes, observables=observables))
    assert load.subexperiments == cut.plan.num_subexperiments  # type: ignore[union-attr]
    most = max(len(s) for s in cut.plan.subexperiments.values())  # type: ignore[union-attr]
    # At least one layer and a measurement per shot of each subexperiment on that node.
    assert load.seconds is not None and load.seconds >= most * 1000 * (300e-9 + 1500e-9)


def test_an_infeasible_candidate_has_no_workload() -> None:
    demand = _demand(ghz(5), [node("a", 3, NOISY)])
    candidate = estimate_single(demand)
    assert not candidate.feasible
    assert workload(candidate, demand).seconds is None


def test_the_measured_classical_path_is_time_for_locc_messages_only() -> None:
    import dataclasses

    from qorch.planner.strategies import estimate_locc_cut

    from .test_locc_estimate import OBSERVABLES, handover

    nodes = [node("a", 3, NOISY), node("b", 3, NOISY)]
    physical = link("a", "b", latency_us=10)
    measured = dataclasses.replace(physical, measured_latency_us=2000.0)
    loads = []
    for x in (physical, measured):
        demand = Demand(handover(), OBSERVABLES, nodes, [x], 3000, 600, 1000)
        locc = estimate_locc_cut(demand)
        assert locc.feasible, locc.reason
        loads.append(workload(locc, demand).seconds)
    plan = locc.plan
    assert loads[0] is not None and loads[1] is not None
    # 1000 shots per subexperiment: one message of up to 1024 outcomes each
    messages = plan.num_subexperiments  # type: ignore[union-attr]
    assert loads[1] - loads[0] == pytest.approx(messages * 2000e-6)
    # a co-simulated teleport program sends nothing over that path
    demand = _demand(ghz(4), nodes, [measured], shots=100)
    teleport = next(
        c
        for c in estimate_candidates(
            ghz(4),
            None,
            nodes,
            [measured],
            shots=100,
            timeout_seconds=600,
            max_sampling_overhead=100,
        )
        if c.strategy == "teleport"
    )
    plain = next(
        c
        for c in estimate_candidates(
            ghz(4),
            None,
            nodes,
            [physical],
            shots=100,
            timeout_seconds=600,
            max_sampling_overhead=100,
        )
        if c.strategy == "teleport"
    )
    assert workload(teleport, demand).seconds == workload(plain, demand).seconds
    assert teleport.estimated_fidelity == plain.estimated_fidelity


def test_a_node_without_noise_or_gate_times_never_translates_the_circuit(monkeypatch) -> None:
    """Nothing in its estimate or its workload counts gates: a 20-qubit circuit's
    translation to the node's gates cost the plan 44 ms for nothing."""
    import qorch.planner.strategies as strategies
    from qorch.single_flight import SingleFlight

    translated: list[int] = []
    real = strategies.for_distribution

    def counted(circuit, basis):  # type: ignore[no-untyped-def]
        translated.append(circuit.num_qubits)
        return real(circuit, basis)

    monkeypatch.setattr(strategies, "for_distribution", counted)
    monkeypatch.setattr(strategies, "_PROFILES", SingleFlight(16))  # none kept from before
    clean = _demand(ghz(3), [node("clean", 3)])
    candidate = estimate_single(clean)
    assert candidate.feasible and candidate.limited_by == ""
    assert workload(candidate, clean).seconds is None
    assert translated == []
    noisy = _demand(ghz(4), [node("noisy", 4, NOISY)])
    workload(estimate_single(noisy), noisy)
    assert translated == [4]  # counted once, for the estimate and the workload alike
