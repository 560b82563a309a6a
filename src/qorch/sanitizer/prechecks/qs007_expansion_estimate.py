"""QS007 expansion-estimate: what the source will amount to once broadcast and expanded.

``h q;`` on a 100-qubit register is 100 instructions in 5 bytes, and each call of a custom
gate copies its body. The estimate bounds what the loader will build before it builds it.
"""

from __future__ import annotations

import re
from collections import Counter

from ..catalog import EXPANSION_ESTIMATE
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.definitions import SATURATION
from ..source.scan import SourceScan, keyword_offsets
from ..source.statements import estimated_operations

_NAME_USE = re.compile(r"([^\W\d]\w*)(\s*\[)?")


def _widest(scan: SourceScan) -> int:
    """The most instructions one statement can broadcast to: the widest register, or all
    qubits (an OpenQASM 3 ``delay`` without operands delays every qubit)."""
    qubits = sum(d.size or 0 for d in scan.declarations if d.kind == "qubit")
    qubits += len({index for index, _ in scan.physical_qubits})
    return max([1, qubits, *(d.size or 1 for d in scan.declarations)])


def _upper_bound(scan: SourceScan, widest: int) -> int:
    """Statements, plus (size - 1) for every use of a whole register (each such use repeats
    its statement at most that often) and every delay. Counted at regex speed, no tokens."""
    bound = scan.code.count(";") + len(keyword_offsets(scan.code, "delay")) * widest
    wide = {name: size for name, size in scan.register_sizes.items() if size > 1}
    if not wide:
        return bound
    uses = Counter(name for name, subscript in _NAME_USE.findall(scan.code) if not subscript)
    return bound + sum((size - 1) * uses[name] for name, size in wide.items())


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse sources whose operations, broadcast and expanded, exceed ``maxGates``."""
    limit = policy.max_gates
    statements = scan.code.count(";")
    widest = _widest(scan)
    # Fast paths: a statement amounts to at most the widest register times the expansion of
    # its gate; every use of a custom gate's name is taken for a call.
    extra = 0
    if scan.has_definitions:
        for gate in scan.definitions.gates.values():
            if gate.expanded_size > 1:
                uses = len(keyword_offsets(scan.code, gate.name))
                extra += uses * (min(gate.expanded_size, SATURATION) - 1) * widest
    if statements * widest + extra <= limit:
        return []
    if not scan.has_definitions and _upper_bound(scan, widest) <= limit:
        return []
    estimate = estimated_operations(scan)
    if estimate <= limit:
        return []
    return [
        finding(
            EXPANSION_ESTIMATE,
            f"broadcast over registers and with custom gates expanded, the source amounts to "
            f"about {estimate} operations; the limit (maxGates) is {limit}. Use fewer "
            "operations or smaller custom gates.",
        )
    ]
