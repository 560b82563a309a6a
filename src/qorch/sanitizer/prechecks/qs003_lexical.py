"""QS003 lexical: characters no OpenQASM program contains, unterminated strings and comments."""

from __future__ import annotations

import re

from ..catalog import LEXICAL
from ..report import Violation, finding
from ..source.scan import SourceScan

# C0 controls other than tab, newline, carriage return and form feed; DEL; lone surrogates
# (text that was not valid UTF-8).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ud800-\udfff]")
_ALLOWED_ASCII = bytes([9, 10, 12, 13, *range(32, 127)])


def check_text(source: str) -> list[Violation]:
    """Refuse control characters and invalid text before anything else reads the source."""
    # Fast path: deleting every allowed byte of ASCII text leaves nothing.
    if source.isascii() and not source.encode("ascii").translate(None, _ALLOWED_ASCII):
        return []
    bad = _FORBIDDEN.search(source)
    if bad is None:
        return []
    line = source.count("\n", 0, bad.start()) + 1
    return [
        finding(
            LEXICAL,
            f"line {line} contains the character U+{ord(bad.group()):04X}, which has no place "
            "in OpenQASM; save the file as plain UTF-8 text.",
            line=line,
        )
    ]


def check(scan: SourceScan) -> list[Violation]:
    """Refuse an unterminated string literal or block comment."""
    code = scan.code
    if scan.simple and '"' not in code:
        return []  # no comment ever opened, every string closed
    found: list[Violation] = []
    comment = code.find("/*")
    if comment >= 0:
        line = scan.line_of(comment)
        found.append(
            finding(
                LEXICAL,
                f"the block comment opened on line {line} is never closed with */.",
                line=line,
            )
        )
    quote = min((i for i in (code.find('"'), code.find("'")) if i >= 0), default=-1)
    if quote >= 0:
        line = scan.line_of(quote)
        found.append(
            finding(
                LEXICAL,
                f"the string literal opened on line {line} is not closed on the same line.",
                line=line,
            )
        )
    return found
