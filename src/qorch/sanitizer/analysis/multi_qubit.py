"""Count gates acting on two or more qubits, custom gates by their expansion."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit

from ..gates import DEFAULT_DIRECTIVES, MULTI_QUBIT_GATES, NOT_COUNTED, ONE_QUBIT_GATES
from ..passbase import KeywordAnalysisPass
from .blocks import BLOCKS, ControlFlowBlocks

#: property_set key written by :class:`CountMultiQubitGates`: ``int``.
MULTI_QUBIT_GATE_COUNT = "sanitizer_multi_qubit_gates"

_SINGLE = ONE_QUBIT_GATES | DEFAULT_DIRECTIVES | NOT_COUNTED


class CountMultiQubitGates(KeywordAnalysisPass):
    """Multi-qubit gates in every block times the block's multiplicity.

    Counted by name from ``count_ops`` where the name fixes the arity, so the nodes of a
    large circuit are never visited one by one.
    """

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
            for name, n in block.dag.count_ops(recurse=False).items():
                if name in self.expansions:
                    count += n * self.expansions[name]
                elif name in MULTI_QUBIT_GATES:
                    count += n
                elif name not in _SINGLE:
                    count += sum(len(node.qargs) >= 2 for node in block.dag.named_nodes(name))
            total += count * block.multiplicity
        self.property_set[MULTI_QUBIT_GATE_COUNT] = total
