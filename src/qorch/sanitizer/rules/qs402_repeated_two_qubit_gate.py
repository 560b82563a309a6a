"""QS402 repeated-two-qubit-gate: two-qubit gates hammered on one pair back to back have no
computational use (they cancel or merge into one two-qubit unitary) but heat the pair and
probe crosstalk."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
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

    def run(self, dag: DAGCircuit) -> None:
        for block in self.property_set[BLOCKS]:
            counts = block.dag.count_ops(recurse=False)
            names = [n for n in counts if n not in _NOT_TWO_QUBIT]
            loop_body = block.owner == "for_loop"
            if not names or (not loop_body and sum(counts[n] for n in names) <= self.max_repeats):
                continue
            # Qiskit's collect_runs: consecutive nodes each of whose only successor is the next,
            # i.e. gates back to back on the same wires.
            for run in block.dag.collect_runs(names):
                if len(run[0].qargs) != 2:
                    continue
                repeats = len(run)
                if loop_body and repeats == block.dag.size():
                    repeats *= block.multiplicity  # the loop body is nothing but the run
                if repeats > self.max_repeats:
                    gates = ", ".join(sorted({node.name for node in run}))
                    self.report(
                        f"{repeats} two-qubit gates ({gates}) run back to back on one qubit "
                        f"pair; the limit (maxRepeatedTwoQubitGate) is {self.max_repeats}. "
                        "Back-to-back gates on a pair cancel or merge into one; long runs probe "
                        "crosstalk and heating and are reserved for trusted tenants.",
                        instruction=block.index_of(run[0]),
                    )
                    return
