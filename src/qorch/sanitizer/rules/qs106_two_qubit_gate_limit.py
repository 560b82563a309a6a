"""QS106 two-qubit-gate-limit."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit

from ..analysis.multi_qubit import MULTI_QUBIT_GATE_COUNT, CountMultiQubitGates
from ..catalog import TWO_QUBIT_GATE_LIMIT
from .base import SanitizerRule


class TwoQubitGateLimit(SanitizerRule):
    """Gates on two or more qubits (expanded, unrolled) may be at most ``max_two_qubit_gates``."""

    rule_id = TWO_QUBIT_GATE_LIMIT

    def __init__(
        self, *, max_two_qubit_gates: int, expansions: Mapping[str, int] | None = None
    ) -> None:
        """
        Args:
            max_two_qubit_gates: the limit.
            expansions: custom gate name -> multi-qubit gates one call expands to.
        """
        super().__init__()
        self.max_two_qubit_gates = max_two_qubit_gates
        self.requires = [CountMultiQubitGates(expansions=expansions)]

    def run(self, dag: DAGCircuit) -> None:
        count = self.property_set[MULTI_QUBIT_GATE_COUNT]
        if count > self.max_two_qubit_gates:
            self.report(
                f"the circuit has {count} gates on two or more qubits; the limit "
                f"(maxTwoQubitGates) is {self.max_two_qubit_gates}. Reduce entangling gates."
            )
