"""QS202 gate-definition: custom gates must expand to allowed gates within bounds.

Expansion is measured symbolically on the source (see ``source.definitions``) before any
loader builds a definition, so exponential chains cost nothing to refuse.
"""

from __future__ import annotations

from ..catalog import GATE_DEFINITION
from ..gates import CONTROL_FLOW
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.definitions import SATURATION, GateDefinition
from ..source.scan import SourceScan

#: Refused definitions listed one by one; the rest are summed up in one more violation.
_MAX_REPORTED = 5


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse opaque gates, deep or large expansions and definitions using disallowed gates."""
    if not scan.has_definitions:
        return []
    gates = scan.definitions.gates
    found: list[Violation] = []
    if len(gates) > policy.max_gate_definitions:
        found.append(
            finding(
                GATE_DEFINITION,
                f"the source defines {len(gates)} gates; the limit (maxGateDefinitions) is "
                f"{policy.max_gate_definitions}. Define fewer gates.",
            )
        )
    allowed = policy.gate_allowlist | {"barrier"}
    refused: list[tuple[int, str]] = []
    for gate in gates.values():
        problems = _problems(gate, policy, allowed)
        if problems:
            line = scan.line_of(gate.offset)
            refused.append((line, f"gate {gate.name!r} (line {line}) {'; '.join(problems)}."))
    for line, message in refused[:_MAX_REPORTED]:
        found.append(finding(GATE_DEFINITION, message, line=line))
    if len(refused) > _MAX_REPORTED:
        found.append(
            finding(
                GATE_DEFINITION,
                f"{len(refused) - _MAX_REPORTED} more gate definitions are refused for the "
                "same reasons.",
            )
        )
    return found


def _problems(gate: GateDefinition, policy: SanitizerPolicy, allowed: frozenset[str]) -> list[str]:
    if gate.opaque:
        return [
            "is opaque: it has no definition the sanitizer can check; define it in terms "
            "of standard gates"
        ]
    problems = list(gate.problems)
    if gate.depth > policy.max_definition_depth:
        problems.append(
            f"nests custom gates {gate.depth} deep, beyond the limit (maxDefinitionDepth) of "
            f"{policy.max_definition_depth}; inline some levels"
        )
    if gate.expanded_size > policy.max_definition_size:
        size = "more than 2**62" if gate.expanded_size >= SATURATION else str(gate.expanded_size)
        problems.append(
            f"expands to {size} operations, beyond the limit (maxDefinitionSize) of "
            f"{policy.max_definition_size}; make the definition smaller"
        )
    disallowed = sorted(gate.leaf_gates - allowed - CONTROL_FLOW)
    if disallowed:
        problems.append(
            f"uses {', '.join(disallowed)}, neither allowed nor defined before it; build it "
            "from standard gates or gates defined earlier"
        )
    return problems
