"""QS303 conditional."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import CONDITIONAL
from .base import SanitizerRule


class Conditional(SanitizerRule):
    """If/else and switch (feed-forward on measurement results) are allowed unless the policy
    turns them off, e.g. for targets without real-time classical control."""

    rule_id = CONDITIONAL

    def __init__(self, *, allowed: bool) -> None:
        super().__init__()
        self.allowed = allowed
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        if self.allowed:
            return
        for block in self.property_set[BLOCKS]:
            if block.owner in ("if_else", "switch_case"):
                self.report(
                    "the circuit branches on measurement results, which this namespace's "
                    "policy (allowConditionals) does not allow. Remove the if/switch "
                    "statements or post-process the results instead.",
                    instruction=block.top_index,
                )
                return
