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
        elif argument is not None and integer_value(argument) is None:
            found.append(
                finding(
                    GATE_MODIFIER,
                    f"line {line} gives {modifier} the argument {argument.strip()[:40]!r}; "
                    "write the number of controls as an integer literal.",
                    line=line,
                )
            )
    # Controls add up along a chain: ctrl @ ctrl @ ctrl @ x is a three-controlled x.
    for m in _CALLEE.finditer(scan.code):
        controls = 0
        for modifier, argument in _MODIFIER.findall(m.group()):
            if modifier in ("ctrl", "negctrl"):
                controls += 1 if not argument else (integer_value(argument) or 0)
        if controls > policy.max_modifier_controls:
            line = scan.line_of(m.start())
            found.append(
                finding(
                    GATE_MODIFIER,
                    f"line {line} adds {controls} controls to {m.group(1)!r} with ctrl/negctrl; "
                    f"at most {policy.max_modifier_controls} (maxModifierControls) per gate.",
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
