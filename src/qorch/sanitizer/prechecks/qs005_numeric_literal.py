"""QS005 numeric-literal: integers beyond 64 bits and real literals that overflow.

Qiskit's OpenQASM 2 parser panics on integers it cannot hold; a real like ``1e400`` silently
becomes infinity. Both are refused on the text, before parsing.
"""

from __future__ import annotations

import math
import re

from ..catalog import NUMERIC_LITERAL
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import MAX_INTEGER, SourceScan

# Only long digit runs (or big exponents) can overflow, so benign sources match nothing.
_LONG_NUMBER = re.compile(r"(?<![\w.])\d[\d_]{18,}(?:\.[\d_]*)?(?:[eE][+-]?\d+)?")
_BIG_EXPONENT = re.compile(r"(?<![\w.])(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE]\+?\d{3,}")
_BASED_INTEGER = re.compile(r"(?<![\w.])0(?:[xX][0-9a-fA-F_]{16,}|[oO][0-7_]{21,}|[bB][01_]{63,})")


def _overflows(literal: str) -> bool:
    text = literal.replace("_", "")
    if "." in text or "e" in text or "E" in text:
        mantissa = re.split("[eE]", text)[0]
        if len(mantissa.split(".")[0].lstrip("0")) > 400:
            return True  # float() of it is slow as well as infinite
        return math.isinf(float(text))
    digits = text.lstrip("0")
    return len(digits) > 19 or (bool(digits) and int(digits) > MAX_INTEGER)


def _based_overflows(literal: str) -> bool:
    text = literal.replace("_", "")
    base = {"x": 16, "o": 8, "b": 2}[text[1].lower()]
    digits = text[2:].lstrip("0")
    bits_per_digit = {16: 4, 8: 3, 2: 1}[base]
    if len(digits) * bits_per_digit > 64 + bits_per_digit:
        return True
    return bool(digits) and int(digits, base) > MAX_INTEGER


def check(scan: SourceScan, policy: SanitizerPolicy) -> list[Violation]:
    """Refuse the first overflowing literal (one is enough to explain the refusal)."""
    code = scan.code
    candidates = [
        (m.start(), m.group(), _overflows)
        for pattern in (_LONG_NUMBER, _BIG_EXPONENT)
        for m in pattern.finditer(code)
    ]
    if "0" in code and scan.version == 3:
        candidates += [(m.start(), m.group(), _based_overflows) for m in _BASED_INTEGER.finditer(code)]
    for offset, literal, overflows in sorted(candidates, key=lambda c: c[0]):
        if overflows(literal):
            shown = literal if len(literal) <= 40 else literal[:37] + "..."
            line = scan.line_of(offset)
            return [
                finding(
                    NUMERIC_LITERAL,
                    f"the number {shown} on line {line} does not fit a 64-bit integer or a "
                    "finite double; write angles within +-maxAbsAngle and sizes as small "
                    "integers.",
                    line=line,
                )
            ]
    return []
