"""The predicted Hellinger fidelity of a job's counts against what the job then measures."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from qiskit import QuantumCircuit

import qorch.planner.prediction as prediction
from qorch.api import QuantumNodeSpec
from qorch.api.quantum_node import NoiseSpec
from qorch.pipeline.verification import verify_counts
from qorch.planner.prediction import (
    expected_hellinger,
    ideal_output,
    predict_on_node,
    predict_program,
)
from qorch.planner.strategies import Demand, estimate_single, estimate_teleport
from qorch.planner.strategies import _on_node as on_node
from qorch.planner.teleport import TeleportProgram
from qorch.qpu.composite_noise import simulate_composite
from qorch.qpu.executor import NodeExecutor
from qorch.single_flight import SingleFlight
from tests.support import ghz

from .support import BASIS, link, node

NOISY = NoiseSpec(
    t1_microseconds=120,
    t2_microseconds=90,
    single_qubit_error=0.0005,
    two_qubit_error=0.01,
    readout_error=0.03,
    single_qubit_gate_nanoseconds=35,
    two_qubit_gate_nanoseconds=300,
    measure_nanoseconds=1200,
)


def test_a_certain_outcome_sampled_is_always_fidelity_one() -> None:
    p = np.array([0.0, 1.0, 0.0, 0.0])
    assert expected_hellinger(p, p, 100) == pytest.approx(1.0)


def test_many_outcomes_lose_what_finite_sampling_loses() -> None:
    """K equally likely outcomes, N shots: about 1 - (K - 1) / (4 N) while K << N, and about
    N / K times a constant once every shot lands on an outcome of its own."""
    p = np.full(64, 1 / 64)
    assert expected_hellinger(p, p, 4000) == pytest.approx(1 - 63 / 16000, abs=2e-3)
    wide = np.full(2**16, 2.0**-16)
    assert expected_hellinger(wide, wide, 100) < 0.01


def test_more_outcomes_than_shots_are_drawn_shot_by_shot_alike_and_in_bounded_memory() -> None:
    """Where the outcomes outnumber the shots, the shots are drawn one by one (the counts of
    a multinomial): the same expectation as the multinomial draws, without a draws x
    outcomes matrix. Every shot on an outcome of its own gives about N / K."""
    rng = np.random.default_rng(5)
    q = rng.dirichlet(np.ones(2**12))
    p = 0.5 * q + 0.5 * rng.dirichlet(np.ones(2**12))
    shots = 2000  # fewer than the 4096 outcomes
    sparse = expected_hellinger(p, q, shots)
    draws = np.random.default_rng(9).multinomial(shots, q, size=400)
    dense = (np.sqrt(draws) @ np.sqrt(p / shots)) ** 2
    # 24 draws against 400: the difference's standard error, 5 of them apart at most.
    spread = dense.std() * np.sqrt(1 / 24 + 1 / 400)
    assert sparse == pytest.approx(dense.mean(), abs=5 * spread)
    width = 22
    uniform = np.full(2**width, 2.0**-width)
    tracemalloc.start()
    try:
        fidelity = expected_hellinger(uniform, uniform, 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fidelity == pytest.approx(1000 / 2**width, rel=0.01)
    # One copy of the outcomes' probabilities and small temporaries: a multinomial's draws
    # alone took 24 copies.
    assert peak < 2 * 2**width * 8


def test_readout_alone_on_ghz_is_the_analytic_fidelity() -> None:
    """Each of n bits misread with probability e: the two GHZ outcomes keep (1 - e)^n + e^n
    of the weight between them, and that is the Hellinger fidelity (up to sampling)."""
    n, e = 5, 0.05
    circuit = ghz(n)
    ideal = ideal_output(circuit)
    assert ideal is not None
    predicted = predict_on_node(circuit, NoiseSpec(readout_error=e), BASIS, ideal, 200_000)
    assert predicted == pytest.approx((1 - e) ** n + e**n, abs=2e-3)


def test_the_prediction_is_repeatable_and_needs_final_measurements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuit = ghz(6)
    ideal = ideal_output(circuit)
    assert ideal is not None
    first = predict_on_node(circuit, NOISY, BASIS, ideal, 4000)
    monkeypatch.setattr(
        prediction, "_PREDICTIONS", SingleFlight(8, keep_none=False)
    )  # simulated again
    assert first == predict_on_node(circuit, NOISY, BASIS, ideal, 4000)
    dynamic = QuantumCircuit(2, 2)
    dynamic.h(0)
    dynamic.measure(0, 0)
    dynamic.cx(0, 1)
    dynamic.measure(1, 1)
    assert ideal_output(dynamic) is None


@pytest.mark.parametrize("width", [5, 10])  # density matrix; trajectories
def test_single_estimate_predicts_the_measured_fidelity(width: int) -> None:
    circuit = ghz(width)
    demand = Demand(circuit, None, [node("a", width, NOISY)], [], 4000, 600, 100)
    candidate = estimate_single(demand)
    spec = QuantumNodeSpec(qubits=width, noise=NOISY, basis_gates=list(BASIS))
    counts = NodeExecutor(spec).run(circuit, 4000, seed=3).counts
    measured = verify_counts(circuit, counts, None).hellinger_fidelity
    assert measured is not None
    # The measurement's own shot noise is about 0.01 here; the no-error probability misses
    # by more than the prediction may.
    assert candidate.estimated_fidelity == pytest.approx(measured, abs=0.04)


def test_teleport_estimate_predicts_the_measured_fidelity(monkeypatch: pytest.MonkeyPatch) -> None:
    circuit = ghz(4)
    nodes = [node("a", 3, NOISY), node("b", 3, NOISY)]
    demand = Demand(circuit, None, nodes, [link("a", "b", 0.95)], 4000, 600, 100)
    candidate = estimate_teleport(demand)
    program = candidate.plan
    assert candidate.feasible and isinstance(program, TeleportProgram)
    raw = simulate_composite(program.circuit, program.noise, 4000, seed=3)
    counts = program.original_counts(raw)
    measured = verify_counts(circuit, counts, None).hellinger_fidelity
    assert measured is not None
    assert candidate.estimated_fidelity == pytest.approx(measured, abs=0.04)
    assert program.fidelity.lower_bound < candidate.estimated_fidelity
    ideal = ideal_output(circuit)
    assert ideal is not None
    monkeypatch.setattr(
        prediction, "_PREDICTIONS", SingleFlight(8, keep_none=False)
    )  # simulated again
    again = predict_program(program.circuit, program.noise, ideal, 4000)
    assert again == candidate.estimated_fidelity


def graph_state(n: int) -> QuantumCircuit:
    """A Clifford circuit whose output spreads over all 2^n outcomes."""
    qc = QuantumCircuit(n, n)
    qc.h(range(n))
    for q in range(n - 1):
        qc.cz(q, q + 1)
    qc.h(range(n))
    qc.measure(range(n), range(n))
    return qc


def test_trajectories_of_a_widely_spread_clifford_circuit_run_on_the_statevector() -> None:
    # The stabilizer method lists probabilities outcome by outcome: for a graph state that
    # is every outcome, for a GHZ state two of them.
    spread, narrow = graph_state(10), ghz(16)
    spread.remove_final_measurements()
    narrow.remove_final_measurements()
    assert prediction._trajectory_method(spread, 2**10) == "statevector"
    assert prediction._trajectory_method(narrow, 2) == "automatic"


def test_the_method_of_the_trajectories_does_not_change_the_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuit = graph_state(13)  # wider than an exact prediction: trajectories
    ideal = ideal_output(circuit)
    assert ideal is not None
    methods: list[str] = []
    real = prediction._trajectory_method

    def seen(body: QuantumCircuit, outcomes: int) -> str:
        methods.append(real(body, outcomes))
        return methods[-1]

    monkeypatch.setattr(prediction, "_trajectory_method", seen)
    on_statevector = predict_on_node(circuit, NOISY, BASIS, ideal, 4000)
    monkeypatch.setattr(prediction, "STABILIZER_OUTCOME_COST", 0)  # always Aer's choice
    monkeypatch.setattr(prediction, "_PREDICTIONS", SingleFlight(8, keep_none=False))
    on_stabilizer = predict_on_node(circuit, NOISY, BASIS, ideal, 4000)
    assert methods == ["statevector", "automatic"]
    assert on_statevector is not None and on_stabilizer is not None
    # Seeded alike, both methods draw the same trajectories.
    assert on_statevector == pytest.approx(on_stabilizer, abs=1e-6)


def test_the_prediction_is_one_density_matrix_where_that_costs_less_than_trajectories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    methods: list[str] = []
    real = prediction._simulate

    def seen(circuit: QuantumCircuit, model: object, runs: int, method: str) -> object:
        methods.append(method)
        return real(circuit, model, runs, method)  # type: ignore[arg-type]

    circuit, wider = graph_state(9), graph_state(10)
    ideal, wider_ideal = ideal_output(circuit), ideal_output(wider)
    assert ideal is not None and wider_ideal is not None
    monkeypatch.setattr(prediction, "_simulate", seen)
    predict_on_node(circuit, NOISY, BASIS, ideal, 4000)  # 167 trajectories: 2^9 < 4 x 167
    predict_on_node(circuit, NOISY, BASIS, ideal, 400)  # 24 trajectories
    # The job itself is one density matrix (4000 shots > 2^10), its prediction trajectories.
    predict_on_node(wider, NOISY, BASIS, wider_ideal, 4000)
    assert methods == ["density_matrix", "statevector", "statevector"]


def test_a_simulation_expected_to_take_too_long_is_not_run(monkeypatch: pytest.MonkeyPatch):
    """The estimate then stays the lower bound: a prediction must not hold the planner's
    simulation process for minutes (a hostile circuit within the sanitizer's limits)."""
    circuit, nodes = ghz(4), [node("a", 5, NOISY)]
    monkeypatch.setattr(prediction, "_PREDICTIONS", SingleFlight(8, keep_none=False))
    ideal = ideal_output(circuit)
    monkeypatch.setattr(prediction, "MAX_SECONDS", 0.0)

    def simulate(*args: object) -> None:
        raise AssertionError("simulated")

    monkeypatch.setattr(prediction, "_simulate", simulate)
    demand = Demand(circuit, None, nodes, [], 4000, 600, 100, known_ideal=ideal)
    candidate = estimate_single(demand)
    assert candidate.feasible
    assert candidate.estimated_fidelity == on_node(circuit, nodes[0], "").lower_bound


def test_teleport_is_refused_by_width_before_its_program_is_compiled(
    monkeypatch: pytest.MonkeyPatch,
):
    import qorch.planner.strategies as strategies

    def compile_teleport(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled")  # minutes, for thousands of nonlocal gates

    monkeypatch.setattr(strategies, "compile_teleport", compile_teleport)
    nodes = [node("a", 4, NOISY), node("b", 4, NOISY)]
    demand = Demand(ghz(6), None, nodes, [link("a", "b", 0.95)], 100, 600, 100, 7)
    candidate = estimate_teleport(demand)
    assert not candidate.feasible
    assert candidate.reason == (
        "the co-simulated program needs 8 qubits or more, more than one agent simulates (7)"
    )
