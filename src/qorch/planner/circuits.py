"""Circuit preparation shared by the strategies: gate sets, two-qubit interactions, checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
from qiskit.transpiler import PassManager
from qiskit.transpiler.passes import (
    BasisTranslator,
    HighLevelSynthesis,
    Optimize1qGatesDecomposition,
)

#: Instructions that are not gates and pass through every translation untouched.
NON_GATES = ("measure", "reset", "barrier", "delay", "initialize")
CONTROL_FLOW = ("if_else", "while_loop", "for_loop", "switch_case", "box")
#: The two-qubit gates a nonlocal gadget implements directly; everything else is decomposed.
REMOTE_GATES = ("cx", "cz")
#: A one-qubit gate set every circuit can be written in; used where only counts matter.
GENERIC_ONE_QUBIT = ("u",)


def translate(
    circuit: QuantumCircuit, basis: Iterable[str], *, merge_one_qubit: Iterable[str] = ()
) -> QuantumCircuit:
    """`circuit` rewritten into `basis` without layout or routing: qubits and clbits stay put.

    `transpile` would do the same but may add a layout; running the passes directly keeps the
    circuit's registers, which the strategies rely on. With `merge_one_qubit`, runs of
    one-qubit gates are then merged into that gate set.
    """
    target = sorted({*basis, *NON_GATES, *CONTROL_FLOW})
    passes = [
        HighLevelSynthesis(basis_gates=target, equivalence_library=SessionEquivalenceLibrary),
        BasisTranslator(SessionEquivalenceLibrary, target),
    ]
    one_qubit = list(merge_one_qubit)
    if one_qubit:
        passes.append(Optimize1qGatesDecomposition(basis=one_qubit))
    return PassManager(passes).run(circuit)


def for_distribution(circuit: QuantumCircuit, one_qubit_basis: Iterable[str]) -> QuantumCircuit:
    """The circuit with only CX/CZ as multi-qubit gates: what a distributed plan executes."""
    one_qubit = list(one_qubit_basis)
    return translate(circuit, [*one_qubit, *REMOTE_GATES], merge_one_qubit=one_qubit)


def iter_two_qubit(circuit: QuantumCircuit) -> Iterator[tuple[str, int, int]]:
    """(gate name, qubit, qubit) for every two-qubit gate, looking inside control flow."""

    def walk(block: QuantumCircuit, outer: list[int]) -> Iterator[tuple[str, int, int]]:
        for inst in block.data:
            op = inst.operation
            qubits = [outer[block.find_bit(q).index] for q in inst.qubits]
            if isinstance(op, ControlFlowOp):
                for body in op.blocks:
                    yield from walk(body, qubits)
            elif len(qubits) == 2 and op.name not in NON_GATES:
                yield op.name, qubits[0], qubits[1]

    yield from walk(circuit, list(range(circuit.num_qubits)))


def measured_clbits(circuit: QuantumCircuit) -> dict[int, int]:
    """clbit -> the qubit its last measurement reads, looking inside control flow. A clbit
    missing here is never written by a measurement: it reads 0 whatever the readout error."""
    measured: dict[int, int] = {}

    def walk(block: QuantumCircuit, qubits: list[int], clbits: list[int]) -> None:
        for inst in block.data:
            op = inst.operation
            q = [qubits[block.find_bit(b).index] for b in inst.qubits]
            c = [clbits[block.find_bit(b).index] for b in inst.clbits]
            if isinstance(op, ControlFlowOp):
                for body in op.blocks:
                    walk(body, q, c)
            elif op.name == "measure":
                measured[c[0]] = q[0]

    walk(circuit, list(range(circuit.num_qubits)), list(range(circuit.num_clbits)))
    return measured


def interaction_weights(circuit: QuantumCircuit) -> Counter[tuple[int, int]]:
    """How many CX/CZ each pair of qubits needs once the circuit is decomposed; pairs sorted."""
    weights: Counter[tuple[int, int]] = Counter()
    for _, a, b in iter_two_qubit(for_distribution(circuit, GENERIC_ONE_QUBIT)):
        weights[(a, b) if a < b else (b, a)] += 1
    return weights


def has_control_flow(circuit: QuantumCircuit) -> bool:
    return any(isinstance(inst.operation, ControlFlowOp) for inst in circuit.data)


def without_measurements(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit with final measurements (and the clbits they leave unused) removed.

    Raises ValueError when a measurement is not final: then it is not an observable circuit.
    """
    stripped = circuit.remove_final_measurements(inplace=False)
    if any(inst.operation.name == "measure" for inst in stripped.data):
        raise ValueError("the circuit measures mid-circuit; expectation values need unitaries")
    if has_control_flow(stripped):
        raise ValueError("the circuit has classical feed-forward; expectation values need none")
    return stripped
