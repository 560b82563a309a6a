"""QS008 expression-size: expressions too long for the parsers to read in bounded time.

The source-size limit does not bound parse time: Qiskit's OpenQASM 3 parser (ANTLR, in
Python) spends about 0.2 ms per operator of a chain of unary minus signs and recurses once
per operator, so 60,000 of them in 60 kB cost half a minute and half a gigabyte. QS004 bounds
brackets; this rule bounds what brackets do not: how many operators one statement holds, and
how many prefix operators stand in a row (``- - - x`` has no use a single sign lacks).
"""

from __future__ import annotations

import re

from ..catalog import EXPRESSION_SIZE
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import SourceScan

#: Longest run of prefix operators (``-``, ``+``, ``~``, ``!``) allowed in a row.
MAX_PREFIX_RUN = 4

_OPERATOR_BYTES = b"+-*/%^&|~!<>="
_SEPARATORS = b";{}"
# Delete every byte but operators and statement separators: what is left splits into one
# run of operator characters per statement, in C.
_NOT_KEPT = bytes(b for b in range(256) if b not in _OPERATOR_BYTES + _SEPARATORS)
_SEPARATOR = re.compile(rb"[;{}]")
_SEPARATOR_TEXT = re.compile(r"[;{}]")
_PREFIX_RUN = re.compile(rf"[-+~!](?:\s*[-+~!]){{{MAX_PREFIX_RUN}}}")


def _line(scan: SourceScan, statement: int) -> int:
    """Line where the ``statement``-th statement (0-based) starts."""
    offset = 0
    for seen, m in enumerate(_SEPARATOR_TEXT.finditer(scan.code)):
        if seen == statement:
            break
        offset = m.end()
    code = scan.code
    while offset < len(code) and code[offset].isspace():
        offset += 1
    return scan.line_of(offset)


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse statements with more than ``maxExpressionOperators`` operator characters, and
    more than :data:`MAX_PREFIX_RUN` prefix operators in a row."""
    found: list[Violation] = []
    run = _PREFIX_RUN.search(scan.code)
    if run is not None:
        line = scan.line_of(run.start())
        found.append(
            finding(
                EXPRESSION_SIZE,
                f"line {line} chains more than {MAX_PREFIX_RUN} prefix operators "
                f"({run.group()[:20]!r}...); write the sign once.",
                line=line,
            )
        )
    limit = policy.max_expression_operators
    kept = scan.code.encode("utf-8", "surrogatepass").translate(None, _NOT_KEPT)
    if len(kept) <= limit:
        return found
    for index, operators in enumerate(_SEPARATOR.split(kept)):
        if len(operators) > limit:
            line = _line(scan, index)
            found.append(
                finding(
                    EXPRESSION_SIZE,
                    f"the statement on line {line} holds {len(operators)} operator "
                    f"characters; the limit (maxExpressionOperators) is {limit}. Compute the "
                    "value before writing the circuit, or split the expression.",
                    line=line,
                )
            )
            break
    return found
