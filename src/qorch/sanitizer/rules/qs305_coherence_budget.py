"""QS305 coherence-budget."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit

from ..analysis.duration import DURATION, EstimateDuration
from ..catalog import COHERENCE_BUDGET
from ..timing import TargetTiming
from .base import SanitizerRule


class CoherenceBudget(SanitizerRule):
    """The estimated duration may be at most ``max_fraction`` of the shortest T2 of the
    candidate nodes: beyond that the result is mostly noise."""

    rule_id = COHERENCE_BUDGET

    def __init__(
        self,
        *,
        timing: TargetTiming,
        max_fraction: float,
        expansions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """
        Args:
            timing: gate times and shortest T2 of the candidate nodes, all known.
            max_fraction: the limit as a fraction of T2.
            expansions: custom gate name -> (operations, multi-qubit operations).
        """
        super().__init__()
        self.timing = timing
        self.max_fraction = max_fraction
        self.requires = [EstimateDuration(timing=timing, expansions=expansions)]

    def run(self, dag: DAGCircuit) -> None:
        if self.timing.shortest_t2_us is None:
            return
        seconds = self.property_set[DURATION]
        budget = self.max_fraction * self.timing.shortest_t2_us * 1e-6
        if seconds > budget:
            self.report(
                f"the circuit runs for about {seconds * 1e6:.4g} µs on the candidate nodes; "
                f"the budget is {self.max_fraction:g} x T2 = {budget * 1e6:.4g} µs "
                "(maxT2Fraction). Shorten the critical path or target nodes with longer T2."
            )
