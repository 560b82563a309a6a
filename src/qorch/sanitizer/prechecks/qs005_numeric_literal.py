"""QS005 numeric-literal: integers beyond 64 bits and reals with absurdly long digit strings.

Qiskit's OpenQASM 2 parser panics on integers it cannot hold, so they are refused on the
text. (A real like ``1e400`` merely becomes infinity; QS204 refuses that after parsing.)
"""

from __future__ import annotations

import math
import re

from ..catalog import NUMERIC_LITERAL
from ..policy import SanitizerPolicy
from ..report import Violation, finding
from ..source.scan import MAX_INTEGER, SourceScan

# Only digit runs of 19 or more can overflow 64 bits, so benign sources match nothing.
_LONG_NUMBER = re.compile(r"(?<![\w.])\d[\d_]{18,}(?:\.[\d_]*)?(?:[eE][+-]?\d+)?")
_BASED_INTEGER = re.compile(r"(?<![\w.])0(?:[xX][0-9a-fA-F_]{16,}|[oO][0-7_]{21,}|[bB][01_]{63,})")
# A cheap first look: digits (and _) become "0", "." stays, everything else is a space; the
# patterns above (50x slower) run only if a run of 19 digits shows up that does not follow a
# "." (the fraction of 0.00012345678901234567 is long but harmless).
_DIGITS = bytes(48 if chr(b) in "0123456789_" else 46 if b == 46 else 32 for b in range(256))
_LONG_RUN = b"0" * 19
_RUN = re.compile(rb"0+")


def _has_long_integer_run(shape: bytes) -> bool:
    """Whether a run of 19+ digits starts anywhere but right after a "."."""
    at = shape.find(_LONG_RUN)
    while at >= 0:
        if at == 0 or shape[at - 1] != 46:
            return True
        run = _RUN.match(shape, at)
        at = shape.find(_LONG_RUN, run.end() if run else at + 1)
    return False


def _overflows(literal: str) -> bool:
    text = literal.replace("_", "")
    if "." in text or "e" in text or "E" in text:
        mantissa = re.split("[eE]", text)[0]
        if len(mantissa.split(".")[0].lstrip("0")) > 400:
            return True  # a real with 400 integer digits is infinite as a double
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
    candidates = []
    if _has_long_integer_run(code.encode("utf-8", "surrogatepass").translate(_DIGITS)):
        candidates += [(m.start(), m.group(), _overflows) for m in _LONG_NUMBER.finditer(code)]
    if scan.version == 3 and re.search(r"0[xXoObB]", code):
        candidates += [
            (m.start(), m.group(), _based_overflows) for m in _BASED_INTEGER.finditer(code)
        ]
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
