"""QS102 clbit-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..catalog import CLBIT_LIMIT
from .base import SanitizerRule


class ClbitLimit(SanitizerRule):
    """The circuit may use at most ``max_clbits`` classical bits."""

    rule_id = CLBIT_LIMIT

    def __init__(self, *, max_clbits: int) -> None:
        super().__init__()
        self.max_clbits = max_clbits

    def run(self, dag: DAGCircuit) -> None:
        clbits = dag.num_clbits()
        if clbits > self.max_clbits:
            self.report(
                f"the circuit uses {clbits} classical bits; the limit (maxClbits) is "
                f"{self.max_clbits}. Measure into fewer bits."
            )
