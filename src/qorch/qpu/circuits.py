"""Circuits on the wire between the pipeline and the agents: QPY, base64 in JSON."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, QuantumRegister, qpy


def encode_circuit(circuit: QuantumCircuit) -> str:
    """QPY keeps every instruction Qiskit has (feed-forward included) without re-parsing."""
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def fingerprint(circuit: QuantumCircuit) -> bytes:
    """A digest of what a circuit does: equal for circuits built alike, as the jobs of one
    batch are. Not its QPY: that names each custom gate with a random UUID."""
    digest = hashlib.sha256()
    _feed(digest, circuit)
    return digest.digest()


def _feed(digest: Any, circuit: QuantumCircuit) -> None:
    digest.update(f"{circuit.num_qubits} {circuit.num_clbits} {circuit.global_phase!r};".encode())
    for inst in circuit.data:
        op = inst.operation
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        clbits = [circuit.find_bit(c).index for c in inst.clbits]
        kind = type(op)
        module = kind.__module__ or ""  # None for some of Qiskit's compiled classes
        digest.update(
            f"{module}.{kind.__qualname__} {op.name} {qubits} {clbits}"
            f" {getattr(op, 'label', None)!r}(".encode()
        )
        for param in op.params:
            if isinstance(param, QuantumCircuit):  # a control-flow block
                _feed(digest, param)
            elif isinstance(param, np.ndarray):
                digest.update(np.ascontiguousarray(param).data)
            else:
                digest.update(f"{param!r},".encode())
        digest.update(b")")
        # A library gate is its class and parameters (its definition may be a synthesis:
        # seconds for a wide UnitaryGate); any other (a QASM `gate`, a plain Gate, which
        # sits in qiskit.circuit too) is what its definition does. Control flow is its
        # blocks, fed above.
        if not module.startswith("qiskit.circuit.library") and not getattr(op, "blocks", None):
            definition = getattr(op, "definition", None)
            if definition is not None:
                _feed(digest, definition)


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


def active_qubits(circuit: QuantumCircuit) -> int:
    """Qubits any operation acts on: those Aer simulates (it leaves idle ones out)."""
    return len({q for ins in circuit.data if ins.operation.name != "barrier" for q in ins.qubits})


def measures_only_at_end(circuit: QuantumCircuit, resets: bool = False) -> bool:
    """Whether every measurement is final: nothing but barriers and further measurements
    touch a measured qubit, and nothing resets or branches. Aer then draws all shots from one
    simulation (measure sampling). `resets`: resets before the measurements are allowed, as
    for a density matrix, which applies them as a channel."""
    measured: set[object] = set()
    for instruction in circuit.data:
        name = instruction.operation.name
        if (name == "reset" and not resets) or getattr(instruction.operation, "blocks", ()):
            return False
        if name == "measure":
            measured.update(instruction.qubits)
        elif name != "barrier" and measured.intersection(instruction.qubits):
            return False
    return True


# Aer's cost model for `branching_pays`, fitted on 4 to 20 qubits, 1 to 16 mid-circuit
# measurements (benchmarks/shot_branching.py): an operation on one state costs about
# 0.15 us + 1.2 ns per amplitude, and each branch adds about 1 ms of its own.
_OP_SECONDS, _AMPLITUDE_SECONDS, _BRANCH_SECONDS = 1.5e-7, 1.2e-9, 1e-3


def branching_pays(circuit: QuantumCircuit, shots: int) -> bool:
    """Whether Aer's shot branching runs a noiseless `circuit` faster than simulating each
    shot on its own.

    Branching simulates the operations before the first mid-circuit measurement or reset
    once and splits the state there, so it wins when branches stay few next to the shots.
    Each branch has an overhead of its own, though: 16 early measurements on 4 qubits made it
    15 times slower than plain shots, which an untrusted circuit could exploit.
    """
    last_gate = max(
        (
            i
            for i, ins in enumerate(circuit.data)
            if ins.operation.name not in ("measure", "barrier")
        ),
        default=-1,
    )
    op = _OP_SECONDS + _AMPLITUDE_SECONDS * 2.0**circuit.num_qubits
    branches, branched = 1, 0.0
    for index, instruction in enumerate(circuit.data):
        branched += branches * op
        if index < last_gate and instruction.operation.name in ("measure", "reset"):
            branches = min(shots, 2 * branches)
    return branched + branches * _BRANCH_SECONDS < shots * len(circuit.data) * op


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
