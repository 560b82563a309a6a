"""QS204 parameter-bounds: every gate parameter finite, bound and within +-maxAbsAngle.

Parameters that depend on a for-loop variable are evaluated over the loop's values. Inside
custom gates, the body's angle expressions are evaluated with interval arithmetic over the
range of values the call sites pass; only when that cannot show them safe are the calls'
definitions built and checked one by one (bounded by QS202/QS007 before parsing).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from numbers import Complex
from typing import Any

from qiskit.circuit import Instruction, Parameter, ParameterExpression
from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, Block, ControlFlowBlocks
from ..catalog import PARAMETER_BOUNDS
from ..gates import CONTROL_FLOW, PARAMETERLESS
from ..source.definitions import GateAngles
from ..source.intervals import Interval, Unsupported, evaluate, hull
from .base import SanitizerRule

#: Loop values tried per parameter expression before falling back to the loops' end points.
MAX_EVALUATIONS = 4096
_SKIPPED = PARAMETERLESS | CONTROL_FLOW | {"delay"}
Loops = tuple[tuple[Parameter, Sequence[int]], ...]


def _magnitude(value: Any) -> float | None:
    """|value| for numbers (NaN for NaN), None for anything that is not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, Complex):
        try:
            return abs(complex(value))
        except OverflowError:
            return math.inf
    return None


def _loop_samples(values: Sequence[int]) -> Sequence[int]:
    try:
        if len(values) <= 2:
            return values
        return (values[0], values[-1])
    except (TypeError, OverflowError):
        return ()


class ParameterBounds(SanitizerRule):
    """Refuse unbound, NaN, infinite or out-of-range gate parameters."""

    rule_id = PARAMETER_BOUNDS

    def __init__(self, *, max_abs_angle: float, custom: tuple[GateAngles, ...] = ()) -> None:
        """
        Args:
            max_abs_angle: the largest allowed absolute parameter value.
            custom: the angle expressions of the source's custom gates, in definition order.
        """
        super().__init__()
        self.max_abs_angle = max_abs_angle
        self.custom = custom
        self.custom_names = frozenset(gate.name for gate in custom)
        self.requires = [ControlFlowBlocks()]

    # -- one value ---------------------------------------------------------------------------

    def _problem(self, value: Any, loops: Loops) -> str | None:
        if isinstance(value, ParameterExpression):
            free = value.parameters
            if not free:
                return self._problem(value.numeric(), ())
            known = {p: values for p, values in loops if p in free}
            unbound = free - set(known)
            if unbound:
                names = ", ".join(sorted(p.name for p in unbound))
                return f"depends on the unbound parameter(s) {names}; bind them before submitting"
            ranges = list(known.values())
            total = math.prod(len(r) for r in ranges) if ranges else 1
            if total > MAX_EVALUATIONS:
                ranges = [_loop_samples(r) for r in ranges]
            params = list(known)
            for combination in itertools.product(*ranges):
                bound = value.bind(dict(zip(params, combination, strict=True)))
                problem = self._problem(bound, ())
                if problem:
                    return f"{problem} (for loop values {combination})"
            return None
        magnitude = _magnitude(value)
        if magnitude is None:
            return None
        if math.isnan(magnitude):
            return "is NaN"
        if math.isinf(magnitude):
            return "is infinite"
        if magnitude > self.max_abs_angle:
            return f"is {value}, beyond the limit (maxAbsAngle) of +-{self.max_abs_angle}"
        return None

    # -- custom gates ------------------------------------------------------------------------

    def _within(self, interval: Interval) -> bool:
        low, high = interval
        return -self.max_abs_angle <= low and high <= self.max_abs_angle

    def _custom_gates_safe(self) -> bool:
        """Whether interval arithmetic shows every angle inside every custom gate in range."""
        boxes: dict[str, list[Interval | None]] = {}
        for block in self.property_set[BLOCKS]:
            for name in self.custom_names & set(block.dag.count_ops(recurse=False)):
                for node in block.dag.named_nodes(name):
                    box = boxes.setdefault(name, [None] * len(node.params))
                    for k, value in enumerate(node.params):
                        if type(value) not in (float, int) or k >= len(box):
                            return False  # symbolic (loop) or odd arguments: check each call
                        box[k] = hull(box[k], (float(value), float(value)))
        for gate in reversed(self.custom):  # callers come after their callees
            ranges = boxes.get(gate.name)
            if ranges is None:
                continue
            if len(ranges) != len(gate.parameters) or any(b is None for b in ranges):
                return False
            env = {p: b for p, b in zip(gate.parameters, ranges, strict=True) if b is not None}
            for callee, arguments in gate.calls:
                try:
                    intervals = [evaluate(argument, env) for argument in arguments]
                except (Unsupported, OverflowError, ZeroDivisionError):
                    return False
                if callee in self.custom_names:
                    inner = boxes.setdefault(callee, [None] * len(intervals))
                    if len(inner) != len(intervals):
                        return False
                    for k, interval in enumerate(intervals):
                        inner[k] = hull(inner[k], interval)
                elif not all(self._within(interval) for interval in intervals):
                    return False
        return True

    def _definition_problem(self, op: Instruction, memo: dict[Any, str | None]) -> str | None:
        """First problem inside a custom gate's definition, custom gates within included."""
        stack = [op]
        while stack:
            current = stack.pop()
            key = (current.name, tuple(repr(p) for p in current.params))
            if key in memo:
                if memo[key]:
                    return memo[key]
                continue
            memo[key] = None
            definition = current.definition
            if definition is None:
                continue
            for inner in definition.data:
                inner_op = inner.operation
                if inner_op.name in _SKIPPED:
                    continue
                for value in inner_op.params:
                    problem = self._problem(value, ())
                    if problem:
                        memo[key] = f"{inner_op.name} inside it {problem}"
                        return memo[key]
                if inner_op.name in self.custom_names:
                    stack.append(inner_op)
        return None

    # -- the pass ----------------------------------------------------------------------------

    def _check_block(
        self, block: Block, memo: dict[Any, str | None], expand: bool
    ) -> tuple[str, int] | None:
        bound = self.max_abs_angle
        names = [n for n in block.dag.count_ops(recurse=False) if n not in _SKIPPED]
        if not names:
            return None
        for node in block.dag.named_nodes(*names):  # one call: nodes are costly to make
            for value in node.params:
                # Fast path for the common case; NaN fails the comparison and falls through.
                if type(value) is float and -bound <= value <= bound:
                    continue
                problem = self._problem(value, block.loop_values)
                if problem:
                    return f"a parameter of {node.name} {problem}", block.index_of(node)
            if expand and node.name in self.custom_names:
                problem = self._definition_problem(node.op, memo)
                if problem:
                    return f"custom gate {node.name}: {problem}", block.index_of(node)
        return None

    def run(self, dag: DAGCircuit) -> None:
        phase = self._problem(dag.global_phase, ())
        if phase:
            self.report(f"the global phase {phase}.")
        memo: dict[Any, str | None] = {}
        for expand in (False, True):
            for block in self.property_set[BLOCKS]:
                found = self._check_block(block, memo, expand)
                if found:
                    message, index = found
                    self.report(
                        f"{message}. Angles must be finite numbers within +-{self.max_abs_angle}.",
                        instruction=index,
                    )
                    return
            if not self.custom or self._custom_gates_safe():
                return
