"""Merge what the agents returned into the job's result, and check it where tractable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qorch.api.distributed_job import JobResult, Verification
from qorch.planner.cutting import exact_expectations
from qorch.planner.observables import expectation_values, first_bits

from .planning import Work
from .verification import MAX_EXPECTATION_QUBITS, verify_counts


def aggregate(
    work: Work,
    replies: dict[str, dict[str, Any]],
    estimated_fidelity: float | None,
    observables: list[str] | None,
) -> JobResult:
    """Counts (single, teleport; with expectation values from their measurement bases when
    the job has observables) or reconstructed expectation values (cut), verified."""
    if work.cut is not None:
        results = {
            program_id.removeprefix("cut-"): reply["results"]
            for program_id, reply in replies.items()
        }
        values, errors = work.cut.reconstruct(results)
        return JobResult(
            expectation_values=[round(v, 6) for v in values],
            standard_errors=[round(e, 6) for e in errors],
            verification=verify_expectations(work, values, errors, estimated_fidelity),
        )
    runs = _runs(replies)
    main = runs[0] if work.teleport is None else work.teleport.original_counts(runs[0])
    counts = {key: int(n) for key, n in main.items()}
    result = JobResult(
        counts=counts, verification=verify_counts(work.circuit, counts, estimated_fidelity)
    )
    bases = basis_counts(work, replies)
    if bases is not None and observables:
        values, errors = expectation_values(work.bases, bases, observables)
        result.expectation_values = [round(v, 6) for v in values]
        result.standard_errors = [round(e, 6) for e in errors]
    return result


def _runs(replies: Mapping[str, Mapping[str, Any]]) -> list:
    """Counts of each circuit of the one program a single or teleport job sends."""
    [reply] = replies.values()
    return list(reply["results"]) if "results" in reply else [reply["counts"]]


def basis_counts(
    work: Work, replies: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, int]] | None:
    """Each measurement basis circuit's counts over the circuit's qubits (a co-simulated
    program puts its own bits after them); None when the job measured no bases. What was
    sent decides, not what was rebuilt: after a restart the two may differ."""
    runs = _runs(replies)
    if not work.bases or len(runs) != 1 + len(work.bases):
        return None
    return [first_bits(c, work.circuit.num_qubits) for c in runs[1:]]


def verify_expectations(
    work: Work, values: list[float], errors: list[float], estimated_fidelity: float | None
) -> Verification:
    """Largest absolute error against exact values, judged against 3 standard errors plus
    what noise can do: a state of fidelity F moves a Pauli expectation by at most 2 (1 - F).

    Exact values by statevector up to MAX_EXPECTATION_QUBITS, by stabilizer simulation
    beyond for a Clifford circuit."""
    assert work.cut is not None
    exact = exact_expectations(
        work.circuit, list(work.cut.observables), max_statevector_qubits=MAX_EXPECTATION_QUBITS
    )
    if exact is None:
        return Verification(method="none")
    method, expected = exact
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    return Verification(
        method=method,
        absolute_error=round(max(abs(v - e) for v, e in zip(values, expected, strict=True)), 6),
        threshold=round(3 * max(errors, default=0.0) + 2 * (1 - fidelity), 6),
    )
