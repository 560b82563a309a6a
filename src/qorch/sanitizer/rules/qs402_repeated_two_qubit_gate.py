"""QS402 repeated-two-qubit-gate: two-qubit gates hammered on one pair back to back have no
computational use (they cancel or merge into one two-qubit unitary) but heat the pair and
probe crosstalk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qiskit.dagcircuit import DAGCircuit, DAGOpNode

from ..analysis.blocks import BLOCKS, Block, ControlFlowBlocks
from ..catalog import REPEATED_TWO_QUBIT_GATE
from ..gates import CONTROL_FLOW, DEFAULT_DIRECTIVES, ONE_QUBIT_GATES
from .base import SanitizerRule

_NOT_TWO_QUBIT = ONE_QUBIT_GATES | CONTROL_FLOW | DEFAULT_DIRECTIVES


class RepeatedTwoQubitGate(SanitizerRule):
    """Refuse runs of more than ``max_repeats`` two-qubit gates back to back on one pair."""

    rule_id = REPEATED_TWO_QUBIT_GATE

    def __init__(self, *, max_repeats: int) -> None:
        super().__init__()
        self.max_repeats = max_repeats
        self.requires = [ControlFlowBlocks()]

    def _runs(self, block: Block) -> Iterable[Sequence[DAGOpNode]]:
        """Qiskit's collect_runs over the block's candidate gates: consecutive nodes each of
        whose only successor is the next, i.e. gates back to back on the same wires. None at
        all when the block has too few candidates for a run beyond the limit."""
        counts = block.dag.count_ops(recurse=False)
        names = [n for n in counts if n not in _NOT_TWO_QUBIT]
        if not names:
            return ()
        if block.owner != "for_loop" and sum(counts[n] for n in names) <= self.max_repeats:
            return ()
        return block.dag.collect_runs(names)

    def run(self, dag: DAGCircuit) -> None:
        for block in self.property_set[BLOCKS]:
            # A run that is a loop's whole body repeats once per iteration.
            # (op nodes, not size(): a body holding control flow has no unambiguous size)
            whole_body = block.dag.num_ops() if block.owner == "for_loop" else None
            for run in self._runs(block):
                repeats = len(run)
                if repeats == whole_body:
                    repeats *= block.multiplicity
                # Most runs are a gate or two: decided by their length, before any of their
                # nodes' qubits become Python objects.
                if repeats <= self.max_repeats or len(run[0].qargs) != 2:
                    continue
                gates = ", ".join(sorted({node.name for node in run}))
                self.report(
                    f"{repeats} two-qubit gates ({gates}) run back to back on one qubit "
                    f"pair; the limit (maxRepeatedTwoQubitGate) is {self.max_repeats}. "
                    "Back-to-back gates on a pair cancel or merge into one; long runs probe "
                    "crosstalk and heating and are reserved for trusted tenants.",
                    instruction=block.index_of(run[0]),
                )
                return
