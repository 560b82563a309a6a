"""A cut job's distribution result: keys over the classical bits, the listing bound, and the
verification against the exact distribution."""

from __future__ import annotations

from dataclasses import replace

import pytest
from qiskit import QuantumCircuit

from qorch.api import NoiseSpec
from qorch.api.quantum_node import DEFAULT_BASIS_GATES
from qorch.pipeline import cut_distribution
from qorch.pipeline.cut_distribution import aggregate_distribution
from qorch.pipeline.planning import plan_status
from qorch.pipeline.strategies import Context, strategy_named
from qorch.pipeline.strategies.cut import CutDistributionWork
from qorch.pipeline.verification import exact_probabilities
from qorch.planner.cut_distribution import DistributionPlan, OutputRequest, plan_cut_distribution
from qorch.planner.model import NodeSlot
from qorch.planner.strategies import OUTPUT_WIDTH, Demand, estimate_cut
from tests.unit.planner.cut_circuits import ghz, halves, qaoa_ring, run

SHOTS = 2000


def _result(circuit, request: OutputRequest, fidelity: float | None = 1.0):
    plan = plan_cut_distribution(circuit, halves(circuit.num_qubits), 1000, request)
    return aggregate_distribution(
        plan, circuit, run(plan, SHOTS, seed=3), request, fidelity, max_bits=24
    )


def test_the_full_distribution_is_verified_against_the_exact_one() -> None:
    result = _result(qaoa_ring(6), OutputRequest())
    dist = result.distribution
    assert dist is not None and dist.bits == list(range(6))
    assert dist.outcomes == 64 and dist.omitted_outcomes == 0
    assert list(dist.quasi_probabilities) == sorted(
        dist.quasi_probabilities, key=lambda k: -abs(dist.quasi_probabilities[k])
    )
    assert dist.probabilities is not None
    assert sum(dist.probabilities.values()) == pytest.approx(1, abs=1e-6)
    check = dist.verification
    assert check is not None and check.method == "statevector"
    assert check.hellinger_fidelity is not None and check.threshold is not None
    assert check.hellinger_fidelity >= check.threshold > 0.8
    assert result.verification == check


def test_the_exact_output_simulated_beside_the_subexperiments_is_not_simulated_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline simulates it while the programs run, in its simulation process when
    wide: in the aggregating thread, Aer would hold the interpreter lock the event loop
    needs."""
    assert CutDistributionWork.verifies_by_statevector
    circuit, request = qaoa_ring(6), OutputRequest()
    plan = plan_cut_distribution(circuit, halves(6), 1000, request)
    results = run(plan, SHOTS, seed=3)
    simulated = aggregate_distribution(plan, circuit, results, request, 1.0, max_bits=24)
    exact = exact_probabilities(circuit)

    def simulated_again(_: QuantumCircuit) -> None:
        raise AssertionError("the exact output was simulated a second time")

    monkeypatch.setattr(cut_distribution, "exact_probabilities", simulated_again)
    given = aggregate_distribution(plan, circuit, results, request, 1.0, max_bits=24, exact=exact)
    assert given.verification == simulated.verification
    assert given.verification is not None and given.verification.method == "statevector"


def test_when_the_exact_simulation_failed_nothing_is_verified_and_the_reason_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def simulated_again(_: QuantumCircuit) -> None:
        raise AssertionError("the exact output was simulated a second time")

    monkeypatch.setattr(cut_distribution, "exact_probabilities", simulated_again)
    circuit = qaoa_ring(6)
    failure = "the exact simulation failed (SimulationInterrupted: stopped mid-run)"
    for request in (OutputRequest(), OutputRequest(marginals=((0, 1),), top_k=4)):
        plan = plan_cut_distribution(circuit, halves(6), 1000, request)
        result = aggregate_distribution(
            plan, circuit, run(plan, SHOTS, seed=3), request, 1.0, max_bits=24, exact=failure
        )
        parts = [result.distribution, *(result.marginals or []), result.top_outcomes]
        listed = [p for p in parts if p is not None]
        assert len(listed) == (1 if request.full else 2)
        assert all(p.verification.method == f"none; {failure}" for p in listed)
        assert result.verification.method == f"none; {failure}"


def test_a_wrong_reconstruction_fails_verification() -> None:
    """Knitting the counts of one circuit as if they came from another: not verified."""
    circuit, other = qaoa_ring(6), qaoa_ring(6, gamma=1.2, beta=0.2)
    request = OutputRequest()
    plan = plan_cut_distribution(other, halves(6), 1000, request)
    result = aggregate_distribution(
        plan, circuit, run(plan, SHOTS, seed=3), request, 1.0, max_bits=24
    )
    check = result.verification
    assert check is not None and check.hellinger_fidelity is not None
    assert check.threshold is not None and check.hellinger_fidelity < check.threshold


def test_listing_is_bounded_and_the_rest_is_summed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cut_distribution, "MAX_LISTED_OUTCOMES", 10)
    dist = _result(qaoa_ring(6), OutputRequest()).distribution
    assert dist is not None and len(dist.quasi_probabilities) == 10
    assert dist.outcomes == 64 and dist.omitted_outcomes == 54
    assert dist.probabilities is not None
    assert sum(dist.probabilities.values()) + dist.omitted_weight == pytest.approx(1, abs=1e-6)


def test_marginal_keys_put_the_first_listed_bit_rightmost() -> None:
    circuit = QuantumCircuit(6, 6)
    circuit.h(0)
    for q in range(5):
        circuit.cx(q, q + 1)
    circuit.x(5)  # the GHZ with qubit 5 flipped: 011111 or 100000
    circuit.measure(range(6), range(6))
    result = _result(circuit, OutputRequest(marginals=((0, 5), (5,))))
    assert result.distribution is None and result.marginals is not None
    pair, single = result.marginals
    assert pair.probabilities is not None and single.probabilities is not None
    # bit 0 and bit 5 always differ; the key "ab" has bit 5 as a, bit 0 as b
    assert {k for k, v in pair.probabilities.items() if v > 0.2} == {"01", "10"}
    assert set(single.quasi_probabilities) <= {"0", "1"}
    assert pair.verification is not None and single.verification is not None


def test_top_outcomes_are_verified_by_their_largest_error() -> None:
    result = _result(ghz(6), OutputRequest(top_k=2))
    top = result.top_outcomes
    assert top is not None and top.probabilities is None
    assert set(top.quasi_probabilities) == {"000000", "111111"}
    check = top.verification
    assert check is not None and check.absolute_error is not None
    assert check.threshold is not None and check.absolute_error <= check.threshold


def _demand(**changes: object) -> Demand:
    nodes = [NodeSlot(n, 3, NoiseSpec(), tuple(DEFAULT_BASIS_GATES)) for n in ("a", "b")]
    demand = Demand(
        ghz(6), None, nodes, [], shots=100, timeout_seconds=60, max_sampling_overhead=100
    )
    return replace(demand, **changes)


def test_cut_reconstructs_a_distribution_only_when_asked() -> None:
    auto = estimate_cut(_demand())
    assert not auto.feasible and "no observables" in auto.reason
    for asked in (_demand(strategy="cut"), _demand(output=OutputRequest(top_k=3))):
        candidate = estimate_cut(asked)
        assert candidate.feasible and isinstance(candidate.plan, DistributionPlan)
        assert candidate.sampling_overhead == pytest.approx(9)


def test_too_wide_is_infeasible_before_placement_and_says_why() -> None:
    candidate = estimate_cut(_demand(strategy="cut", max_distribution_bits=4))
    assert not candidate.feasible and candidate.limited_by == OUTPUT_WIDTH
    assert "6 bits" in candidate.reason and "limit of 4" in candidate.reason
    marginal = OutputRequest(marginals=((0, 1, 2, 3),))
    assert estimate_cut(_demand(output=marginal, max_distribution_bits=4)).feasible


def _shape(subexperiments: dict[str, list[QuantumCircuit]]) -> dict[str, list[list[tuple]]]:
    """Each instruction's name, parameters, qubit and clbit indices."""
    return {
        node: [
            [
                (
                    inst.operation.name,
                    tuple(map(float, inst.operation.params)),
                    tuple(c.find_bit(q).index for q in inst.qubits),
                    tuple(c.find_bit(b).index for b in inst.clbits),
                )
                for inst in c.data
            ]
            for c in circuits
        ]
        for node, circuits in subexperiments.items()
    }


def test_a_restarted_driver_rebuilds_the_same_subexperiments() -> None:
    circuit = ghz(6)
    candidate = estimate_cut(_demand(strategy="cut"))
    cut = strategy_named("cut")
    plan = plan_status(candidate, [candidate], cut.shape(candidate, circuit, 100))
    context = Context(observables=None, nodes=[], links=[], max_sampling_overhead=100)
    built, rebuilt = cut.work(candidate, circuit, context), cut.rebuild(plan, circuit, context)
    assert isinstance(rebuilt, CutDistributionWork) and isinstance(built, CutDistributionWork)
    assert _shape(built.knitting.subexperiments) == _shape(rebuilt.knitting.subexperiments)
    assert built.knitting.coefficients == rebuilt.knitting.coefficients
    assert built.distribution.node_qubits == rebuilt.distribution.node_qubits
