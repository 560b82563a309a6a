"""OpenQASM 2 read by Qiskit's own parser, the circuit built with less Python per instruction.

``qasm2.loads`` has two halves: Qiskit's Rust parser, which reads and checks the program
(syntax, names, arities, includes, constant expressions) and emits a stream of instructions,
and a Python loop (``qiskit.qasm2.parse.from_bytecode``) that builds the circuit from the
stream, constructing a Python gate object for every instruction. The loop takes three quarters
of the time. :func:`build` calls the same parser with the arguments ``parsing.load`` gives
``qasm2.loads`` (no include path, ``LEGACY_CUSTOM_INSTRUCTIONS``, no custom classical
functions, not strict), so it accepts and refuses exactly the same programs with the same
errors; only the building differs: a standard gate goes in the way ``QuantumCircuit``'s own
gate methods put it (``CircuitInstruction.from_standard``), without a Python object each.
Every other instruction is built the way ``from_bytecode`` builds it.

Programs with gate definitions, ``opaque`` or ``if`` are left to ``qasm2.loads`` (:func:`build`
returns None), and so is everything should the builder itself fail. The instruction stream is
internal to Qiskit, so the first call builds a sample of every instruction both ways and keeps
the fast path off unless the circuits are identical: a Qiskit upgrade that changes the stream
or the gates turns the fast path off instead of changing what the sanitizer checks.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from qiskit import qasm2
from qiskit.circuit import (
    Barrier,
    CircuitInstruction,
    ClassicalRegister,
    Clbit,
    Measure,
    QuantumCircuit,
    QuantumRegister,
    Qubit,
    Reset,
)
from qiskit.circuit.library import CXGate, UGate

try:
    from qiskit._accelerate import qasm2 as _parser
    from qiskit.qasm2.parse import QELIB1
except ImportError:  # pragma: no cover - a Qiskit without them: qasm2.loads does it all
    _parser = None
    QELIB1 = ()

CUSTOM_INSTRUCTIONS = tuple(qasm2.LEGACY_CUSTOM_INSTRUCTIONS)

#: Every instruction the fast path builds differently, applied once; the self-check compares
#: it with ``qasm2.loads``. Gates not in it are built by their constructor, as Qiskit does.
SAMPLE = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[5];
qreg r[2];
creg c[5];
creg d[2];
U(0.1, 0.2, 0.3) q[0];
CX q[0], r[1];
u3(0.1, -0.2, 3) q[1]; u2(0.1, 0.2) q[2]; u1(1e-3) q[3]; u(1, 2, 3) q[4]; p(-0.5) r[0];
id q[0]; x q[1]; y q[2]; z q[3]; h q[4]; s r[0]; sdg r[1]; t q[0]; tdg q[1];
rx(pi/2) q[2]; ry(-pi) q[3]; rz(2*pi) q[4]; sx r[0]; sxdg r[1];
cx q[0], q[1]; cz q[1], q[2]; cy q[2], q[3]; swap q[3], q[4]; ch q[4], r[0]; csx r[0], r[1];
crx(0.1) q[0], q[2]; cry(0.2) q[1], q[3]; crz(0.3) q[2], q[4]; cu1(0.4) q[3], r[0];
cp(0.5) q[4], r[1]; cu3(0.1, 0.2, 0.3) r[0], q[0]; cu(0.1, 0.2, 0.3, 0.4) r[1], q[1];
rxx(0.6) q[0], q[4]; rzz(0.7) q[1], r[0];
ccx q[0], q[1], q[2]; cswap q[1], q[2], q[3]; rccx q[2], q[3], q[4];
rc3x q[0], q[1], q[2], q[3]; c3x q[1], q[2], q[3], q[4]; c3sqrtx q[2], q[3], q[4], r[0];
h q;
cx q[0], r;
barrier q, r[1];
reset q[2];
reset r;
measure q -> c;
measure r[1] -> d[0];
"""

#: By the parser's gate id: (standard gate or None, its number of parameters or -1,
#: constructor).
GateTable = list[tuple[Any, int, Callable[..., Any]]]


def _standard_gate(constructor: Callable[..., Any]) -> Any:
    """The ``StandardGate`` a gate class stands for, declared on the class itself (not
    inherited: a subclass may be a different gate); None for anything else."""
    if not isinstance(constructor, type):
        return None
    return vars(constructor).get("_standard_gate")


def _entry(name: str, constructor: Callable[..., Any], fast: frozenset[str]) -> Any:
    standard = _standard_gate(constructor) if name in fast else None
    return (standard, standard.num_params if standard is not None else -1, constructor)


def gate_table(fast_names: Iterable[str]) -> GateTable:
    """The parser's gate ids in ``from_bytecode``'s order: the custom instructions, then ``U``
    and ``CX`` unless they are among them. Only gates named in ``fast_names`` (those the
    self-check covers) take the fast path."""
    fast = frozenset(fast_names)
    table: GateTable = [_entry(c.name, c.constructor, fast) for c in CUSTOM_INSTRUCTIONS]
    names = {c.name for c in CUSTOM_INSTRUCTIONS}
    for name, cls in (("U", UGate), ("CX", CXGate)):
        if name not in names:
            table.append(_entry(name, cls, fast))
    return table


def _instructions(source: str) -> Any:
    """The parser's instruction stream, with ``parsing.load``'s ``qasm2.loads`` arguments."""
    custom = [
        _parser.CustomInstruction(c.name, c.num_params, c.num_qubits, c.builtin)
        for c in CUSTOM_INSTRUCTIONS
    ]
    return _parser.bytecode_from_string(source, [], custom, (), False)


class _Builder:
    """Builds the circuit from the parser's instructions, as ``from_bytecode`` would."""

    def __init__(self, table: GateTable) -> None:
        self.circuit = QuantumCircuit()
        self.qubits: list[Qubit] = []
        self.clbits: list[Clbit] = []
        self.gates = list(table)

    def build(self, instructions: Iterable[Any]) -> QuantumCircuit | None:
        """The circuit; None at the first instruction only ``qasm2.loads`` builds."""
        # Locals: this loop runs once per instruction.
        gate_code = _parser.OpCode.Gate
        append, from_standard = self.circuit._append, CircuitInstruction.from_standard
        gates, qubits = self.gates, self.qubits
        for op in instructions:
            if op.opcode == gate_code:  # nearly every instruction: handled inline
                gate_id, params, targets = op.operands
                standard, n_params, constructor = gates[gate_id]
                wires = [qubits[q] for q in targets]
                # The parser leaves the count of parameters unchecked when the parentheses
                # are left out (``rz q[0];``): then the constructor refuses them, as in Qiskit.
                if len(params) == n_params:
                    # What QuantumCircuit.rz() and friends append: no Python gate object.
                    append(from_standard(standard, wires, params), _standard_gate=True)
                else:
                    append(CircuitInstruction(constructor(*params), wires))
            elif not self._other(op):
                return None
        return self.circuit

    def _other(self, op: Any) -> bool:
        """Declarations, measurements, resets and barriers; False for what is left to
        ``qasm2.loads`` (definitions, conditions)."""
        code, operands = _parser.OpCode, op.operands
        circuit = self.circuit
        if op.opcode == code.Measure:
            qubit, clbit = operands
            circuit._append(
                CircuitInstruction(Measure(), (self.qubits[qubit],), (self.clbits[clbit],))
            )
        elif op.opcode == code.Reset:
            circuit._append(CircuitInstruction(Reset(), (self.qubits[operands[0]],)))
        elif op.opcode == code.Barrier:
            wires = [self.qubits[q] for q in operands[0]]
            circuit._append(CircuitInstruction(Barrier(len(wires)), wires))
        elif op.opcode == code.DeclareQreg:
            quantum = QuantumRegister(operands[1], operands[0])
            self.qubits += quantum[:]
            circuit.add_register(quantum)
        elif op.opcode == code.DeclareCreg:
            classical = ClassicalRegister(operands[1], operands[0])
            self.clbits += classical[:]
            circuit.add_register(classical)
        elif op.opcode == code.SpecialInclude:
            # qelib1.inc's gates that the custom instructions do not already provide.
            self.gates += [(None, -1, QELIB1[index]) for index in operands[0]]
        else:
            return False
        return True


def _build(source: str, table: GateTable) -> QuantumCircuit | None:
    instructions = _instructions(source)
    try:
        return _Builder(table).build(instructions)
    except qasm2.QASM2ParseError:
        raise  # the program's fault, raised by the parser exactly as under qasm2.loads
    except Exception:
        return None  # whatever else went wrong, qasm2.loads decides


def _same(built: QuantumCircuit | None, loaded: QuantumCircuit) -> bool:
    """Equal circuits, instruction by instruction down to the operation's class."""
    if built is None or built != loaded or len(built.data) != len(loaded.data):
        return False
    return all(
        type(a.operation) is type(b.operation)
        and a.operation.params == b.operation.params
        and a.qubits == b.qubits
        and a.clbits == b.clbits
        for a, b in zip(built.data, loaded.data, strict=True)
    ) and (built.qregs, built.cregs) == (loaded.qregs, loaded.cregs)


#: Words opening a statement of the sample: the gates the self-check covers (and keywords).
_SAMPLE_WORDS = frozenset(re.findall(r"(?:^|;)\s*([^\W\d]\w*)", SAMPLE, re.M))

_TABLE: GateTable | None = None
_CHECKED = False
_LOCK = threading.Lock()


def _self_check() -> GateTable | None:
    """The gate table if the sample builds identically both ways, else None."""
    if _parser is None:
        return None
    table = gate_table(_SAMPLE_WORDS)
    try:
        loaded = qasm2.loads(SAMPLE, include_path=(), custom_instructions=CUSTOM_INSTRUCTIONS)
        return table if _same(_build(SAMPLE, table), loaded) else None
    except Exception:
        return None


def _checked_table() -> GateTable | None:
    """:func:`_self_check`, once per process."""
    global _TABLE, _CHECKED
    if not _CHECKED:
        with _LOCK:
            if not _CHECKED:
                _TABLE, _CHECKED = _self_check(), True
    return _TABLE


def build(source: str) -> QuantumCircuit | None:
    """The circuit ``qasm2.loads(source, include_path=(),
    custom_instructions=LEGACY_CUSTOM_INSTRUCTIONS)`` builds, or None when that call should
    build it (see the module docstring). The parser's errors propagate as they would from it."""
    table = _checked_table()
    if table is None:
        return None
    return _build(source, table)
