"""Every block of a circuit, control-flow bodies included, with how often each may run.

Rules that count (gates, measurements, delays) look at each block and multiply by its
multiplicity: a for-loop body runs once per index, nested loops multiply, both branches of
an if count (the larger one may run), a while-loop body counts once (its length is unknown,
so while loops have a rule of their own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qiskit.circuit import Parameter
from qiskit.converters import circuit_to_dag
from qiskit.dagcircuit import DAGCircuit, DAGOpNode

from ..passbase import KeywordAnalysisPass

#: property_set key written by :class:`ControlFlowBlocks`: ``list[Block]``, top level first.
BLOCKS = "sanitizer_blocks"


@dataclass
class Block:
    """A circuit block: the top level, or the body of a control-flow operation."""

    dag: DAGCircuit
    #: Upper bound on how many times the block runs.
    multiplicity: int
    #: Index of the top-level instruction that contains the block; None for the top level.
    top_index: int | None
    #: Name of the operation owning the block (``for_loop``, ``if_else``...); None at top level.
    owner: str | None = None
    #: Loop variables of the enclosing for loops and the values they take.
    loop_values: tuple[tuple[Parameter, Sequence[int]], ...] = ()
    _index: dict[int, int] | None = field(default=None, repr=False)

    def index_of(self, node: DAGOpNode) -> int:
        """Top-level instruction index of a node of this block."""
        if self.top_index is not None:
            return self.top_index
        if self._index is None:
            # Nodes of a DAG built from a circuit come out in the circuit's instruction order.
            self._index = {n._node_id: i for i, n in enumerate(self.dag.op_nodes())}
        return self._index[node._node_id]


def _iterations(indexset: Any) -> int:
    try:
        return len(indexset)
    except (TypeError, OverflowError):
        return 2**63  # a range too long for len() is simply very long


class ControlFlowBlocks(KeywordAnalysisPass):
    """Collect the top level and every nested control-flow block into ``property_set[BLOCKS]``."""

    def run(self, dag: DAGCircuit) -> None:
        top = Block(dag=dag, multiplicity=1, top_index=None)
        blocks = [top]
        pending = [top]
        while pending:  # iterative, so nesting depth costs no Python stack
            parent = pending.pop()
            for node in parent.dag.control_flow_op_nodes():
                op = node.op
                multiplicity = parent.multiplicity
                loops = parent.loop_values
                if op.name == "for_loop":
                    indexset, variable, _ = op.params
                    multiplicity *= _iterations(indexset)
                    if variable is not None:
                        loops = (*loops, (variable, indexset))
                index = parent.index_of(node)
                for body in op.blocks:
                    child = Block(
                        dag=circuit_to_dag(body, copy_operations=False),
                        multiplicity=multiplicity,
                        top_index=index,
                        owner=op.name,
                        loop_values=loops,
                    )
                    blocks.append(child)
                    pending.append(child)
        self.property_set[BLOCKS] = blocks
