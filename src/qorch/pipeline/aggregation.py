"""Merge what the agents returned into the job's result, and check it where tractable."""

from __future__ import annotations

from typing import Any

from qorch.api.distributed_job import JobResult, Verification
from qorch.planner.cutting import exact_expectations
from qorch.planner.observables import expectation_values, first_bits

from .planning import Work
from .verification import MAX_STATEVECTOR_QUBITS, verify_counts


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
    [reply] = replies.values()  # single and teleport send one program
    runs = reply["results"] if "results" in reply else [reply["counts"]]
    main = runs[0] if work.teleport is None else work.teleport.original_counts(runs[0])
    counts = {key: int(n) for key, n in main.items()}
    result = JobResult(
        counts=counts, verification=verify_counts(work.circuit, counts, estimated_fidelity)
    )
    # What was sent decides, not what was rebuilt: after a restart the two may differ.
    if work.bases and observables and len(runs) == 1 + len(work.bases):
        width = work.circuit.num_qubits  # a basis program's own bits come first
        values, errors = expectation_values(
            work.bases, [first_bits(c, width) for c in runs[1:]], observables
        )
        result.expectation_values = [round(v, 6) for v in values]
        result.standard_errors = [round(e, 6) for e in errors]
    return result


def verify_expectations(
    work: Work, values: list[float], errors: list[float], estimated_fidelity: float | None
) -> Verification:
    """Largest absolute error against exact values, judged against 3 standard errors plus
    what noise can do: a state of fidelity F moves a Pauli expectation by at most 2 (1 - F).

    Exact values by statevector up to MAX_STATEVECTOR_QUBITS, by stabilizer simulation
    beyond for a Clifford circuit."""
    assert work.cut is not None
    exact = exact_expectations(
        work.circuit, list(work.cut.observables), max_statevector_qubits=MAX_STATEVECTOR_QUBITS
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
