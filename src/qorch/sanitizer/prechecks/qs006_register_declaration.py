"""QS006 register-declaration: register sizes must be literals within the policy's limits.

The loaders allocate every declared bit at once (``qreg q[1000000000];`` would take gigabytes
or crash OpenQASM 2's parser), so sizes are read off the text and refused before parsing.
"""

from __future__ import annotations

from ..catalog import REGISTER_DECLARATION
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse non-literal sizes, and totals beyond ``maxQubits`` / ``maxClbits``."""
    found: list[Violation] = []
    totals = {"qubit": 0, "clbit": 0}
    limits = {"qubit": policy.max_qubits, "clbit": policy.max_clbits}
    fields = {"qubit": "maxQubits", "clbit": "maxClbits"}
    reported: set[str] = set()
    for decl in scan.declarations:
        if decl.size is None:
            line = scan.line_of(decl.offset)
            found.append(
                finding(
                    REGISTER_DECLARATION,
                    f"register {decl.name!r} on line {line} has size [{decl.size_text.strip()}]; "
                    "write the size as an integer literal.",
                    line=line,
                )
            )
            continue
        totals[decl.kind] += decl.size
        if totals[decl.kind] > limits[decl.kind] and decl.kind not in reported:
            reported.add(decl.kind)
            line = scan.line_of(decl.offset)
            found.append(
                finding(
                    REGISTER_DECLARATION,
                    f"register {decl.name!r} on line {line} brings the declared {decl.kind}s "
                    f"to {totals[decl.kind]}; the limit ({fields[decl.kind]}) is "
                    f"{limits[decl.kind]}. Use fewer or smaller registers.",
                    line=line,
                )
            )
    for index, offset in scan.physical_qubits:
        if index >= policy.max_qubits:
            line = scan.line_of(offset)
            found.append(
                finding(
                    REGISTER_DECLARATION,
                    f"physical qubit ${index} on line {line} is beyond the limit "
                    f"(maxQubits) of {policy.max_qubits} qubits; use $0..${policy.max_qubits - 1}.",
                    line=line,
                )
            )
            break
    return found
