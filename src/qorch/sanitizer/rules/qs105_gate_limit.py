"""QS105 gate-limit, on Qiskit's ``Size`` analysis plus the expansion of custom gates."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit
from qiskit.transpiler.passes import Size

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import GATE_LIMIT
from .base import SanitizerRule

#: property_set key written by :class:`GateLimit`: operations with custom gates expanded.
EXPANDED_SIZE = "sanitizer_expanded_size"


class GateLimit(SanitizerRule):
    """Operations (for loops unrolled, custom gates expanded) may be at most ``max_gates``."""

    rule_id = GATE_LIMIT

    def __init__(self, *, max_gates: int, expansions: Mapping[str, int] | None = None) -> None:
        """
        Args:
            max_gates: the limit.
            expansions: custom gate name -> operations one call expands to.
        """
        super().__init__()
        self.max_gates = max_gates
        self.expansions = dict(expansions or {})
        self.requires = [Size(recurse=True), ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        size = self.property_set["size"]
        if self.expansions:
            for block in self.property_set[BLOCKS]:
                counts = block.dag.count_ops(recurse=False)
                for name, expansion in self.expansions.items():
                    size += counts.get(name, 0) * (expansion - 1) * block.multiplicity
        self.property_set[EXPANDED_SIZE] = size
        if size > self.max_gates:
            self.report(
                f"the circuit has {size} operations (for loops unrolled, custom gates "
                f"expanded); the limit (maxGates) is {self.max_gates}. Shorten it."
            )
