"""Circuits on the wire between the pipeline and the agents: QPY, base64 in JSON."""

from __future__ import annotations

import base64
import io

from qiskit import QuantumCircuit, QuantumRegister, qpy


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


def defer_measurements(circuit: QuantumCircuit, max_qubits: int) -> QuantumCircuit | None:
    """The circuit with each mid-circuit measurement deferred, or None where that does not
    apply or would exceed `max_qubits`.

    A measurement whose outcome no gate reads acts on its qubit as a CNOT onto a fresh
    ancilla does (both leave the Z-basis information outside the qubit), and measuring that
    ancilla at the end gives the outcome with the same joint distribution; an outcome a
    later measurement overwrites is not measured at all. Aer then draws every shot from one
    simulation. Only for noiseless gates (the CNOT is not a gate of the node), and without
    resets or control flow. (Verification's deferred form in qorch.pipeline.verification
    also carries those, through the planner's unrolling, which this layer cannot use.)
    """
    deferred: dict[int, bool] = {}  # instruction index -> whether its outcome is kept
    gate_after: set[object] = set()  # qubits a gate acts on later in the circuit
    written_after: set[object] = set()  # bits a measurement writes later in the circuit
    for index in range(len(circuit.data) - 1, -1, -1):
        instruction = circuit.data[index]
        name = instruction.operation.name
        if name == "reset" or getattr(instruction.operation, "blocks", ()):
            return None
        if name == "measure":
            bit = instruction.clbits[0]
            if instruction.qubits[0] in gate_after:
                deferred[index] = bit not in written_after
            written_after.add(bit)
        elif name != "barrier":
            gate_after.update(instruction.qubits)
    if not deferred or circuit.num_qubits + len(deferred) > max_qubits:
        return None
    ancillas = QuantumRegister(len(deferred), "deferred")
    out = circuit.copy_empty_like()
    out.add_register(ancillas)
    finals: list[tuple[object, object]] = []
    for index, instruction in enumerate(circuit.data):
        if index in deferred:
            ancilla = ancillas[len(finals)]
            out.cx(instruction.qubits[0], ancilla)
            finals.append((ancilla, instruction.clbits[0] if deferred[index] else None))
        else:
            out.append(instruction)
    for ancilla, bit in finals:
        if bit is not None:
            out.measure(ancilla, bit)
    return out
