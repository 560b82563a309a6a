"""Expectation values for strategies that sample the circuit itself (single, teleport).

Observables are grouped by qubit-wise commutation (Qiskit's PauliList grouping); each group
is measured by one extra circuit: the circuit's unitary part rotated into the group's basis
(X by H, Y by S-dagger then H) with every qubit measured. A Pauli's value is then the mean
parity of its qubits' bits; its standard error sqrt((1 - <P>^2) / shots).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qiskit import ClassicalRegister, QuantumCircuit

from .circuits import without_measurements
from .cutting import parse_observables


@dataclass(frozen=True)
class MeasurementBasis:
    """One circuit to run and the indices of the observables its counts give."""

    circuit: QuantumCircuit
    observables: tuple[int, ...]


def measurement_bases(
    circuit: QuantumCircuit, observables: Sequence[str]
) -> list[MeasurementBasis]:
    """The circuits that measure every observable; ValueError when the circuit is not a
    unitary followed by final measurements."""
    unitary = without_measurements(circuit)
    paulis = parse_observables(observables, unitary.num_qubits)
    where: dict[str, list[int]] = {}  # an observable listed twice is measured once
    for i, obs in enumerate(observables):
        where.setdefault(obs, []).append(i)
    out = []
    for group in paulis.group_qubit_wise_commuting():
        labels = {p.to_label().lstrip("+-i") for p in group}
        members = tuple(sorted(i for label in labels for i in where[label]))
        basis = ["I"] * unitary.num_qubits
        for label in labels:
            for q, letter in enumerate(reversed(label)):
                if letter != "I":
                    basis[q] = letter
        # Only the quantum registers: counts then key exactly the n measured bits.
        rotated = QuantumCircuit(*unitary.qregs, ClassicalRegister(unitary.num_qubits, "basis"))
        for inst in unitary.data:
            rotated.append(inst)
        for q, letter in enumerate(basis):
            if letter == "Y":
                rotated.sdg(q)
            if letter in "XY":
                rotated.h(q)
        rotated.measure(range(unitary.num_qubits), range(unitary.num_qubits))
        out.append(MeasurementBasis(rotated, members))
    covered = sorted(i for b in out for i in b.observables)
    assert covered == list(range(len(observables))), "every observable is measured once"
    return out


def sign(key: str, observable: str) -> int:
    """The eigenvalue of a Z-basis outcome for `observable` measured in its basis: -1 to
    the parity of the bits its non-identity qubits read (qubit 0 rightmost)."""
    bits = key.replace(" ", "")
    ones = sum(
        bits[len(bits) - 1 - q] == "1" for q, c in enumerate(reversed(observable)) if c != "I"
    )
    return -1 if ones % 2 else 1


def expectation(counts: Mapping[str, int], observable: str) -> tuple[float, float]:
    """<P> and its standard error from counts of all qubits (qubit 0 rightmost)."""
    shots = sum(counts.values())
    value = sum(n * sign(key, observable) for key, n in counts.items()) / shots
    return value, math.sqrt(max(0.0, 1 - value * value) / shots)


def expectation_values(
    bases: Sequence[MeasurementBasis],
    counts: Sequence[Mapping[str, int]],
    observables: Sequence[str],
) -> tuple[list[float], list[float]]:
    """Values and standard errors of `observables`, in order, from each basis' counts."""
    values = [0.0] * len(observables)
    errors = [0.0] * len(observables)
    for basis, got in zip(bases, counts, strict=True):
        for i in basis.observables:
            values[i], errors[i] = expectation(got, observables[i])
    return values, errors


def first_bits(counts: Mapping[str, int], width: int) -> dict[str, int]:
    """Counts over the first `width` classical bits (the rightmost), merging the rest; a
    co-simulated basis program puts its communication and feed-forward bits after them."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        bits = key.replace(" ", "")[-width:]
        out[bits] = out.get(bits, 0) + int(n)
    return out
