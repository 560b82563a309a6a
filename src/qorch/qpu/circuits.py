"""Circuits on the wire between the pipeline and the agents: QPY, base64 in JSON."""

from __future__ import annotations

import base64
import io

from qiskit import QuantumCircuit, qpy


def encode_circuit(circuit: QuantumCircuit) -> str:
    """QPY keeps every instruction Qiskit has (feed-forward included) without re-parsing."""
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_circuit(data: str) -> QuantumCircuit:
    """Inverse of encode_circuit; raises ValueError on anything but exactly one circuit."""
    try:
        circuits = qpy.load(io.BytesIO(base64.b64decode(data, validate=True)))
    except Exception as exc:  # qpy raises a variety of errors on bad input
        raise ValueError(f"not a QPY circuit: {exc}") from exc
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise ValueError("expected exactly one circuit")
    return circuits[0]


def measures(circuit: QuantumCircuit) -> bool:
    """Whether the circuit measures anything, inside control flow too."""
    for instruction in circuit.data:
        operation = instruction.operation
        blocks = getattr(operation, "blocks", ())  # control flow only
        if operation.name == "measure" or any(measures(b) for b in blocks):
            return True
    return False


def measures_only_at_end(circuit: QuantumCircuit) -> bool:
    """Whether every measurement is final: nothing but barriers and further measurements
    touch a measured qubit, and nothing resets or branches. Aer then draws all shots from one
    simulation (measure sampling)."""
    measured: set[object] = set()
    for instruction in circuit.data:
        name = instruction.operation.name
        if name == "reset" or getattr(instruction.operation, "blocks", ()):
            return False
        if name == "measure":
            measured.update(instruction.qubits)
        elif name != "barrier" and measured.intersection(instruction.qubits):
            return False
    return True
