"""QS304 delay-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..analysis.delays import DELAYS, SumDelays
from ..catalog import DELAY_LIMIT
from .base import SanitizerRule


class DelayLimit(SanitizerRule):
    """Delays may add up to at most ``max_seconds``, and must have constant durations."""

    rule_id = DELAY_LIMIT

    def __init__(self, *, max_seconds: float, dt_ns: float | None = None) -> None:
        """
        Args:
            max_seconds: the limit on the sum of all delays.
            dt_ns: length of one ``dt``; 1 ns when unknown (an overestimate).
        """
        super().__init__()
        self.max_seconds = max_seconds
        self.requires = [SumDelays(dt_ns=dt_ns)]

    def run(self, dag: DAGCircuit) -> None:
        totals = self.property_set[DELAYS]
        if totals.unknown:
            self.report(
                "a delay has no constant, finite, non-negative duration. Write durations "
                "as literals with a unit, e.g. delay[100ns].",
                instruction=totals.unknown[0],
            )
        if totals.seconds > self.max_seconds:
            self.report(
                f"delays add up to {totals.seconds:.6g} s (loops unrolled); the limit "
                f"(maxTotalDelaySeconds) is {self.max_seconds:g} s. Shorten the delays."
            )
