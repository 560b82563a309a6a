"""Readout error mitigation from the nodes' latest calibration, reported beside the raw result.

The figures are the node's calibrated p(1|0) and p(0|1) (`Calibration.readoutError0To1`,
`readoutError1To0`), means over the qubits the calibration reads; they are applied to every
bit the node measures, so a node whose qubits differ widely is corrected on average only. A
calibration from an agent that reports only the symmetric `readoutError` is used as
p(1|0) = p(0|1), and the method says so.

- Counts (single, teleport): M3 (mthree) solves for quasi-probabilities with one assignment
  matrix per clbit, that of the node whose qubit was measured into it: the one node of a
  single plan; for a teleport program, the owner of the qubit the program measures into the
  clbit (the program keeps the circuit's qubits and clbits in place). Clbits never measured
  read 0 and keep the identity. M3 works in the subspace of the observed bitstrings, with
  corrections up to Hamming distance 3 (its default), so it scales with the distinct outcomes
  rather than 2^bits.
- Expectation values (single, teleport): each basis circuit's counts are corrected with M3
  as the counts are, bit q reading qubit q on its owner, and the values read from the
  quasi-probabilities; standard errors are scaled by M3's mitigation overhead.
- Expectation values (cut): the bits of every subexperiment, observable and QPD bits alike,
  are corrected with the tensored inverse of their node's assignment matrix before the
  knitting (`CutPlan.reconstruct(readout=...)`); standard errors include the spread the
  correction adds to the job's shot noise, not the calibration's own sampling error (about
  0.004 on each figure from 2000 shots on 4 qubits). M3 is not used there: the knitting
  needs only +/-1 products of bits, on which the tensored inverse factorises exactly per bit.

Corrected: classical assignment errors of final measurements, asymmetric ones included, and
relaxation during a final measurement (indistinguishable from them). Not corrected: gate,
idling and Bell-pair errors; readout errors that steer feed-forward (a misread bit that a
later `if` acts on changes the state, which no correction of the reported bits undoes);
relaxation during a mid-circuit QPD measurement, which also disturbs the qubit that goes on.

Verification: the mitigated counts are checked as the raw ones (`verify_distribution`) on
the nearest probability distribution to the quasi-probabilities (negative ones have no
Hellinger fidelity); mitigated expectation values as the raw ones (`verify_expectations`).
Thresholds are computed as for the raw result.

Each strategy's work calls the pieces it needs (`mitigate_counts`, `mitigate_bases`,
`mitigate_cut`). They are CPU-bound (M3 takes seconds on thousands of distinct outcomes):
run them off an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from qiskit import QuantumCircuit

from qorch.agent_protocol import RunResult
from qorch.api import QuantumNode
from qorch.api.distributed_job import JobResult, MitigatedResult, Verification
from qorch.planner.cutting import CutPlan, ReadoutErrors
from qorch.planner.observables import MeasurementBasis, sign

from .verification import flatten, verify_distribution

#: M3's work grows with the square of the distinct outcomes in its subspace: about 1.5 s at
#: 4,000 (direct solve), 6 s at 10,000 (iterative), 150 s at 20,000 (measured on 12 to 18
#: bits, on the development machine).
MAX_DISTINCT_OUTCOMES = 10_000


def mitigate_bases(
    bases: tuple[MeasurementBasis, ...],
    counts: list[dict[str, int]],
    qubit_owners: list[str],
    nodes: Mapping[str, QuantumNode],
    observables: list[str],
    mitigated: MitigatedResult,
) -> None:
    """Expectation values from measurement-basis circuits' counts (bit q reads qubit q, on
    `qubit_owners[q]`), corrected like the job's counts, added to `mitigated`."""
    calibrated = _calibrated(set(qubit_owners), nodes)
    if isinstance(calibrated, str):
        return
    errors = calibrated[0]
    matrices = [_assignment_matrix(errors.get(n)) for n in qubit_owners]
    values = [0.0] * len(observables)
    deviations = [0.0] * len(observables)
    for basis, flat in zip(bases, counts, strict=True):
        if len(flat) > MAX_DISTINCT_OUTCOMES:
            return
        quasi, overhead, _ = _m3(flat, matrices)
        shots = sum(flat.values())
        for i in basis.observables:
            v = sum(q * sign(key, observables[i]) for key, q in quasi.items())
            values[i] = v
            # M3's overhead scales the shot-noise variance of its estimates.
            deviations[i] = float(np.sqrt(overhead * max(0.0, 1 - v * v) / shots))
    mitigated.expectation_values = [round(v, 6) for v in values]
    mitigated.standard_errors = [round(e, 6) for e in deviations]
    mitigated.method += (
        "; expectation values from the basis circuits' counts corrected the same way"
        " (standard errors scaled by M3's mitigation overhead)"
    )


def _calibrated(
    names: set[str], nodes: Mapping[str, QuantumNode]
) -> tuple[dict[str, ReadoutErrors], list[str], list[str]] | str:
    """Errors per node, their node@time stamps and notes; or why mitigation is unavailable."""
    errors: dict[str, ReadoutErrors] = {}
    stamps: list[str] = []
    notes: list[str] = []
    missing: list[str] = []
    for name in sorted(names):
        node = nodes.get(name)
        cal = node.status.calibration if node is not None else None
        if cal is None:
            missing.append(f"{name} has no calibration" if node else f"{name} no longer exists")
            continue
        if cal.readout_error_0to1 is not None and cal.readout_error_1to0 is not None:
            found = ReadoutErrors(cal.readout_error_0to1, cal.readout_error_1to0)
        elif cal.readout_error is not None:
            found = ReadoutErrors(cal.readout_error, cal.readout_error)
            notes.append(f"{name}: symmetric readoutError only, taken as p(1|0) = p(0|1)")
        else:
            missing.append(f"{name}'s calibration has no readout figures")
            continue
        if found.zero_to_one + found.one_to_zero >= 1:
            missing.append(f"{name}'s readout (p(1|0) + p(0|1) >= 1) cannot be inverted")
            continue
        errors[name] = found
        stamps.append(f"{name}@{cal.measured_at or 'unknown'}")
    if missing:
        return "; ".join(missing)
    return errors, stamps, notes


def _describe(errors: Mapping[str, ReadoutErrors]) -> str:
    return ", ".join(
        f"{n}: p(1|0)={e.zero_to_one:.4g}, p(0|1)={e.one_to_zero:.4g}"
        for n, e in sorted(errors.items())
    )


def mitigate_counts(
    circuit: QuantumCircuit,
    clbit_owners: Mapping[int, str],
    nodes: Mapping[str, QuantumNode],
    result: JobResult,
    estimated_fidelity: float | None,
) -> MitigatedResult:
    """The job's counts corrected with M3, each clbit by the node that measured it."""
    counts = result.counts or {}
    if not counts or not clbit_owners:
        return MitigatedResult(method="unavailable: the circuit reports no measured bits")
    calibrated = _calibrated(set(clbit_owners.values()), nodes)
    if isinstance(calibrated, str):
        return MitigatedResult(method=f"unavailable: {calibrated}")
    errors, stamps, notes = calibrated
    flat = flatten(counts)
    if len(flat) > MAX_DISTINCT_OUTCOMES:
        return MitigatedResult(
            method=f"unavailable: {len(flat)} distinct outcomes, more than the"
            f" {MAX_DISTINCT_OUTCOMES} M3 corrects in reasonable time",
            calibrations=stamps,
        )
    width = circuit.num_clbits
    matrices = [_assignment_matrix(errors.get(clbit_owners.get(c, ""))) for c in range(width)]
    quasi, overhead, nearest = _m3(flat, matrices)
    spaced = {k.replace(" ", ""): k for k in counts}
    method = (
        "readout: M3 quasi-probabilities, one assignment matrix per clbit from the node that"
        f" measured it ({_describe(errors)}); mitigation overhead {overhead:.3g}"
    )
    if notes:
        method += "; " + "; ".join(notes)
    verification = None
    if _verified(result.verification):
        verification = verify_distribution(
            circuit, nearest, sum(counts.values()), estimated_fidelity
        )
        method += "; verified on the nearest probability distribution"
    return MitigatedResult(
        method=method,
        quasi_probabilities={spaced.get(k, k): round(v, 6) for k, v in sorted(quasi.items())},
        calibrations=stamps,
        verification=verification,
    )


def _verified(verification: Verification | None) -> bool:
    """Whether the raw result was checked, so that the mitigated one is checked as well."""
    return verification is not None and not verification.method.startswith("none")


def _assignment_matrix(errors: ReadoutErrors | None) -> np.ndarray:
    """M3's convention: column = prepared bit, row = bit read."""
    if errors is None:
        return np.eye(2)
    up, down = errors.zero_to_one, errors.one_to_zero
    return np.array([[1 - up, down], [up, 1 - down]])


def _m3(
    counts: dict[str, int], matrices: list[np.ndarray]
) -> tuple[dict[str, float], float, dict[str, float]]:
    """Quasi-probabilities, M3's mitigation overhead, and the nearest probability distribution."""
    # Imported here: mthree pulls in qiskit-ibm-runtime, about a second that only jobs
    # asking for mitigation should pay.
    import mthree

    m3 = mthree.M3Mitigation()
    m3.cals_from_matrices(matrices)
    quasi = m3.apply_correction(counts, list(range(len(matrices))), return_mitigation_overhead=True)
    nearest = quasi.nearest_probability_distribution()
    return (
        {k: float(v) for k, v in quasi.items()},
        float(quasi.mitigation_overhead),
        {k: float(v) for k, v in nearest.items()},
    )


def mitigate_cut(
    cut: CutPlan,
    replies: Mapping[str, RunResult],
    nodes: Mapping[str, QuantumNode],
    result: JobResult,
    verify: Callable[[list[float], list[float]], Verification],
) -> MitigatedResult:
    """Expectation values knitted again from subexperiment bits corrected per node;
    `verify(values, errors)` checks them as the raw ones were."""
    calibrated = _calibrated(set(cut.subexperiments), nodes)
    if isinstance(calibrated, str):
        return MitigatedResult(method=f"unavailable: {calibrated}")
    errors, stamps, notes = calibrated
    results = {program_id.removeprefix("cut-"): reply.runs for program_id, reply in replies.items()}
    values, deviations = cut.reconstruct(results, readout=errors)
    method = (
        "readout: every measured bit of each node's subexperiments (observable and QPD bits)"
        " corrected with the tensored inverse of its node's assignment matrix"
        f" ({_describe(errors)}) before knitting; relaxation during mid-circuit QPD"
        " measurements is not corrected"
    )
    if notes:
        method += "; " + "; ".join(notes)
    verification = verify(values, deviations) if _verified(result.verification) else None
    return MitigatedResult(
        method=method,
        expectation_values=[round(v, 6) for v in values],
        standard_errors=[round(e, 6) for e in deviations],
        calibrations=stamps,
        verification=verification,
    )
