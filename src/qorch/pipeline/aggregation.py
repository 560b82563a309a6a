"""Merge what the agents returned into the job's result, and check it where tractable."""

from __future__ import annotations

from typing import Any

from qorch.api.distributed_job import JobResult, Verification
from qorch.planner.cutting import exact_expectation_values

from .planning import Work
from .verification import MAX_STATEVECTOR_QUBITS, verify_counts


def aggregate(
    work: Work,
    replies: dict[str, dict[str, Any]],
    estimated_fidelity: float | None,
    observables: list[str] | None,
) -> JobResult:
    """Counts (single, teleport) or reconstructed expectation values (cut), verified."""
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
    counts: dict[str, int] = {}
    for reply in replies.values():
        got = reply["counts"]
        if work.teleport is not None:
            got = work.teleport.original_counts(got)
        for key, n in got.items():
            counts[key] = counts.get(key, 0) + int(n)
    return JobResult(
        counts=counts, verification=verify_counts(work.circuit, counts, estimated_fidelity)
    )


def verify_expectations(
    work: Work, values: list[float], errors: list[float], estimated_fidelity: float | None
) -> Verification:
    """Largest absolute error against exact values, judged against 3 standard errors plus
    what noise can do: a state of fidelity F moves a Pauli expectation by at most 2 (1 - F)."""
    assert work.cut is not None
    if work.circuit.num_qubits > MAX_STATEVECTOR_QUBITS:
        return Verification(method="none")
    exact = exact_expectation_values(work.circuit, list(work.cut.observables))
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    return Verification(
        method="statevector",
        absolute_error=round(max(abs(v - e) for v, e in zip(values, exact, strict=True)), 6),
        threshold=round(3 * max(errors, default=0.0) + 2 * (1 - fidelity), 6),
    )
