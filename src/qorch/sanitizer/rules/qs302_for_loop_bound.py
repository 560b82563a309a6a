"""QS302 for-loop-bound."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import FOR_LOOP_BOUND
from .base import SanitizerRule


class ForLoopBound(SanitizerRule):
    """A for-loop body may run at most ``max_iterations`` times, nested loops multiplied."""

    rule_id = FOR_LOOP_BOUND

    def __init__(self, *, max_iterations: int) -> None:
        super().__init__()
        self.max_iterations = max_iterations
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        for block in self.property_set[BLOCKS]:
            if block.owner == "for_loop" and block.multiplicity > self.max_iterations:
                self.report(
                    f"a for-loop body runs {block.multiplicity} times (enclosing loops "
                    f"multiplied); the limit (maxForLoopIterations) is {self.max_iterations}. "
                    "Loop over a shorter range.",
                    instruction=block.top_index,
                )
                return
