"""QS003 lexical: characters no OpenQASM program contains, unterminated strings and comments.

The pre-checks and the parsers must agree on where every line, comment and string ends.
Carriage returns are turned into newlines before anything reads the source (see
:func:`normalise_newlines`), so ``// x\r qubit[1000000000] q;`` is code to both. Every
other character that some reader takes for a line break (form feed, vertical tab, NEL,
U+2028, U+2029) is refused rather than guessed at.
"""

from __future__ import annotations

import re

from ..catalog import LEXICAL
from ..report import Violation, finding
from ..source.scan import SourceScan

# C0 controls other than tab and newline (carriage returns are normalised away first); DEL;
# the C1 line break NEL and the Unicode line and paragraph separators; lone surrogates (text
# that was not valid UTF-8).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")
_ALLOWED_ASCII = bytes([9, 10, *range(32, 127)])
_LINE_BREAKS = {
    "\x0b": "a vertical tab",
    "\x0c": "a form feed",
    "\x85": "a NEL",
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
}
_CRLF = re.compile(r"\r\n?")


def normalise_newlines(source: str) -> str:
    """CRLF and lone CR as LF: the one line terminator every reader of the source agrees on
    (OpenQASM 3's lexer ends a comment at CR, the scanner's patterns at LF)."""
    return _CRLF.sub("\n", source) if "\r" in source else source


def check_text(source: str) -> list[Violation]:
    """Refuse control characters and invalid text before anything else reads the source."""
    # Fast path: deleting every allowed byte of ASCII text leaves nothing.
    if source.isascii() and not source.encode("ascii").translate(None, _ALLOWED_ASCII):
        return []
    bad = _FORBIDDEN.search(source)
    if bad is None:
        return []
    line = source.count("\n", 0, bad.start()) + 1
    char = bad.group()
    if char in _LINE_BREAKS:
        problem = (
            f"{_LINE_BREAKS[char]}, which readers disagree on as a line break; end lines with \\n"
        )
    else:
        problem = "a character that has no place in OpenQASM; save the file as plain UTF-8 text"
    return [
        finding(
            LEXICAL,
            f"line {line} contains U+{ord(char):04X}, {problem}.",
            line=line,
        )
    ]


def check(scan: SourceScan) -> list[Violation]:
    """Refuse an unterminated string literal or block comment."""
    code = scan.code
    if scan.simple and '"' not in code:
        return []  # no comment ever opened, every string closed
    quote = min((i for i in (code.find('"'), code.find("'")) if i >= 0), default=-1)
    found: list[Violation] = []
    for offset, what in (
        (code.find("/*"), "the block comment opened on line {} is never closed with */."),
        (quote, "the string literal opened on line {} is not closed on the same line."),
    ):
        if offset >= 0:
            line = scan.line_of(offset)
            found.append(finding(LEXICAL, what.format(line), line=line))
    return found
