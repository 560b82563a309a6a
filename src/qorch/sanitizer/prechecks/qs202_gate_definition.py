"""QS202 gate-definition: custom gates must expand to allowed gates within bounds.

Expansion is measured symbolically on the source (see ``source.definitions``) before any
loader builds a definition, so exponential chains cost nothing to refuse.
"""

from __future__ import annotations

from ..catalog import GATE_DEFINITION
from ..gates import CONTROL_FLOW
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan


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
    for gate in gates.values():
        line = scan.line_of(gate.offset)
        where = f"gate {gate.name!r} (line {line})"
        if gate.opaque:
            found.append(
                finding(
                    GATE_DEFINITION,
                    f"{where} is opaque: it has no definition the sanitizer can check. "
                    "Define it in terms of standard gates.",
                    line=line,
                )
            )
            continue
        for problem in gate.problems:
            found.append(finding(GATE_DEFINITION, f"{where}: {problem}.", line=line))
        if gate.depth > policy.max_definition_depth:
            found.append(
                finding(
                    GATE_DEFINITION,
                    f"{where} nests custom gates {gate.depth} deep; the limit "
                    f"(maxDefinitionDepth) is {policy.max_definition_depth}. Inline some levels.",
                    line=line,
                )
            )
        if gate.expanded_size > policy.max_definition_size:
            size = "more than 2**62" if gate.expanded_size >= 2**62 else str(gate.expanded_size)
            found.append(
                finding(
                    GATE_DEFINITION,
                    f"{where} expands to {size} operations; the limit (maxDefinitionSize) is "
                    f"{policy.max_definition_size}. Make the definition smaller.",
                    line=line,
                )
            )
        disallowed = sorted(gate.leaf_gates - allowed - CONTROL_FLOW)
        if disallowed:
            found.append(
                finding(
                    GATE_DEFINITION,
                    f"{where} uses {', '.join(disallowed)}, which "
                    f"{'is' if len(disallowed) == 1 else 'are'} neither allowed nor defined "
                    "before it. Build it from standard gates or gates defined earlier.",
                    line=line,
                )
            )
    return found
