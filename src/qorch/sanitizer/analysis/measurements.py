"""Find measurements and resets in the middle of a circuit.

A measurement is mid-circuit when anything but a barrier follows it on its qubit or reads
its bit; a reset is mid-circuit when anything but a barrier precedes it on its qubit. Only
measure and reset nodes are visited, so the cost is independent of the circuit's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qiskit.dagcircuit import DAGCircuit, DAGOpNode

from ..passbase import KeywordAnalysisPass
from .blocks import BLOCKS, Block, ControlFlowBlocks

#: property_set key written by :class:`FindMidCircuitOperations`: ``MidCircuitOperations``.
MID_CIRCUIT = "sanitizer_mid_circuit"


@dataclass
class MidCircuitOperations:
    """Measurements (all, and mid-circuit) and mid-circuit resets, for loops unrolled."""

    measurements: int = 0
    mid_circuit_measurements: int = 0
    mid_circuit_resets: int = 0
    #: Top-level instruction index of each mid-circuit measurement / reset, in order found.
    measurement_locations: list[int] = field(default_factory=list)
    reset_locations: list[int] = field(default_factory=list)


def _followed(dag: DAGCircuit, node: DAGOpNode) -> bool:
    frontier = [node]
    while frontier:
        # Operations only: a final measurement's successors are output nodes, which need not
        # become Python objects to be passed over.
        for succ in dag.op_successors(frontier.pop()):
            if succ.name != "barrier":
                return True
            frontier.append(succ)
    return False


def _preceded(dag: DAGCircuit, node: DAGOpNode) -> bool:
    frontier = [node]
    while frontier:
        for pred in dag.quantum_predecessors(frontier.pop()):
            if isinstance(pred, DAGOpNode):
                if pred.name != "barrier":
                    return True
                frontier.append(pred)
    return False


class FindMidCircuitOperations(KeywordAnalysisPass):
    """Count measurements and find mid-circuit measurements and resets."""

    def __init__(self) -> None:
        super().__init__()
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        found = MidCircuitOperations()
        block: Block
        for block in self.property_set[BLOCKS]:
            inner = block.top_index is not None  # inside control flow: never the final act
            for node in block.dag.named_nodes("measure"):
                found.measurements += block.multiplicity
                if inner or _followed(block.dag, node):
                    found.mid_circuit_measurements += block.multiplicity
                    found.measurement_locations.append(block.index_of(node))
            for node in block.dag.named_nodes("reset"):
                if inner or _preceded(block.dag, node):
                    found.mid_circuit_resets += block.multiplicity
                    found.reset_locations.append(block.index_of(node))
        self.property_set[MID_CIRCUIT] = found
