"""QS107 mid-circuit-measurement-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.measurements import MID_CIRCUIT, FindMidCircuitOperations
from ..catalog import MID_CIRCUIT_MEASUREMENT_LIMIT
from .base import SanitizerRule


class MidCircuitMeasurementLimit(SanitizerRule):
    """Measurements followed by further operations may be at most ``max_measurements``."""

    rule_id = MID_CIRCUIT_MEASUREMENT_LIMIT

    def __init__(self, *, max_measurements: int) -> None:
        super().__init__()
        self.max_measurements = max_measurements
        self.requires = [FindMidCircuitOperations()]

    def run(self, dag: DAGCircuit) -> None:
        found = self.property_set[MID_CIRCUIT]
        if found.mid_circuit_measurements > self.max_measurements:
            locations = found.measurement_locations
            self.report(
                f"the circuit makes {found.mid_circuit_measurements} mid-circuit measurements "
                f"(loops unrolled); the limit (maxMidCircuitMeasurements) is "
                f"{self.max_measurements}. Measure fewer qubits before the end.",
                instruction=locations[min(self.max_measurements, len(locations) - 1)],
            )
