"""Output distributions knitted from cut subexperiments, against exact distributions.

Statistical bounds: each outcome's quasi-probability lies within 6 of its standard errors
(plus one shot's worth) of the exact probability; for 64 outcomes a Gaussian error breaks
this with probability below 1e-7. The runs are seeded, so each test is deterministic.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.result import QuasiDistribution

from qorch.pipeline.verification import exact_outcome_probabilities
from qorch.planner import cut_distribution
from qorch.planner.cut_distribution import (
    DistributionPlan,
    NodeTerms,
    OutputRequest,
    OutputTooWide,
    check_request,
    knit,
    nearest_probabilities,
    plan_cut_distribution,
    reduce_results,
    top_outcomes,
)
from qorch.planner.cutting import CutInfeasible

from .cut_circuits import ghz, halves, qaoa_ring, random_circuit, run

SHOTS = 2000
CIRCUITS = {
    "ghz6": ghz(6),
    "qaoa6": qaoa_ring(6),
    "random6": random_circuit(6, crossing=2, seed=7),
}

Knitted = tuple[DistributionPlan, list[NodeTerms], list[float]]


@functools.cache
def _knit(name: str) -> Knitted:
    plan = plan_cut_distribution(CIRCUITS[name], halves(6), 1000, OutputRequest())
    nodes = reduce_results(plan, run(plan, SHOTS, seed=11))
    return plan, nodes, [c for c, _ in plan.knitting.coefficients]


@pytest.fixture(params=sorted(CIRCUITS))
def knitted(request: pytest.FixtureRequest) -> tuple[str, Knitted]:
    return request.param, _knit(request.param)


def _exact(circuit: QuantumCircuit, qubits: tuple[int, ...]) -> np.ndarray:
    exact = exact_outcome_probabilities(circuit, qubits, np.arange(1 << len(qubits)))
    assert exact is not None
    return exact[0]


def _dense(quasi: cut_distribution.Quasi) -> tuple[np.ndarray, np.ndarray]:
    values = np.zeros(1 << len(quasi.qubits))
    errors = np.zeros_like(values)
    values[quasi.outcomes] = quasi.values
    errors[quasi.outcomes] = quasi.standard_errors
    return values, errors


def test_ghz6_is_cut_into_two_nodes_of_three_with_one_cut() -> None:
    plan = plan_cut_distribution(ghz(6), halves(6), 1000, OutputRequest())
    assert plan.knitting.num_cuts == 1 and plan.knitting.sampling_overhead == pytest.approx(9)
    assert dict(plan.node_qubits) == {"a": (0, 1, 2), "b": (3, 4, 5)}
    assert plan.qubits == tuple(range(6))
    for circuits in plan.knitting.subexperiments.values():
        assert all(c.num_qubits == 3 for c in circuits)


def test_every_outcome_is_within_six_standard_errors_of_the_exact_probability(
    knitted: tuple[str, Knitted],
) -> None:
    name, (plan, nodes, coefficients) = knitted
    values, errors = _dense(knit(nodes, coefficients, plan.qubits))
    exact = _exact(CIRCUITS[name], plan.qubits)
    assert np.all(errors < 0.05), name
    worst = np.abs(values - exact) - 6 * errors - 1 / SHOTS
    assert worst.max() <= 0, (name, int(worst.argmax()), values[worst.argmax()])
    # The nearest distribution is close to the exact one as a whole, too.
    probabilities = np.zeros_like(values)
    quasi = knit(nodes, coefficients, plan.qubits)
    probabilities[quasi.outcomes] = nearest_probabilities(quasi.values / quasi.values.sum())
    assert probabilities.min() >= 0 and probabilities.sum() == pytest.approx(1)
    assert np.sqrt(probabilities * exact).sum() ** 2 > 0.9, name


def test_ghz6_puts_its_weight_on_all_zeros_and_all_ones() -> None:
    plan, nodes, coefficients = _knit("ghz6")
    quasi = knit(nodes, coefficients, plan.qubits)
    top = {int(o) for o in quasi.outcomes[np.argsort(-quasi.values)[:2]]}
    assert top == {0, 63}


def test_a_marginal_is_the_sum_of_the_full_distribution_over_the_other_bits(
    knitted: tuple[str, Knitted],
) -> None:
    name, (plan, nodes, coefficients) = knitted
    full, _ = _dense(knit(nodes, coefficients, plan.qubits))
    marginal, errors = _dense(knit(nodes, coefficients, (1, 3, 4)))
    summed = full.reshape([2] * 6).sum(axis=(0, 3, 5)).reshape(-1)  # keeps bits 4, 3, 1
    np.testing.assert_allclose(marginal, summed, atol=1e-12)
    exact = _exact(CIRCUITS[name], (1, 3, 4))
    assert (np.abs(marginal - exact) <= 6 * errors + 1 / SHOTS).all(), name


def test_fixed_bits_give_the_joint_probability(knitted: tuple[str, Knitted]) -> None:
    _, (plan, nodes, coefficients) = knitted
    full, _ = _dense(knit(nodes, coefficients, plan.qubits))
    joint, _ = _dense(knit(nodes, coefficients, (0, 4), fixed={2: 1, 5: 0}))
    tensor = full.reshape([2] * 6)  # axis a is qubit 5 - a
    # q5 = 0, q2 = 1 leaves axes q4, q3, q1, q0; summing q3 and q1 leaves (q4, q0).
    expected = tensor[0, :, :, 1, :, :].sum(axis=(1, 2))
    np.testing.assert_allclose(joint, expected.reshape(-1), atol=1e-12)


def test_top_outcomes_by_dynamic_definition(knitted: tuple[str, Knitted]) -> None:
    name, (plan, nodes, coefficients) = knitted
    found = top_outcomes(nodes, coefficients, plan.qubits, k=4, chunk=2)
    assert len(found.values) == 4
    assert list(found.values) == sorted(found.values, reverse=True)
    full, errors = _dense(knit(nodes, coefficients, plan.qubits))
    # Each outcome resolved is knitted exactly as in the full distribution.
    np.testing.assert_allclose(found.values, full[found.outcomes], atol=1e-12)
    exact = _exact(CIRCUITS[name], plan.qubits)
    fourth = np.sort(exact)[-4]
    slack = 12 * errors.max() + 2 / SHOTS  # two outcomes' errors apart
    assert (exact[found.outcomes] >= fourth - slack).all(), name


def test_an_unmeasured_node_still_contributes_its_sign() -> None:
    circuit = ghz(6)
    circuit.remove_final_measurements()
    measured = QuantumCircuit(6, 2)
    measured.compose(circuit, inplace=True)
    measured.measure([0, 2], [0, 1])  # node "a" only
    plan = plan_cut_distribution(measured, halves(6), 1000, OutputRequest())
    assert dict(plan.node_qubits) == {"a": (0, 2), "b": ()}
    nodes = reduce_results(plan, run(plan, SHOTS, seed=5))
    quasi = knit(nodes, [c for c, _ in plan.knitting.coefficients], plan.qubits)
    values, errors = _dense(quasi)
    exact = _exact(measured, plan.qubits)
    assert (np.abs(values - exact) <= 6 * errors + 1 / SHOTS).all()


def test_knitting_a_few_terms_at_a_time_changes_nothing(
    knitted: tuple[str, Knitted], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, (plan, nodes, coefficients) = knitted
    whole = knit(nodes, coefficients, plan.qubits)
    monkeypatch.setattr(cut_distribution, "_KNIT_CHUNK", 5)
    pieces = knit(nodes, coefficients, plan.qubits)
    np.testing.assert_array_equal(whole.outcomes, pieces.outcomes)
    np.testing.assert_allclose(whole.values, pieces.values, atol=1e-12)
    np.testing.assert_allclose(whole.variances, pieces.variances, atol=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_nearest_probabilities_match_qiskit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.05, 0.1, size=int(rng.integers(1, 40)))
    values /= values.sum() if values.sum() > 0 else 1
    expected = QuasiDistribution(dict(enumerate(values))).nearest_probability_distribution()
    mine = nearest_probabilities(values)
    assert mine.min() >= 0
    for i, v in enumerate(mine):
        assert v == pytest.approx(expected.get(i, 0.0), abs=1e-12)


def test_a_full_distribution_wider_than_the_limit_is_refused_naming_the_alternatives() -> None:
    with pytest.raises(OutputTooWide) as caught:
        check_request(ghz(26), OutputRequest(), max_bits=24)
    message = str(caught.value)
    assert "26 bits" in message and "limit of 24" in message
    assert "spec.output.marginals" in message and "spec.output.topK" in message
    # Marginals and top-k of the same circuit are fine; a marginal wider than the limit is not.
    check_request(ghz(26), OutputRequest(marginals=((0, 1, 2),)), max_bits=24)
    check_request(ghz(26), OutputRequest(top_k=5), max_bits=24)
    with pytest.raises(OutputTooWide, match="marginal over 25 bits"):
        check_request(ghz(26), OutputRequest(marginals=(tuple(range(25)),)), max_bits=24)
    with pytest.raises(CutInfeasible, match=r"classical bits \[30\]"):
        check_request(ghz(26), OutputRequest(marginals=((0, 30),)), max_bits=24)
