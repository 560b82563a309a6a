"""Dynamic circuits for the tests (mid-circuit measurement, reset, feed-forward, loops), and
their exact distributions by branch enumeration, independent of the code under test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit
from qiskit.circuit.classical import expr
from qiskit.circuit.controlflow import CASE_DEFAULT
from qiskit.quantum_info import Statevector

_Branch = tuple[float, Statevector, tuple[int, ...]]


def teleportation(theta: float = 0.8, phi: float = 0.3) -> QuantumCircuit:
    """Teleport ry(theta) rz(phi)|0> from q0 to q2 with two feed-forward corrections, then
    measure q2 after a basis change: the statistics of the original state."""
    q, m, out = QuantumRegister(3, "q"), ClassicalRegister(2, "m"), ClassicalRegister(1, "out")
    qc = QuantumCircuit(q, m, out)
    qc.ry(theta, 0)
    qc.rz(phi, 0)
    qc.h(1)
    qc.cx(1, 2)
    qc.cx(0, 1)
    qc.h(0)
    qc.measure(0, m[0])
    qc.measure(1, m[1])
    with qc.if_test((m[1], 1)):
        qc.x(2)
    with qc.if_test((m[0], 1)):
        qc.z(2)
    qc.h(2)
    qc.measure(2, out[0])
    return qc


def repeat_until_success(attempts: int = 3) -> QuantumCircuit:
    """Prepare a biased qubit and retry while it reads 1, up to `attempts` times in a for
    loop; the other qubits record each try through an entangling gate across the circuit."""
    flag, out = ClassicalRegister(1, "flag"), ClassicalRegister(3, "out")
    qc = QuantumCircuit(QuantumRegister(4, "q"), flag, out)
    qc.ry(2.2, 0)
    qc.measure(0, flag[0])
    with qc.for_loop(range(attempts)), qc.if_test((flag[0], 1)):
        qc.reset(0)
        qc.ry(2.2, 0)
        qc.cx(0, 3)
        qc.measure(0, flag[0])
    qc.h(1)
    qc.cx(1, 2)
    qc.measure([1, 2, 3], out)
    return qc


def mid_circuit_reset() -> QuantumCircuit:
    """Measure, reset and reuse a qubit entangled with the others."""
    qc = QuantumCircuit(3, 4)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.9, 2)
    qc.cx(1, 2)
    qc.measure(1, 0)
    qc.reset(1)
    qc.ry(0.4, 1)
    qc.cx(0, 1)
    qc.measure([0, 1, 2], [1, 2, 3])
    return qc


def conditioned_x_across(width: int = 4, *, switch: bool = True) -> QuantumCircuit:
    """Measurement on the first qubit, X on the last conditioned on it, and a switch over a
    two-bit register (an if on it without `switch`, for OpenQASM 3 importers that lack it):
    every conditional spans the circuit's two halves."""
    m, out = ClassicalRegister(2, "m"), ClassicalRegister(width, "out")
    qc = QuantumCircuit(QuantumRegister(width, "q"), m, out)
    qc.h(0)
    qc.ry(1.1, 1)
    qc.cx(0, width - 1)
    qc.measure(0, m[0])
    qc.measure(1, m[1])
    with qc.if_test((m[0], 1)) as otherwise:
        qc.x(width - 1)
        qc.cx(width - 1, width - 2)
    with otherwise:
        qc.h(width - 2)
    if switch:
        with qc.switch(m) as case:
            with case(0):
                qc.rx(0.5, width - 1)
            with case(1, 2):
                qc.cz(0, width - 1)
                qc.h(0)
            with case(case.DEFAULT):
                qc.ry(0.7, width - 2)
    else:
        with qc.if_test((m, 2)):
            qc.cz(0, width - 1)
            qc.h(0)
    qc.measure(range(width), out)
    return qc


def branch_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact final clbit distribution (clbit 0 rightmost, no register spaces) by following
    every measurement outcome as a branch with its probability."""
    n = circuit.num_qubits
    start: list[_Branch] = [(1.0, Statevector.from_int(0, 2**n), (0,) * circuit.num_clbits)]
    ends = _run(circuit, list(range(n)), list(range(circuit.num_clbits)), start)
    out: dict[str, float] = {}
    for p, _, bits in ends:
        key = "".join(str(b) for b in reversed(bits))
        out[key] = out.get(key, 0.0) + p
    return {k: v for k, v in out.items() if v > 1e-12}


def _project(state: Statevector, qubit: int, outcome: int) -> tuple[float, Statevector]:
    data = state.data.copy()
    mask = ((np.arange(len(data)) >> qubit) & 1) == outcome
    data[~mask] = 0
    p = float(np.vdot(data, data).real)
    return p, Statevector(data / math.sqrt(p)) if p > 1e-14 else state


def _value(target: Any, bits: Sequence[int], cmap: dict[Any, int]) -> int:
    if isinstance(target, Clbit):
        return bits[cmap[target]]
    return sum(bits[cmap[b]] << k for k, b in enumerate(target))


def _evaluate(node: Any, bits: Sequence[int], cmap: dict[Any, int]) -> int:
    """A condition's value on the branch's bits: a (target, value) pair or an expression."""
    if isinstance(node, tuple):
        return int(_value(node[0], bits, cmap) == int(node[1]))
    if isinstance(node, expr.Var):
        return _value(node.var, bits, cmap)
    if isinstance(node, expr.Value):
        return int(node.value)
    if isinstance(node, expr.Cast):
        return _evaluate(node.operand, bits, cmap)
    if isinstance(node, expr.Unary):
        return int(not _evaluate(node.operand, bits, cmap))
    left, right = _evaluate(node.left, bits, cmap), _evaluate(node.right, bits, cmap)
    return int(
        {
            expr.Binary.Op.EQUAL: left == right,
            expr.Binary.Op.NOT_EQUAL: left != right,
            expr.Binary.Op.LOGIC_AND: bool(left) and bool(right),
            expr.Binary.Op.LOGIC_OR: bool(left) or bool(right),
            expr.Binary.Op.BIT_XOR: left ^ right,
            expr.Binary.Op.BIT_AND: left & right,
            expr.Binary.Op.BIT_OR: left | right,
        }[node.op]
    )


def _run(
    block: QuantumCircuit, qubits: list[int], clbits: list[int], branches: list[_Branch]
) -> list[_Branch]:
    qmap = dict(zip(block.qubits, qubits, strict=True))
    cmap = dict(zip(block.clbits, clbits, strict=True))
    for inst in block.data:
        op = inst.operation
        q = [qmap[b] for b in inst.qubits]
        c = [cmap[b] for b in inst.clbits]
        if op.name == "barrier":
            continue
        if op.name in ("measure", "reset"):
            split: list[_Branch] = []
            for p, state, bits in branches:
                for outcome in (0, 1):
                    weight, after = _project(state, q[0], outcome)
                    if weight < 1e-14:
                        continue
                    new = list(bits)
                    if op.name == "measure":
                        new[c[0]] = outcome
                    elif outcome:
                        after = after.evolve(np.array([[0, 1], [1, 0]]), [q[0]])
                    split.append((p * weight, after, tuple(new)))
            branches = split
        elif op.name == "if_else":
            taken = [b for b in branches if _evaluate(op.condition, b[2], cmap)]
            other = [b for b in branches if not _evaluate(op.condition, b[2], cmap)]
            branches = _run(op.blocks[0], q, c, taken)
            if len(op.blocks) > 1 and op.blocks[1] is not None:
                other = _run(op.blocks[1], q, c, other)
            branches += other
        elif op.name == "switch_case":
            out: list[_Branch] = []
            cases = list(op.cases_specifier())
            for branch in branches:
                value = _value(op.target, branch[2], cmap)
                body = next(
                    (b for vs, b in cases if value in vs),
                    next((b for vs, b in cases if CASE_DEFAULT in vs), None),
                )
                out += _run(body, q, c, [branch]) if body is not None else [branch]
            branches = out
        elif op.name == "for_loop":
            indexset, parameter, body = op.params
            for value in indexset:
                bound = body if parameter is None else body.assign_parameters({parameter: value})
                branches = _run(bound, q, c, branches)
        else:
            branches = [(p, state.evolve(op, q), bits) for p, state, bits in branches]
    return branches


def l1_bound(outcomes: int, shots: int, failure: float = 1e-4) -> float:
    """An L1 distance that `shots` samples of a distribution over `outcomes` outcomes exceed
    with probability below `failure`: P(|p_hat - p|_1 >= e) <= (2^K - 2) exp(-N e^2 / 2)
    (Weissman et al., HP Labs HPL-2003-97)."""
    return math.sqrt(2 * (outcomes * math.log(2) + math.log(1 / failure)) / shots)


def l1_distance(counts: dict[str, int], exact: dict[str, float]) -> float:
    """L1 distance between the empirical distribution of `counts` and `exact` (register
    spaces ignored)."""
    shots = sum(counts.values())
    flat: dict[str, float] = {}
    for key, n in counts.items():
        k = key.replace(" ", "")
        flat[k] = flat.get(k, 0.0) + n / shots
    return sum(abs(flat.get(k, 0.0) - exact.get(k, 0.0)) for k in {*flat, *exact})
