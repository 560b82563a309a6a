"""QS301 while-loop."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import WHILE_LOOP
from .base import SanitizerRule


class WhileLoop(SanitizerRule):
    """While loops run for as long as their condition holds, which nothing bounds: refused
    unless the policy allows them."""

    rule_id = WHILE_LOOP

    def __init__(self, *, allowed: bool) -> None:
        super().__init__()
        self.allowed = allowed
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        if self.allowed:
            return
        for block in self.property_set[BLOCKS]:
            if block.owner == "while_loop":
                self.report(
                    "the circuit contains a while loop, whose number of iterations nothing "
                    "bounds. Use a for loop over a fixed range instead.",
                    instruction=block.top_index,
                )
                return
