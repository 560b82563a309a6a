"""A cut job's output distribution: the result fields, and their verification.

The knitting itself is `planner.cut_distribution`. Here the quasi-probabilities become keys
over the circuit's classical bits, the nearest probability distribution is taken, the
listing is bounded (a status is stored whole), and each distribution is compared with the
exact one where a statevector is tractable.

Verification: the Hellinger fidelity of the nearest probability distribution to the exact
(marginal) distribution, judged like measured counts (`verification._judged`) with the
shots a cut is worth: the subexperiments spend T x N shots (T terms, N shots each), and a
sampling overhead of gamma^2 divides that into T N / gamma^2 shots of the uncut circuit.
The allowance for sampling is the larger of that and one from the propagated standard
errors (`verify_outcomes`), since knitting also puts noise on impossible outcomes.
Top-k outcomes, a partial list, are judged by their largest absolute error against exact
probabilities: within 5 standard errors plus what noise can do (a state of fidelity F moves
any outcome's probability by at most the trace distance, sqrt(1 - F)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from qiskit import QuantumCircuit

from qorch.api.distributed_job import JobResult, ReconstructedDistribution, Verification
from qorch.planner.cut_distribution import (
    DistributionPlan,
    NodeTerms,
    OutputRequest,
    Quasi,
    bitstrings,
    knit,
    marginal_qubits,
    nearest_probabilities,
    reduce_results,
    top_outcomes,
)

from .verification import (
    ExactProbabilities,
    exact_outcome_probabilities,
    exact_probabilities,
    unverifiable,
    verify_outcomes,
)

#: Outcomes listed per distribution (a status is stored whole: ~3 x 45 bytes each); the
#: rest are counted and their weight summed.
MAX_LISTED_OUTCOMES = 1024
#: Bits the dynamic definition resolves per expansion of a bin for topK.
TOP_K_CHUNK = 12
_DIGITS = 9


def effective_shots(plan: DistributionPlan, nodes: Sequence[NodeTerms]) -> int:
    """Shots of the uncut circuit the subexperiments are worth: T N / gamma^2."""
    spent = min(float(node.shots.sum()) for node in nodes)
    return max(1, math.floor(spent / plan.knitting.sampling_overhead))


def normalised(values: np.ndarray) -> np.ndarray:
    """Quasi-probabilities scaled to sum to 1. Their sum is the knitted identity, 1 up to shot
    noise; the nearest distribution is defined for quasi-probabilities that sum to 1."""
    total = float(values.sum())
    return values / total if total > 0 else values


def listed(
    quasi: Quasi,
    bits: Sequence[int],
    clbit_qubit: Mapping[int, int],
    probabilities: np.ndarray | None,
) -> ReconstructedDistribution:
    """The result field of `quasi`, keyed over `bits`, largest magnitude first, at most
    MAX_LISTED_OUTCOMES of them."""
    order = np.argsort(-np.abs(quasi.values), kind="stable")
    shown = order[:MAX_LISTED_OUTCOMES]
    hidden = order[MAX_LISTED_OUTCOMES:]
    keys = bitstrings(quasi.outcomes[shown], quasi.qubits, bits, clbit_qubit)
    errors = quasi.standard_errors[shown]

    def merged(values: np.ndarray) -> dict[str, float]:
        # Every qubit of an outcome is read by one of `bits`: distinct outcomes, distinct keys.
        return {k: round(float(v), _DIGITS) for k, v in zip(keys, values, strict=True)}

    return ReconstructedDistribution(
        bits=list(bits),
        quasi_probabilities=merged(quasi.values[shown]),
        standard_errors=merged(errors),
        probabilities=(
            {k: v for k, v in merged(probabilities[shown]).items() if v > 0}
            if probabilities is not None
            else None
        ),
        outcomes=len(quasi.values),
        omitted_outcomes=len(hidden),
        omitted_weight=(
            round(float(probabilities[hidden].sum()), _DIGITS) if probabilities is not None else 0.0
        ),
    )


def _distribution(
    circuit: QuantumCircuit,
    quasi: Quasi,
    bits: Sequence[int],
    plan: DistributionPlan,
    shots: int,
    estimated_fidelity: float | None,
    exact: ExactProbabilities | str | None,
) -> ReconstructedDistribution:
    probabilities = nearest_probabilities(normalised(quasi.values))
    out = listed(quasi, bits, plan.clbit_qubit, probabilities)
    if isinstance(exact, str):
        out.verification = Verification(method=f"none; {exact}")
        return out
    out.verification = verify_outcomes(
        circuit,
        quasi.qubits,
        quasi.outcomes,
        probabilities,
        shots,
        estimated_fidelity,
        quasi.standard_errors,
        exact,
    )
    return out


def _verify_top(
    circuit: QuantumCircuit,
    quasi: Quasi,
    estimated_fidelity: float | None,
    simulation: ExactProbabilities | str | None,
) -> Verification:
    if isinstance(simulation, str):
        return Verification(method=f"none; {simulation}")
    exact = exact_outcome_probabilities(circuit, quasi.qubits, quasi.outcomes, simulation)
    if exact is None:
        return Verification(method=unverifiable(circuit))
    if not len(quasi.values):
        return Verification(method="none; no outcome was resolved")
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    return Verification(
        method="statevector",
        absolute_error=round(float(np.abs(quasi.values - exact[0]).max()), 6),
        threshold=round(
            5 * float(quasi.standard_errors.max()) + math.sqrt(max(0.0, 1 - fidelity)), 6
        ),
    )


def _worst(verifications: Sequence[Verification | None]) -> Verification:
    """The verification with the least margin: the job is verified only if all are."""
    judged = [v for v in verifications if v is not None and v.threshold is not None]
    if not judged:
        found = [v for v in verifications if v is not None]
        return found[0] if found else Verification(method="none")

    def margin(v: Verification) -> float:
        assert v.threshold is not None
        if v.hellinger_fidelity is not None:
            return v.hellinger_fidelity - v.threshold
        assert v.absolute_error is not None
        return v.threshold - v.absolute_error

    return min(judged, key=margin)


def aggregate_distribution(
    plan: DistributionPlan,
    circuit: QuantumCircuit,
    results: Mapping[str, Sequence[Mapping[str, int]]],
    request: OutputRequest,
    estimated_fidelity: float | None,
    max_bits: int,
    exact: ExactProbabilities | str | None = None,
) -> JobResult:
    """The job's result from each node's subexperiment counts, verified where tractable.
    `exact`, the circuit's `exact_probabilities` when already simulated (beside the
    programs), saves simulating it here; a string says why that simulation failed, and
    nothing is verified."""
    nodes = reduce_results(plan, results)
    coefficients = [c for c, _ in plan.knitting.coefficients]
    shots = effective_shots(plan, nodes)
    result = JobResult()
    # Once: it is the costly part of verifying.
    exact = exact_probabilities(circuit) if exact is None else exact
    checks: list[Verification | None] = []
    if request.full:
        quasi = knit(nodes, coefficients, plan.qubits)
        bits = list(range(plan.num_clbits))
        result.distribution = _distribution(
            circuit, quasi, bits, plan, shots, estimated_fidelity, exact
        )
        checks.append(result.distribution.verification)
    if request.marginals:
        result.marginals = []
        for named in request.marginals:
            quasi = knit(nodes, coefficients, marginal_qubits(named, plan.clbit_qubit))
            marginal = _distribution(circuit, quasi, named, plan, shots, estimated_fidelity, exact)
            result.marginals.append(marginal)
            checks.append(marginal.verification)
    if request.top_k is not None:
        chunk = min(max_bits, TOP_K_CHUNK)
        quasi = top_outcomes(nodes, coefficients, plan.qubits, request.top_k, chunk)
        bits = list(range(plan.num_clbits))
        result.top_outcomes = listed(quasi, bits, plan.clbit_qubit, None)
        result.top_outcomes.verification = _verify_top(circuit, quasi, estimated_fidelity, exact)
        checks.append(result.top_outcomes.verification)
    result.verification = _worst(checks)
    return result
