"""Names of the standard gates and of the operations the rules treat specially.

Names are the ones Qiskit gives the parsed instructions; a few differ from the OpenQASM
spelling (``c3x`` becomes ``mcx``, ``CX`` becomes ``cx``), so policies may use either and
:func:`qiskit_name` maps the source spelling to Qiskit's.
"""

from __future__ import annotations

import re

from qiskit.circuit import ControlledGate, Instruction

#: OpenQASM spelling -> name of the instruction Qiskit's loaders build for it.
SOURCE_ALIASES: dict[str, str] = {
    "U": "u",
    "CX": "cx",
    "phase": "p",
    "cphase": "cp",
    "c3x": "mcx",
    "c4x": "mcx",
    "c3sqrtx": "c3sx",
    "rc3x": "rcccx",
}

#: Gates of qelib1.inc (Qiskit's extended version) and stdgates.inc, as Qiskit names them.
STANDARD_GATES: frozenset[str] = frozenset(
    {
        "u3", "u2", "u1", "u0", "u", "p", "id",
        "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
        "rx", "ry", "rz",
        "cx", "cy", "cz", "ch", "swap", "csx",
        "crx", "cry", "crz", "cp", "cu1", "cu3", "cu",
        "rxx", "rzz",
        "ccx", "cswap", "rccx", "rcccx", "c3sx", "mcx",
    }
)  # fmt: skip

#: Non-unitary operations allowed by default; delay has its own bound (QS304).
DEFAULT_DIRECTIVES: frozenset[str] = frozenset({"measure", "reset", "barrier", "delay"})

DEFAULT_ALLOWED_GATES: tuple[str, ...] = tuple(sorted(STANDARD_GATES | DEFAULT_DIRECTIVES))

#: Names the OpenQASM loaders know without a definition in the source: the builtins of
#: both versions plus every gate of the two standard libraries, in source spelling.
SOURCE_BUILTINS: frozenset[str] = frozenset(
    STANDARD_GATES | set(SOURCE_ALIASES) | {"gphase", "measure", "reset", "barrier", "delay"}
)

#: Control-flow operations; the QS3xx rules decide about them, not the allowlist.
CONTROL_FLOW: frozenset[str] = frozenset(
    {"if_else", "while_loop", "for_loop", "switch_case", "box", "break_loop", "continue_loop"}
)

#: Operations that leave the state alone apart from the passage of time.
IDLE_OPERATIONS: frozenset[str] = frozenset({"delay", "barrier", "id", "u0", "reset"})

#: Gates that are the identity when all their angles are zero (OpenQASM 3 ``id`` is ``U(0,0,0)``).
IDENTITY_AT_ZERO: frozenset[str] = frozenset({"u", "u1", "u3", "p", "rx", "ry", "rz"})

#: Standard gates without parameters: the parameter rule can skip them.
PARAMETERLESS: frozenset[str] = frozenset(
    {
        "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
        "cx", "cy", "cz", "ch", "swap", "csx", "ccx", "cswap", "rccx", "rcccx", "c3sx", "mcx",
        "measure", "reset", "barrier",
    }
)  # fmt: skip

#: Instructions that are not gates in the sense of the gate-count limits.
NOT_COUNTED: frozenset[str] = frozenset({"barrier"}) | CONTROL_FLOW


def qiskit_name(name: str) -> str:
    """The name Qiskit gives the instruction written ``name`` in OpenQASM."""
    return SOURCE_ALIASES.get(name, name)


#: Standard gates on one qubit: the repetition rule (QS402) does not need to look at them.
ONE_QUBIT_GATES: frozenset[str] = frozenset(
    {
        "u3", "u2", "u1", "u0", "u", "p", "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg",
        "sx", "sxdg", "rx", "ry", "rz",
    }
)  # fmt: skip

#: Standard gates on two or more qubits.
MULTI_QUBIT_GATES: frozenset[str] = STANDARD_GATES - ONE_QUBIT_GATES


_CTRL_STATE = re.compile(r"_o\d+$")


def allowlist_name(op: Instruction) -> str:
    """The name the allowlist judges an operation by: its own, except for gates made with
    ``ctrl``/``negctrl``, which are judged by what they are. A standard controlled gate goes by
    its name whatever its control state (``negctrl @ x`` is a ``cx``); any other by the gate it
    controls (``ctrl @ s`` by ``s``, its controls bounded by QS205); a controlled global phase
    is the phase gate ``p`` it equals."""
    if not isinstance(op, ControlledGate):
        return op.name
    name = _CTRL_STATE.sub("", op.name)
    if name in STANDARD_GATES:
        return name
    base = op.base_gate
    if base.definition is not None and not base.definition.data:
        return "p"  # ctrl @ gphase(a): a definition with nothing but a global phase
    return allowlist_name(base)
