"""QS108 mid-circuit-reset-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.measurements import MID_CIRCUIT, FindMidCircuitOperations
from ..catalog import MID_CIRCUIT_RESET_LIMIT
from .base import SanitizerRule


class MidCircuitResetLimit(SanitizerRule):
    """Resets after a qubit's first operation may be at most ``max_resets``."""

    rule_id = MID_CIRCUIT_RESET_LIMIT

    def __init__(self, *, max_resets: int) -> None:
        super().__init__()
        self.max_resets = max_resets
        self.requires = [FindMidCircuitOperations()]

    def run(self, dag: DAGCircuit) -> None:
        found = self.property_set[MID_CIRCUIT]
        if found.mid_circuit_resets > self.max_resets:
            locations = found.reset_locations
            self.report(
                f"the circuit resets qubits {found.mid_circuit_resets} times after using them "
                f"(loops unrolled); the limit (maxMidCircuitResets) is {self.max_resets}. "
                "Use fresh qubits or fewer resets.",
                instruction=locations[min(self.max_resets, len(locations) - 1)],
            )
