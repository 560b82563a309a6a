"""Calibration circuits a QPU agent runs under its own noise, and the figures read from them.

- Readout: prepare all |0>, then all |1>; p(1|0) and p(0|1) are the flip probabilities of
  each preparation, averaged over the qubits measured; the readout error is their mean. They
  differ when the qubit relaxes while it is measured (T1 only empties |1>), and readout
  mitigation needs both.
- Single-qubit error: m X gates on qubit 0 (m even, so ideally back to |0>). Under a
  depolarizing channel of parameter p per gate, P(0) - 1/2 decays as (1 - p)^m, whatever
  the state preparation and measurement errors; the decay between m = 0 and m = M gives p.
  The state alternates between |0> and |1>, so relaxation (T1) shows in the decay too.
- Two-qubit error: the same with m CX gates on a coupled pair prepared in |10> (the target
  flips each time; the control sits in |1>, exposed to T1): P(10) - 1/4 decays as (1 - p)^m.
- Fidelity: of a Bell pair on the same pair, from its ZZ, XX and YY correlations,
  F = (1 + <XX> - <YY> + <ZZ>) / 4.
These are identity sequences, not randomized benchmarking: with the incoherent noise of the
simulated node the two agree, and the sequences need no Clifford sampling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api.quantum_node import QuantumNodeSpec
from qorch.single_flight import SingleFlight

SINGLE_QUBIT_SEQUENCE = 200
TWO_QUBIT_SEQUENCE = 40
SHOTS = 2000
READOUT_QUBITS = 4  # enough to see the readout error; wider would only slow calibration


@dataclass(frozen=True)
class CalibrationFigures:
    readout_error: float
    readout_error_0to1: float  # p(1|0)
    readout_error_1to0: float  # p(0|1)
    single_qubit_error: float
    two_qubit_error: float | None
    fidelity: float

    @property
    def error_rate(self) -> float:
        """The worst of the measured error rates, compared with spec.safety.maxErrorRate."""
        return max(self.readout_error, self.single_qubit_error, self.two_qubit_error or 0.0)


def calibration_circuits(qubits: int, pair: tuple[int, int] | None) -> dict[str, QuantumCircuit]:
    """Named circuits; run each with SHOTS shots at optimization level 0 (kept as written)."""
    out: dict[str, QuantumCircuit] = {}
    width = min(qubits, READOUT_QUBITS)
    for bit in (0, 1):
        qc = QuantumCircuit(width, width)
        if bit:
            qc.x(range(width))
        qc.measure(range(width), range(width))
        out[f"readout{bit}"] = qc
    for m in (0, SINGLE_QUBIT_SEQUENCE):
        qc = QuantumCircuit(1, 1)
        for _ in range(m):
            qc.x(0)
        qc.measure(0, 0)
        out[f"x{m}"] = qc
    if pair is not None:
        a, b = pair
        for m in (0, TWO_QUBIT_SEQUENCE):
            qc = QuantumCircuit(qubits, 2)
            qc.x(a)
            for _ in range(m):
                qc.cx(a, b)
            qc.measure([a, b], [1, 0])  # clbit 1 = control: ideal outcome "10"
            out[f"cx{m}"] = qc
        for basis in ("zz", "xx", "yy"):
            qc = QuantumCircuit(qubits, 2)
            qc.h(a)
            qc.cx(a, b)
            for q in (a, b):
                if basis == "yy":
                    qc.sdg(q)
                if basis != "zz":
                    qc.h(q)
            qc.measure([a, b], [0, 1])
            out[f"bell_{basis}"] = qc
    return out


def _p(counts: dict[str, int], outcome: str) -> float:
    return counts.get(outcome, 0) / max(1, sum(counts.values()))


def _decay(survival_0: float, survival_m: float, floor: float, m: int) -> float:
    """Depolarizing parameter per gate from survival after 0 and m gates."""
    top, bottom = survival_m - floor, survival_0 - floor
    if bottom <= 0:
        return 1.0
    ratio = min(1.0, max(top / bottom, 1e-9))
    return max(0.0, 1 - ratio ** (1 / m))


def _parity(counts: dict[str, int]) -> float:
    total = max(1, sum(counts.values()))
    return sum(n if k.count("1") % 2 == 0 else -n for k, n in counts.items()) / total


def figures(counts: dict[str, dict[str, int]], qubits: int) -> CalibrationFigures:
    """The calibration figures from the counts of `calibration_circuits`."""
    width = min(qubits, READOUT_QUBITS)
    up = sum(_p_bit(counts["readout0"], q, "1") for q in range(width)) / width
    down = sum(_p_bit(counts["readout1"], q, "0") for q in range(width)) / width
    readout = (up + down) / 2
    p1 = _decay(
        _p(counts["x0"], "0"),
        _p(counts[f"x{SINGLE_QUBIT_SEQUENCE}"], "0"),
        0.5,
        SINGLE_QUBIT_SEQUENCE,
    )
    if "cx0" in counts:
        p2: float | None = _decay(
            _p(counts["cx0"], "10"),
            _p(counts[f"cx{TWO_QUBIT_SEQUENCE}"], "10"),
            0.25,
            TWO_QUBIT_SEQUENCE,
        )
        zz, xx, yy = (_parity(counts[f"bell_{b}"]) for b in ("zz", "xx", "yy"))
        fidelity = (1 + xx - yy + zz) / 4
    else:
        p2 = None
        fidelity = (1 - readout) * (1 - p1)
    return CalibrationFigures(
        readout_error=round(readout, 6),
        readout_error_0to1=round(up, 6),
        readout_error_1to0=round(down, 6),
        single_qubit_error=round(p1, 6),
        two_qubit_error=None if p2 is None else round(p2, 6),
        fidelity=round(max(0.0, min(1.0, fidelity)), 6),
    )


def _p_bit(counts: dict[str, int], qubit: int, value: str) -> float:
    """Probability that clbit `qubit` (rightmost = 0) reads `value`."""
    total = max(1, sum(counts.values()))
    return sum(n for k, n in counts.items() if k[len(k) - 1 - qubit] == value) / total


def standard_errors(figures: CalibrationFigures, readout_qubits: int) -> dict[str, float]:
    """Sampling standard errors of the figures of one calibration of SHOTS shots a circuit
    (binomial counts through the delta method), for comparing two calibrations."""

    def decay(p: float, floor: float, bits: int, m: int) -> float:
        s0 = (1 - figures.readout_error) ** bits
        if s0 <= floor:
            return 1.0
        x = max((1 - p) ** m, 1e-9)
        sm = floor + (s0 - floor) * x
        dx = ((sm * (1 - sm) + x * x * s0 * (1 - s0)) / SHOTS) ** 0.5 / (s0 - floor)
        return float(x ** (1 / m - 1) * dx / m)

    r = figures.readout_error
    out = {
        "readoutError": (r * (1 - r) / (2 * readout_qubits * SHOTS)) ** 0.5,
        "singleQubitError": decay(figures.single_qubit_error, 0.5, 1, SINGLE_QUBIT_SEQUENCE),
    }
    if figures.two_qubit_error is not None:
        out["twoQubitError"] = decay(figures.two_qubit_error, 0.25, 2, TWO_QUBIT_SEQUENCE)
    return out


def expected_figures(spec: QuantumNodeSpec) -> CalibrationFigures:
    """What calibration reads on a node whose noise is as `spec` declares: the calibration
    circuits run under the declared noise, on two qubits (the noise is the same on every
    qubit), with a fixed seed; cached per noise."""
    # Jobs planned in parallel worker threads all missed a plain cache together and each
    # simulated the same figures (50 jobs: 4 s of the operator's CPU).
    noise_json, basis_gates = spec.noise.model_dump_json(), tuple(spec.basis_gates)
    return _EXPECTED.get((noise_json, basis_gates), lambda: _expected(noise_json, basis_gates))


_EXPECTED: SingleFlight[CalibrationFigures] = SingleFlight(256)


def _expected(noise_json: str, basis_gates: tuple[str, ...]) -> CalibrationFigures:
    from .executor import NodeExecutor  # Aer: only when a node's figures are compared

    spec = QuantumNodeSpec.model_validate(
        {"qubits": 2, "basisGates": list(basis_gates), "noise": json.loads(noise_json)}
    )
    executor = NodeExecutor(spec)
    circuits = calibration_circuits(2, (0, 1))
    if executor.noise_model is None:
        # Without any noise, compiling to the node's gates changes no outcome: Aer runs the
        # circuits as written, and the process is spared its first transpile (a second).
        counts = executor.sample_all(list(circuits.values()), SHOTS, 7919)
    else:
        counts = executor.run_all(list(circuits.values()), SHOTS, 7919, 0)
    return figures(dict(zip(circuits, counts, strict=True)), 2)
