"""QS402 repeated-two-qubit-gate: one two-qubit gate hammered on one pair back to back has
no computational use (it cancels or merges) but heats the pair and probes crosstalk."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import REPEATED_TWO_QUBIT_GATE
from ..gates import CONTROL_FLOW, DEFAULT_DIRECTIVES, ONE_QUBIT_GATES
from .base import SanitizerRule

_NOT_TWO_QUBIT = ONE_QUBIT_GATES | CONTROL_FLOW | DEFAULT_DIRECTIVES


class RepeatedTwoQubitGate(SanitizerRule):
    """Refuse runs of more than ``max_repeats`` identical two-qubit gates on one pair."""

    rule_id = REPEATED_TWO_QUBIT_GATE

    def __init__(self, *, max_repeats: int) -> None:
        super().__init__()
        self.max_repeats = max_repeats
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        for block in self.property_set[BLOCKS]:
            names = [n for n in block.dag.count_ops(recurse=False) if n not in _NOT_TWO_QUBIT]
            for name in names:
                # Qiskit's collect_runs: consecutive nodes where each one's only successor is
                # the next, i.e. the same gate back to back on the same wires.
                for run in block.dag.collect_runs([name]):
                    if len(run[0].qargs) != 2:
                        continue
                    repeats = len(run)
                    if block.owner == "for_loop" and repeats == block.dag.size():
                        repeats *= block.multiplicity  # the loop body is nothing but the run
                    if repeats > self.max_repeats:
                        self.report(
                            f"{name} is applied {repeats} times back to back on one qubit "
                            f"pair; the limit (maxRepeatedTwoQubitGate) is {self.max_repeats}. "
                            "Repeated identical gates cancel or merge; such sequences probe "
                            "crosstalk and heating and are reserved for trusted tenants.",
                            instruction=block.index_of(run[0]),
                        )
                        return
