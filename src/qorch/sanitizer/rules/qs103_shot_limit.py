"""QS103 shot-limit."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit

from ..catalog import SHOT_LIMIT
from .base import SanitizerRule


class ShotLimit(SanitizerRule):
    """The job may ask for 1 to ``max_shots`` shots (unchecked when the caller gives none)."""

    rule_id = SHOT_LIMIT

    def __init__(self, *, shots: int | None, max_shots: int) -> None:
        super().__init__()
        self.shots = shots
        self.max_shots = max_shots

    def run(self, dag: DAGCircuit) -> None:
        if self.shots is None:
            return
        if self.shots < 1:
            self.report(f"the job asks for {self.shots} shots; ask for at least 1.")
        elif self.shots > self.max_shots:
            self.report(
                f"the job asks for {self.shots} shots; the limit (maxShots) is {self.max_shots}. "
                "Split the job or ask for fewer shots."
            )
