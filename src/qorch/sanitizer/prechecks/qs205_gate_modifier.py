"""QS205 gate-modifier: OpenQASM 3 modifiers Qiskit evaluates eagerly at load time.

``pow(k) @`` makes the loader compute a dense matrix power, and ``ctrl(n) @`` builds an
n-controlled gate: both are refused or bounded before parsing. Modifiers other than ``inv``
on custom gates would make the loader re-synthesise their whole definition.
"""

from __future__ import annotations

import re

from ..catalog import GATE_MODIFIER
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan, integer_value

# The argument runs up to the "@", so nested parentheses cannot hide a control count.
_MODIFIER = re.compile(r"\b(inv|pow|ctrl|negctrl)\b\s*(?:\(([^@;]*)\))?\s*@")
_CALLEE = re.compile(r"(?:\b(?:inv|pow|ctrl|negctrl)\b\s*(?:\([^@;]*\))?\s*@\s*)+([^\W\d]\w*)")


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse ``pow``, too many controls, and non-``inv`` modifiers on custom gates."""
    if scan.version != 3 or "@" not in scan.code:
        return []
    found: list[Violation] = []
    for m in _MODIFIER.finditer(scan.code):
        modifier, argument = m.group(1), m.group(2)
        line = scan.line_of(m.start())
        if modifier == "pow":
            found.append(
                finding(
                    GATE_MODIFIER,
                    f"line {line} uses the pow modifier, which the loader evaluates as a "
                    "dense matrix power; repeat the gate or rewrite its angle instead.",
                    line=line,
                )
            )
        elif modifier in ("ctrl", "negctrl"):
            controls = 1 if argument is None else integer_value(argument)
            if controls is None or controls > policy.max_modifier_controls:
                shown = argument.strip() if argument else "1"
                found.append(
                    finding(
                        GATE_MODIFIER,
                        f"line {line} adds {shown} controls with {modifier}; at most "
                        f"{policy.max_modifier_controls} (maxModifierControls), as an "
                        "integer literal.",
                        line=line,
                    )
                )
    custom = scan.definitions.gates if scan.has_definitions else {}
    for m in _CALLEE.finditer(scan.code):
        callee = m.group(1)
        modifiers = set(re.findall(r"\b(inv|pow|ctrl|negctrl)\b", m.group()))
        if callee in custom and modifiers - {"inv"}:
            line = scan.line_of(m.start())
            found.append(
                finding(
                    GATE_MODIFIER,
                    f"line {line} applies {', '.join(sorted(modifiers - {'inv'}))} to custom "
                    f"gate {callee!r}; only inv may modify custom gates. Define the "
                    "controlled version as a gate of its own.",
                    line=line,
                )
            )
    for gate in custom.values():
        for modifier, callee in gate.modified_custom_calls:
            line = scan.line_of(gate.offset)
            found.append(
                finding(
                    GATE_MODIFIER,
                    f"gate {gate.name!r} (line {line}) applies {modifier} to custom gate "
                    f"{callee!r}; only inv may modify custom gates.",
                    line=line,
                )
            )
    return found
