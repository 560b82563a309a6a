"""What every rule pass shares: its id, and how it records a finding."""

from __future__ import annotations

from typing import ClassVar

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..passbase import KeywordAnalysisPass
from ..report import Violation, finding

#: property_set key every rule appends its findings to: ``list[Violation]``. The verdict
#: (``SanitizerVerdict``) reads it; nothing else writes it.
VIOLATIONS = "sanitizer_violations"


class SanitizerRule(KeywordAnalysisPass):
    """An analysis pass that checks one rule and appends violations to ``property_set[VIOLATIONS]``.

    Rules never modify the DAG.
    """

    rule_id: ClassVar[str]

    def report(self, message: str, *, instruction: int | None = None) -> None:
        """Record a violation of this rule."""
        self.add_violation(finding(self.rule_id, message, instruction=instruction))

    def add_violation(self, violation: Violation) -> None:
        """Append an already built violation."""
        found = self.property_set[VIOLATIONS]
        if found is None:
            found = self.property_set[VIOLATIONS] = []
        found.append(violation)


class ControlFlowSwitch(SanitizerRule):
    """A rule that refuses a kind of control flow unless the policy allows it: the first
    block owned by one of `owners` is reported with `message`."""

    owners: ClassVar[frozenset[str]]
    message: ClassVar[str]

    def __init__(self, *, allowed: bool) -> None:
        super().__init__()
        self.allowed = allowed
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        if self.allowed:
            return
        for block in self.property_set[BLOCKS]:
            if block.owner in self.owners:
                self.report(self.message, instruction=block.top_index)
                return
