"""Static control flow for the distributed strategies: loops unrolled, conditionals kept.

A plan schedules every operation ahead of time, so a `for` loop becomes its body once per
index (the loop parameter bound to the index), a `box` becomes its contents, and a `switch`
becomes a chain of `if`/`else` on the same target. What stays is `if`/`else` on classical
bits or registers, which a plan carries as feed-forward: `predicated_steps` lists the
operations in order, each with the tests it runs under (a condition written as an
expression, e.g. a parity of bits, is tabulated over the bits it reads). A `while` loop
(unknown length), `break` and `continue` (a data-dependent length), and conditions on
classical variables or beyond MAX_EXPRESSION_BITS bits are refused, each with its reason.

Unrolling is bounded by the sanitizer's limits, so hostile input cannot blow the circuit
up: a loop body may run at most `max_iterations` times, nested loops multiplied (the same
count as rule QS302), and the unrolled circuit holds at most `max_operations` operations
(as QS105 counts them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ClassicalRegister, Clbit, ControlFlowOp, IfElseOp
from qiskit.circuit.classical import expr
from qiskit.circuit.controlflow import CASE_DEFAULT

from qorch.sanitizer import SanitizerPolicy

_DEFAULT_POLICY = SanitizerPolicy()


@dataclass(frozen=True)
class UnrollLimits:
    """How far unrolling may go; by default the sanitizer's default policy."""

    max_iterations: int = _DEFAULT_POLICY.max_for_loop_iterations
    max_operations: int = _DEFAULT_POLICY.max_gates


def needs_unrolling(circuit: QuantumCircuit) -> bool:
    """Whether anything but `if`/`else` is control flow, at any depth."""
    for inst in circuit.data:
        op = inst.operation
        if isinstance(op, ControlFlowOp):
            if not isinstance(op, IfElseOp):
                return True
            if any(needs_unrolling(body) for body in op.blocks):
                return True
    return False


def unroll(circuit: QuantumCircuit, limits: UnrollLimits | None = None) -> QuantumCircuit:
    """`circuit` with loops unrolled, boxes inlined and switches as `if`/`else` chains.

    Keeps the circuit's bits and registers. Raises ValueError naming what to change when the
    circuit has a construct a plan cannot schedule or unrolling exceeds `limits`.
    """
    if not needs_unrolling(circuit):
        return circuit
    state = _Unroller(limits or UnrollLimits())
    return state.block(circuit, 1)


class _Unroller:
    def __init__(self, limits: UnrollLimits) -> None:
        self.limits = limits
        self.operations = 0

    def _count(self, n: int = 1) -> None:
        self.operations += n
        if self.operations > self.limits.max_operations:
            raise ValueError(
                f"unrolling the loops gives more than {self.limits.max_operations} operations,"
                " the limit (maxGates); loop over a shorter range"
            )

    def block(self, block: QuantumCircuit, multiplicity: int) -> QuantumCircuit:
        """The block rewritten, on the block's own bits."""
        out = block.copy_empty_like()
        self.into(out, block, list(out.qubits), list(out.clbits), multiplicity)
        return out

    def into(
        self,
        out: QuantumCircuit,
        block: QuantumCircuit,
        qubits: Sequence[Any],
        clbits: Sequence[Any],
        multiplicity: int,
    ) -> None:
        """Append `block`'s instructions to `out`, its bits mapped onto `qubits`/`clbits`."""
        qmap = dict(zip(block.qubits, qubits, strict=True))
        cmap = dict(zip(block.clbits, clbits, strict=True))
        for inst in block.data:
            op = inst.operation
            q = [qmap[b] for b in inst.qubits]
            c = [cmap[b] for b in inst.clbits]
            name = op.name
            if name == "for_loop":
                indexset, parameter, body = op.params
                count = _length(indexset)
                total = count * multiplicity
                if total > self.limits.max_iterations:
                    raise ValueError(
                        f"a for-loop body would run {total} times (enclosing loops multiplied);"
                        f" the limit (maxForLoopIterations) is {self.limits.max_iterations}."
                        " Loop over a shorter range"
                    )
                for value in indexset:
                    bound = body
                    if parameter is not None:
                        bound = body.assign_parameters({parameter: value})
                    self.into(out, bound, q, c, total)
            elif name == "box":
                self.into(out, op.blocks[0], q, c, multiplicity)
            elif name == "if_else":
                condition = _mapped_condition(op.condition, cmap, out)
                bodies = [self.block(b, multiplicity) for b in op.blocks]
                self._count()
                out.append(IfElseOp(condition, *bodies), q, c)
            elif name == "switch_case":
                self._count()
                out.append(self._switch(op, inst.clbits, cmap, out, multiplicity), q, c)
            elif name == "while_loop":
                raise ValueError(
                    "a while loop has no length known before it runs, so no plan can schedule"
                    " it; write it as a for loop over a bounded range"
                )
            elif name in ("break_loop", "continue_loop"):
                raise ValueError(
                    f"{name.split('_')[0]} makes a loop's length depend on measurements; write"
                    " the loop body as a conditional instead"
                )
            else:
                self._count()
                out.append(op, q, c)

    def _switch(
        self,
        op: Any,
        clbits: Sequence[Any],
        cmap: dict[Any, Any],
        out: QuantumCircuit,
        multiplicity: int,
    ) -> IfElseOp:
        """switch(target) as `if target == v1 ... else if target == v2 ... else default`.

        The first test is on `out`'s bits; the later ones sit inside else-bodies, whose bits
        are the case blocks' (positionally the instruction's `clbits`)."""
        target = op.target
        if not isinstance(target, Clbit | ClassicalRegister):
            raise ValueError(
                "a switch on a classical expression is not supported; switch on a bit or a register"
            )
        cases: list[tuple[int, QuantumCircuit]] = []
        default: QuantumCircuit | None = None
        for values, body in op.cases_specifier():
            for value in values:
                if value is CASE_DEFAULT:
                    default = body
                else:
                    cases.append((int(value), body))
        shell = op.blocks[0]
        inner = dict(zip(clbits, shell.clbits, strict=True))
        otherwise = self.block(default, multiplicity) if default is not None else None
        for position in range(len(cases) - 1, -1, -1):
            value, body = cases[position]
            if position == 0:
                condition = _mapped_condition((target, value), cmap, out)
                return IfElseOp(condition, self.block(body, multiplicity), otherwise)
            condition = _mapped_condition((target, value), inner, shell)
            test = IfElseOp(condition, self.block(body, multiplicity), otherwise)
            self._count()
            otherwise = shell.copy_empty_like()
            otherwise.append(test, otherwise.qubits, otherwise.clbits)
        raise ValueError("a switch without cases")


def _length(indexset: Any) -> int:
    try:
        return len(indexset)
    except (TypeError, OverflowError):
        return 2**63


def _mapped_condition(condition: Any, cmap: dict[Any, Any], out: QuantumCircuit) -> Any:
    """A tuple condition on the block's bits, on the bits they map to in `out`."""
    if not isinstance(condition, tuple):
        bits = [
            b
            for var in expr.iter_vars(condition)
            for b in ([var.var] if isinstance(var.var, Clbit) else list(var.var))
        ]
        if all(cmap.get(b, b) is b for b in bits):
            return condition
        raise ValueError("a condition expression on bits that a loop body renames is not supported")
    target, value = condition
    if isinstance(target, Clbit):
        return (cmap.get(target, target), value)
    bits = [cmap.get(b, b) for b in target]
    if list(bits) == list(target):
        return condition
    for register in out.cregs:
        if list(register) == bits:
            return (register, value)
    raise ValueError("a condition on a register that the enclosing block renames is not supported")


#: Most bits a condition written as an expression may read: its truth table is tabulated.
MAX_EXPRESSION_BITS = 10


@dataclass(frozen=True)
class Test:
    """One classical test an operation waits for on the clbits `bits` (least significant
    first): that they read `value`, or, for a condition written as an `expression`, one of the
    readings in `accepts`; negated (the else-branch) when not `holds`."""

    bits: tuple[int, ...]
    value: int = 1
    holds: bool = True
    expression: Any = None
    accepts: frozenset[int] = frozenset()

    def passes(self, reading: int) -> bool:
        """Whether the test passes when `bits` read `reading`."""
        hit = reading in self.accepts if self.expression is not None else reading == self.value
        return hit == self.holds


@dataclass(frozen=True)
class Step:
    """An operation of the logical circuit with control flow flattened away: it runs when all
    tests of `predicate` pass (outermost first)."""

    operation: Any
    qubits: tuple[int, ...]
    clbits: tuple[int, ...] = ()
    predicate: tuple[Test, ...] = ()


def _test_of(condition: Any, clbits: Sequence[int], block: QuantumCircuit) -> Test:
    """The test of an `if` condition in `block`, whose bits are `clbits` in the circuit: a
    (bit or register, value) pair, or an expression over bits and registers."""

    def index(bit: Clbit) -> int:
        return clbits[block.find_bit(bit).index]

    if isinstance(condition, tuple):
        target, value = condition
        bits = [target] if isinstance(target, Clbit) else list(target)
        return Test(tuple(index(b) for b in bits), int(value))
    read: list[Clbit] = []
    for var in expr.iter_vars(condition):
        if not isinstance(var.var, Clbit | ClassicalRegister):
            raise ValueError("conditions on classical variables are not supported; test bits")
        for bit in [var.var] if isinstance(var.var, Clbit) else var.var:
            if bit not in read:
                read.append(bit)
    if len(read) > MAX_EXPRESSION_BITS:
        raise ValueError(
            f"a condition reads {len(read)} bits; at most {MAX_EXPRESSION_BITS} are supported"
        )
    accepts: set[int] = set()
    for reading in range(1 << len(read)):
        values = {bit: (reading >> k) & 1 for k, bit in enumerate(read)}
        if _evaluate(condition, values):
            accepts.add(reading)
    return Test(tuple(index(b) for b in read), expression=condition, accepts=frozenset(accepts))


_BINARY = {
    expr.Binary.Op.BIT_AND: lambda a, b: a & b,
    expr.Binary.Op.BIT_OR: lambda a, b: a | b,
    expr.Binary.Op.BIT_XOR: lambda a, b: a ^ b,
    expr.Binary.Op.LOGIC_AND: lambda a, b: int(bool(a) and bool(b)),
    expr.Binary.Op.LOGIC_OR: lambda a, b: int(bool(a) or bool(b)),
    expr.Binary.Op.EQUAL: lambda a, b: int(a == b),
    expr.Binary.Op.NOT_EQUAL: lambda a, b: int(a != b),
    expr.Binary.Op.LESS: lambda a, b: int(a < b),
    expr.Binary.Op.LESS_EQUAL: lambda a, b: int(a <= b),
    expr.Binary.Op.GREATER: lambda a, b: int(a > b),
    expr.Binary.Op.GREATER_EQUAL: lambda a, b: int(a >= b),
}


def _evaluate(node: Any, values: dict[Clbit, int]) -> int:
    """A classical expression's value for given bit values (booleans as 0/1)."""
    if isinstance(node, expr.Var):
        if isinstance(node.var, Clbit):
            return values[node.var]
        return sum(values[b] << k for k, b in enumerate(node.var))
    if isinstance(node, expr.Value):
        return int(node.value)
    if isinstance(node, expr.Cast):
        return _evaluate(node.operand, values)
    if isinstance(node, expr.Unary) and node.op == expr.Unary.Op.LOGIC_NOT:
        return int(not _evaluate(node.operand, values))
    if isinstance(node, expr.Unary) and node.op == expr.Unary.Op.BIT_NOT:
        width = getattr(node.type, "width", 1)  # Bool has no width: one bit
        return ~_evaluate(node.operand, values) & ((1 << width) - 1)
    if isinstance(node, expr.Binary) and node.op in _BINARY:
        return int(_BINARY[node.op](_evaluate(node.left, values), _evaluate(node.right, values)))
    raise ValueError(
        f"a condition uses {type(node).__name__} {getattr(node, 'op', '')}, which is not supported"
    )


def predicated_steps(logical: QuantumCircuit) -> list[Step]:
    """The circuit's operations in order, each `if`/`else` body predicated on its test.

    Predication re-reads the condition before every operation of a body, which equals one
    test up front as long as the body does not first overwrite a bit its test reads: a body
    may measure into such a bit only as its last act, and the branch that does is emitted
    after the other one.
    """
    steps: list[Step] = []

    def reads(predicate: Sequence[Test]) -> set[int]:
        return {b for test in predicate for b in test.bits}

    def written(block: QuantumCircuit, clbits: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for inst in block.data:
            c = [clbits[block.find_bit(b).index] for b in inst.clbits]
            if isinstance(inst.operation, IfElseOp):
                for body in inst.operation.blocks:
                    out |= written(body, c)
            elif inst.operation.name == "measure":
                out.update(c)
        return out

    def walk(
        block: QuantumCircuit,
        qubits: Sequence[int],
        clbits: Sequence[int],
        predicate: tuple[Test, ...],
    ) -> set[int]:
        done: set[int] = set()  # bits this block has measured into so far
        for inst in block.data:
            op = inst.operation
            q = tuple(qubits[block.find_bit(b).index] for b in inst.qubits)
            c = tuple(clbits[block.find_bit(b).index] for b in inst.clbits)
            if done & reads(predicate):
                raise ValueError(
                    "a conditional block measures into a bit its own condition reads and then"
                    " goes on; end the block with that measurement"
                )
            if isinstance(op, IfElseOp):
                test = _test_of(op.condition, clbits, block)
                branches = [(op.blocks[0], test)]
                if len(op.blocks) > 1 and op.blocks[1] is not None:
                    branches.append((op.blocks[1], dataclasses.replace(test, holds=False)))
                    first = set(test.bits) & written(op.blocks[0], c)
                    if first and set(test.bits) & written(op.blocks[1], c):
                        raise ValueError(
                            "both branches of an if/else measure into a bit their condition"
                            " reads; split it into two ifs"
                        )
                    if first:  # run the branch that keeps the condition's bits first
                        branches.reverse()
                for body, t in branches:
                    done |= walk(body, q, c, (*predicate, t))
            elif isinstance(op, ControlFlowOp):
                raise ValueError(f"{op.name} must be unrolled first")
            else:
                steps.append(Step(op, q, c, predicate if op.name != "barrier" else ()))
                if op.name == "measure":
                    done.update(c)
        return done

    walk(logical, range(logical.num_qubits), range(logical.num_clbits), ())
    return steps
