"""QS101 qubit-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..catalog import QUBIT_LIMIT
from .base import SanitizerRule


class QubitLimit(SanitizerRule):
    """The circuit may use at most ``max_qubits`` qubits."""

    rule_id = QUBIT_LIMIT

    def __init__(self, *, max_qubits: int) -> None:
        super().__init__()
        self.max_qubits = max_qubits

    def run(self, dag: DAGCircuit) -> None:
        qubits = dag.num_qubits()
        if qubits > self.max_qubits:
            self.report(
                f"the circuit uses {qubits} qubits; the limit (maxQubits) is {self.max_qubits}. "
                "Use fewer qubits, or ask for a namespace with a higher limit."
            )
