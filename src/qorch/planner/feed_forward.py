"""Which parts of a dynamic circuit a plan must connect classically.

A dynamic circuit measures mid-circuit, resets, or acts on measured bits (`if`, `switch`,
loops). Teleport carries all of it (see `qorch.planner.teleport`). A cut runs its
subexperiments apart, so a bit measured on one side can never steer an operation on the
other: `cut_refusal` names the first conditional that would need it. Dynamic operations
all on one side would be sound to cut (the QPD is linear in each side's channel), but the
cutting library refuses any circuit with classical bits, so a cut refuses them too.
"""

from __future__ import annotations

from collections.abc import Mapping

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp

from .unroll import predicated_steps, unroll


def is_dynamic(circuit: QuantumCircuit) -> bool:
    """Whether the circuit resets, has control flow, or acts on a qubit after measuring it."""
    measured: set[int] = set()
    for inst in circuit.data:
        op = inst.operation
        qubits = {circuit.find_bit(q).index for q in inst.qubits}
        if isinstance(op, ControlFlowOp) or op.name == "reset":
            return True
        if op.name == "measure":
            measured |= qubits
        elif op.name != "barrier" and measured & qubits:
            return True
    return False


def cut_refusal(circuit: QuantumCircuit, assignment: Mapping[int, str]) -> str:
    """Why a cut cannot run this dynamic circuit placed by `assignment` (qubit -> node)."""
    try:
        steps = predicated_steps(unroll(circuit))
    except ValueError as exc:
        return str(exc)
    home: dict[int, str] = {}  # clbit -> node whose measurement last wrote it
    for step in steps:
        nodes = {assignment[q] for q in step.qubits}
        for test in step.predicate:
            for bit in test.bits:
                source = home.get(bit)
                if source is not None and nodes - {source}:
                    there = ", ".join(sorted(nodes - {source}))
                    return (
                        f"a conditional operation on {there} reads a bit measured on {source}; a"
                        " cut runs each side's subexperiments apart, so no bit crosses it (use"
                        " teleport, which carries feed-forward over the link)"
                    )
        if step.operation.name == "measure" and len(nodes) == 1:
            for bit in step.clbits:
                home[bit] = next(iter(nodes))
    return (
        "the circuit measures mid-circuit, resets or feeds measured bits forward, all on one"
        " side of the cut, but the cutter (qiskit-addon-cutting) partitions only circuits"
        " without classical bits (use teleport)"
    )
