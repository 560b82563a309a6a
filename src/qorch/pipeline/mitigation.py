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
- Expectation values (single, teleport): each basis circuit's bits are corrected with the
  inverse of their node's assignment matrix, which is exact for the +/-1 products of bits
  a Pauli observable reads (`_basis_expectations`); the shot noise is the sample variance
  of those products.
- Expectation values (cut): the bits of every subexperiment, observable and QPD bits alike,
  are corrected with the tensored inverse of their node's assignment matrix before the
  knitting (`CutPlan.reconstruct(readout=...)`). M3 is not used there: the knitting needs
  only +/-1 products of bits, on which the tensored inverse factorises exactly per bit.

Uncertainty. The figures are themselves estimates (SHOTS shots on up to READOUT_QUBITS
qubits per calibration, about 0.003 on a figure of 0.08), and an error in them biases every
corrected value the same way. Standard errors of expectation values therefore add, to the
shot noise, the calibration's sampling error carried through the correction (delta method,
`_calibration_spread`). A corrected value outside [-1, 1] is reported on the bound and its
index listed in `projected`.

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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from qiskit import QuantumCircuit

from qorch.agent_protocol import RunResult
from qorch.api import QuantumNode
from qorch.api.distributed_job import JobResult, MitigatedResult, Verification
from qorch.planner.cutting import IDEAL_FACTORS, CutPlan, ReadoutErrors
from qorch.planner.observables import MeasurementBasis
from qorch.qpu.calibration import READOUT_QUBITS
from qorch.qpu.calibration import SHOTS as CALIBRATION_SHOTS

from .verification import ExactProbabilities, flatten, verify_distribution

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
    `qubit_owners[q]`), corrected per bit by its node's figures, added to `mitigated`."""
    calibrated = _calibrated(set(qubit_owners), nodes)
    if isinstance(calibrated, str):
        return
    errors = calibrated[0]

    def corrected(figures: Mapping[str, ReadoutErrors]) -> tuple[np.ndarray, np.ndarray]:
        return _basis_expectations(bases, counts, qubit_owners, figures, observables)

    values, shot_variances = corrected(errors)
    spread = _calibration_spread(lambda f: corrected(f)[0], errors, _readings(errors, nodes))
    deviations = np.sqrt(shot_variances + spread**2)
    mitigated.expectation_values, mitigated.projected = _projected(values)
    mitigated.standard_errors = [round(float(e), 6) for e in deviations]
    mitigated.method += (
        "; expectation values from the basis circuits' counts, each bit corrected with the"
        " inverse of its node's assignment matrix (exact for products of bits); standard"
        " errors include the calibration's own sampling error"
    )


def _basis_expectations(
    bases: tuple[MeasurementBasis, ...],
    counts: list[dict[str, int]],
    qubit_owners: list[str],
    errors: Mapping[str, ReadoutErrors],
    observables: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Corrected values and the variances of their shot noise.

    A bit read as b contributes the factor f_b with E[f_b] = (-1)^x for the bit x prepared
    (`ReadoutErrors.factors`), so the product of the factors of an observable's bits is an
    unbiased estimate of its value, and the sample variance of that product over the shots
    is the shot noise of the estimate, whatever the value (the binomial 1 - v^2 is not: it
    vanishes as a corrected v reaches +/-1).
    """
    factors = [
        errors[owner].factors() if owner in errors else IDEAL_FACTORS for owner in qubit_owners
    ]
    values = np.zeros(len(observables))
    variances = np.zeros(len(observables))
    for basis, flat in zip(bases, counts, strict=True):
        shots = sum(flat.values())
        for i in basis.observables:
            read = [q for q, c in enumerate(reversed(observables[i])) if c != "I"]
            first = second = 0.0
            for key, hits in flat.items():
                bits = key.replace(" ", "")
                weight = math.prod(factors[q][bits[len(bits) - 1 - q] == "1"] for q in read)
                first += hits * weight
                second += hits * weight * weight
            mean = first / shots
            values[i] = mean
            variances[i] = max(0.0, second / shots - mean * mean) / shots
    return values, variances


def _readings(
    errors: Mapping[str, ReadoutErrors], nodes: Mapping[str, QuantumNode]
) -> dict[str, int]:
    """Bits each node's calibration read per figure: SHOTS shots on up to READOUT_QUBITS."""
    return {n: CALIBRATION_SHOTS * min(nodes[n].spec.qubits, READOUT_QUBITS) for n in errors}


def _calibration_spread(
    values_of: Callable[[Mapping[str, ReadoutErrors]], Sequence[float] | np.ndarray],
    errors: Mapping[str, ReadoutErrors],
    readings: Mapping[str, int],
) -> np.ndarray:
    """Standard deviation the calibration's own sampling error gives the corrected values.

    Delta method: each figure p is a binomial mean of n readings (standard deviation
    sqrt(p (1 - p) / n), with p at least 1/n: a figure of 0 from n readings is not known
    to be 0), and moves the values by its derivative, taken by central differences.
    """
    variance = np.zeros(len(values_of(errors)))
    for name, figures in errors.items():
        n = readings[name]
        for field in ("zero_to_one", "one_to_zero"):
            p = getattr(figures, field)
            sd = math.sqrt(max(p, 1 / n) * (1 - max(p, 1 / n)) / n)
            step = sd / 8
            moved = [
                {**errors, name: replace(figures, **{field: p + sign * step})} for sign in (1, -1)
            ]
            slope = (np.asarray(values_of(moved[0])) - np.asarray(values_of(moved[1]))) / (2 * step)
            variance += (slope * sd) ** 2
    return np.sqrt(variance)


def _projected(values: Sequence[float] | np.ndarray) -> tuple[list[float], list[int]]:
    """Values rounded and put back into [-1, 1], and the indices of those that were outside:
    a corrected Pauli expectation value beyond its physical bound is closer to the truth on
    the bound."""
    out, moved = [], []
    for i, v in enumerate(values):
        if abs(v) > 1:
            moved.append(i)
        out.append(round(max(-1.0, min(1.0, float(v))), 6))
    return out, moved


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
    exact: ExactProbabilities | str | None = None,
) -> MitigatedResult:
    """The job's counts corrected with M3, each clbit by the node that measured it. `exact`,
    the circuit's `exact_probabilities` the raw counts were verified against (or why that
    simulation failed), saves simulating it again."""
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
            circuit, nearest, sum(counts.values()), estimated_fidelity, exact
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

    def knitted(figures: Mapping[str, ReadoutErrors]) -> list[float]:
        return cut.reconstruct(results, readout=figures)[0]

    values, shot_errors = cut.reconstruct(results, readout=errors)
    spread = _calibration_spread(knitted, errors, _readings(errors, nodes))
    deviations = [float(e) for e in np.sqrt(np.asarray(shot_errors) ** 2 + spread**2)]
    method = (
        "readout: every measured bit of each node's subexperiments (observable and QPD bits)"
        " corrected with the tensored inverse of its node's assignment matrix"
        f" ({_describe(errors)}) before knitting; standard errors include the calibration's"
        " own sampling error; relaxation during mid-circuit QPD measurements is not corrected"
    )
    if notes:
        method += "; " + "; ".join(notes)
    projected, moved = _projected(values)
    verification = verify(projected, deviations) if _verified(result.verification) else None
    return MitigatedResult(
        method=method,
        expectation_values=projected,
        standard_errors=[round(e, 6) for e in deviations],
        projected=moved,
        calibrations=stamps,
        verification=verification,
    )
