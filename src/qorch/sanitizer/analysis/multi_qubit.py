"""Count gates acting on two or more qubits, custom gates by their expansion."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit
from qiskit.transpiler.basepasses import AnalysisPass

from ..gates import NOT_COUNTED
from .blocks import BLOCKS, ControlFlowBlocks

#: property_set key written by :class:`CountMultiQubitGates`: ``int``.
MULTI_QUBIT_GATES = "sanitizer_multi_qubit_gates"


class CountMultiQubitGates(AnalysisPass):
    """Multi-qubit gates in every block times the block's multiplicity."""

    def __init__(self, *, expansions: Mapping[str, int] | None = None) -> None:
        """
        Args:
            expansions: custom gate name -> multi-qubit gates one call expands to.
        """
        super().__init__()
        self.expansions = dict(expansions or {})
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        total = 0
        for block in self.property_set[BLOCKS]:
            count = 0
            for node in (*block.dag.two_qubit_ops(), *block.dag.multi_qubit_ops()):
                name = node.name
                if name not in NOT_COUNTED:
                    count += self.expansions.get(name, 1)
            total += count * block.multiplicity
        self.property_set[MULTI_QUBIT_GATES] = total
