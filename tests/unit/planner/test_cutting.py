"""Circuit cutting: subexperiments per node, knitted back within the stated standard errors."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.primitives import SamplerResult
from qiskit.result import QuasiDistribution
from qiskit_addon_cutting import reconstruct_expectation_values
from qiskit_aer import AerSimulator

from qorch.planner.cutting import CutInfeasible, CutPlan, exact_expectation_values, plan_cut
from qorch.planner.partition import partition

from .support import ansatz, node

OBSERVABLES = ["ZZZZZZZZ", "ZIIIIIIZ", "XXXXXXXX", "IIIYXIII"]
SHOTS = 1000


def _run(plan: CutPlan) -> dict[str, list[dict[str, int]]]:
    # One run per circuit: Aer batches these small circuits slower than it runs them singly.
    # Seeds far apart: Aer seeds shot i with seed + i, so close seeds correlate subexperiments.
    simulator = AerSimulator()
    return {
        name: [
            simulator.run(c, shots=SHOTS, seed_simulator=(k + 1) * 1_000_003).result().get_counts()
            for k, c in enumerate(circuits)
        ]
        for name, circuits in plan.subexperiments.items()
    }


@pytest.fixture(scope="module")
def cut() -> tuple[CutPlan, dict[str, list[dict[str, int]]]]:
    nodes = [node("a", 4), node("b", 4)]
    placed = partition(ansatz(), nodes, [], require_links=False)
    assert placed is not None
    plan = plan_cut(ansatz(), OBSERVABLES, placed, max_sampling_overhead=100)
    return plan, _run(plan)


def test_an_eight_qubit_ansatz_cut_over_two_four_qubit_nodes(
    cut: tuple[CutPlan, dict[str, list[dict[str, int]]]],
) -> None:
    plan, _ = cut
    assert set(plan.subexperiments) == {"a", "b"}
    assert plan.num_cuts == 2
    assert plan.sampling_overhead == pytest.approx(81)
    assert all(c.num_qubits == 4 for circuits in plan.subexperiments.values() for c in circuits)


def test_reconstruction_matches_exact_values_within_three_standard_errors(
    cut: tuple[CutPlan, dict[str, list[dict[str, int]]]],
) -> None:
    plan, results = cut
    values, errors = plan.reconstruct(results)
    exact = exact_expectation_values(ansatz(), OBSERVABLES)
    for value, error, truth in zip(values, errors, exact, strict=True):
        assert 0 < error < 0.1
        assert abs(value - truth) <= 3 * error


def test_values_agree_with_the_library_reconstruction(
    cut: tuple[CutPlan, dict[str, list[dict[str, int]]]],
) -> None:
    plan, results = cut
    as_sampler = {
        name: SamplerResult(
            quasi_dists=[
                QuasiDistribution(
                    {int(k.replace(" ", ""), 2): n / sum(c.values()) for k, n in c.items()}
                )
                for c in counts
            ],
            metadata=[{} for _ in counts],
        )
        for name, counts in results.items()
    }
    library = reconstruct_expectation_values(as_sampler, plan.coefficients, plan.subobservables)
    values, _ = plan.reconstruct(results)
    assert values == pytest.approx([float(v) for v in library], abs=1e-9)


def test_bitstrings_with_or_without_register_spaces_read_the_same(
    cut: tuple[CutPlan, dict[str, list[dict[str, int]]]],
) -> None:
    plan, results = cut
    assert any(" " in key for key in results["a"][0])
    squashed = {
        name: [{k.replace(" ", ""): n for k, n in c.items()} for c in counts]
        for name, counts in results.items()
    }
    assert plan.reconstruct(squashed) == plan.reconstruct(results)


def test_standard_errors_shrink_with_more_shots(
    cut: tuple[CutPlan, dict[str, list[dict[str, int]]]],
) -> None:
    plan, results = cut
    quadrupled = {
        name: [{k: 4 * n for k, n in c.items()} for c in counts] for name, counts in results.items()
    }
    _, errors = plan.reconstruct(results)
    _, fewer = plan.reconstruct(quadrupled)
    assert fewer == pytest.approx([e / 2 for e in errors], rel=0.01)


def test_the_overhead_bound_is_enforced_before_building_anything() -> None:
    placed = partition(ansatz(layers=3), [node("a", 4), node("b", 4)], [], require_links=False)
    assert placed is not None
    with pytest.raises(CutInfeasible, match="sampling overhead of 729"):
        plan_cut(ansatz(layers=3), ["Z" * 8], placed, max_sampling_overhead=100)


def test_final_measurements_are_ignored_and_bad_observables_refused() -> None:
    circuit = ansatz()
    circuit.measure_all()
    placed = partition(circuit, [node("a", 4), node("b", 4)], [], require_links=False)
    assert placed is not None
    assert plan_cut(circuit, ["Z" * 8], placed, 100).num_cuts == 2
    with pytest.raises(ValueError, match="8 characters"):
        plan_cut(circuit, ["ZZ"], placed, 100)
    with pytest.raises(ValueError, match="8 characters"):
        plan_cut(circuit, ["Q" * 8], placed, 100)


def test_exact_expectation_values_use_qiskit_qubit_order() -> None:
    circuit = ansatz(width=2, layers=0)
    circuit.x(0)
    assert exact_expectation_values(circuit, ["IZ", "ZI"]) == pytest.approx([-1.0, 1.0])
    assert np.isclose(exact_expectation_values(circuit, ["ZZ"])[0], -1.0)
