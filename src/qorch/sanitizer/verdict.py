"""The final step: apply the policy's severities to the findings and decide."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qiskit.dagcircuit import DAGCircuit

from .passbase import KeywordAnalysisPass
from .report import Violation
from .rules.base import VIOLATIONS

#: property_set key written by :class:`SanitizerVerdict`: ``Verdict``.
VERDICT = "sanitizer_verdict"


@dataclass(frozen=True)
class Verdict:
    """Accepted when nothing denies; violations with the policy's severities, denials first."""

    accepted: bool
    violations: list[Violation]


def decide(violations: list[Violation], severities: Mapping[str, str]) -> Verdict:
    """Apply severity overrides (``off`` drops a finding) and order denials first."""
    kept: list[Violation] = []
    seen: set[tuple[str, str]] = set()
    for violation in violations:
        severity = severities.get(violation.rule, violation.severity)
        if severity == "off" or (violation.rule, violation.message) in seen:
            continue
        seen.add((violation.rule, violation.message))
        if severity != violation.severity:
            violation = violation.model_copy(update={"severity": severity})
        kept.append(violation)
    kept.sort(key=lambda v: (v.severity != "deny", v.rule))
    return Verdict(accepted=all(v.severity != "deny" for v in kept), violations=kept)


class SanitizerVerdict(KeywordAnalysisPass):
    """Collect ``property_set[VIOLATIONS]`` into ``property_set[VERDICT]``."""

    def __init__(self, *, severities: Mapping[str, str] | None = None) -> None:
        """
        Args:
            severities: rule id -> ``deny``, ``warn`` or ``off`` (the policy's ruleSeverity).
        """
        super().__init__()
        self.severities = dict(severities or {})

    def run(self, dag: DAGCircuit) -> None:
        self.property_set[VERDICT] = decide(self.property_set[VIOLATIONS] or [], self.severities)
