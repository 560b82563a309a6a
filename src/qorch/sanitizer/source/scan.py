"""A cheap look at the OpenQASM source before any parser sees it.

Everything here is regular expressions and arithmetic over the text, linear in its length:
comments and string literals are blanked (offsets kept), the version header is read, register
declarations are collected. Costlier views (tokens, gate definitions) are computed on demand,
only for sources that need them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .definitions import DefinitionTable

# Comments and string literals, earliest first; a string inside a comment is part of the comment.
_COMMENT_OR_STRING = re.compile(r"//[^\n]*|/\*.*?\*/|\"[^\"\n]*\"|'[^'\n]*'", re.S)
# Most sources have no comments and no single quotes: then only "..." needs blanking, and a
# pattern with a literal first character scans 10x faster than the alternation above.
_COMMENT_START = re.compile(r"/[/*]")
_DOUBLE_QUOTED = re.compile(r"\"[^\"\n]*\"")
_NOT_NEWLINE = re.compile(r"[^\n]")
_HEADER = re.compile(r"\s*OPENQASM\s+([^\s;]*)\s*;")
_QASM2_VERSION = re.compile(r"^2(\.0)?$")
_QASM3_VERSION = re.compile(r"^3(\.\d+)?$")
# Matched at keyword offsets found by keyword_offsets(): patterns starting with \b would make
# the regular expression engine try every position of the source, 50x slower.
_OLD_DECLARATION = re.compile(r"(qreg|creg)\s+([^\W\d]\w*)\s*(?:\[([^\]]*)\])?")
_NEW_DECLARATION = re.compile(r"(qubit|bit)\s*(?:\[([^\]]*)\])?\s*([^\W\d]\w*)")
_PHYSICAL_QUBIT = re.compile(r"\$(\d+)")
_BRACE = re.compile(r"[{}]")
_INTEGER_LITERAL = re.compile(r"^\s*(\d[\d_]*)\s*$")
_TOKEN = re.compile(
    r"[^\W\d]\w*|\$\d+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?"
    r"|->|==|!=|<=|>=|&&|\|\||\*\*|<<|>>|\S"
)

#: Integers the parsers can hold; OpenQASM 2's parser panics beyond 64 bits.
MAX_INTEGER = 2**63 - 1


@dataclass(frozen=True)
class Declaration:
    """A register declaration: ``qreg q[5];``, ``bit[2] c;``, ``qubit q;``."""

    kind: Literal["qubit", "clbit"]
    name: str
    size_text: str
    #: None when the size is not an integer literal.
    size: int | None
    offset: int


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def keyword_offsets(code: str, word: str) -> list[int]:
    """Offsets where ``word`` stands as a whole word (``str.find`` runs at C speed)."""
    found: list[int] = []
    i = code.find(word)
    while i >= 0:
        end = i + len(word)
        if (i == 0 or not _is_word_char(code[i - 1])) and (
            end == len(code) or not _is_word_char(code[end])
        ):
            found.append(i)
        i = code.find(word, end)
    return found


def integer_value(text: str) -> int | None:
    """The value of a decimal integer literal, or None if it is none; never slow on long text."""
    match = _INTEGER_LITERAL.match(text)
    if match is None:
        return None
    digits = match.group(1).replace("_", "").lstrip("0") or "0"
    if len(digits) > 19:  # beyond 64 bits; int() of huge digit strings is quadratic
        return MAX_INTEGER + 1
    return int(digits)


class SourceScan:
    """The source with comments and string literals blanked, and what can be read off it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.strings: dict[int, str] = {}
        #: No comments and no single quotes: only "..." strings were blanked.
        self.simple = "'" not in source and _COMMENT_START.search(source) is None
        pattern = _DOUBLE_QUOTED if self.simple else _COMMENT_OR_STRING
        self.code = pattern.sub(self._blank, source)
        header = _HEADER.match(self.code)
        self.version_text: str | None = header.group(1) if header else None
        #: 2 or 3; 0 for an unsupported version. Without a header the source is OpenQASM 3.
        self.version = 3
        if self.version_text is not None:
            if _QASM2_VERSION.match(self.version_text):
                self.version = 2
            elif not _QASM3_VERSION.match(self.version_text):
                self.version = 0
        self.header_end = header.end() if header else 0

    def _blank(self, match: re.Match[str]) -> str:
        text = match.group()
        if text[0] in "\"'":
            self.strings[match.start()] = text[1:-1]
            return " " * len(text)
        return _NOT_NEWLINE.sub(" ", text)

    def line_of(self, offset: int) -> int:
        """1-based source line of a character offset."""
        return self.source.count("\n", 0, offset) + 1

    @cached_property
    def declarations(self) -> list[Declaration]:
        """Register declarations, in source order."""
        found: list[Declaration] = []
        code = self.code
        for keyword in ("qreg", "creg"):
            for offset in keyword_offsets(code, keyword):
                m = _OLD_DECLARATION.match(code, offset)
                if m is None:
                    continue
                kind: Literal["qubit", "clbit"] = "qubit" if keyword == "qreg" else "clbit"
                size_text = m.group(3) if m.group(3) is not None else "1"
                found.append(
                    Declaration(kind, m.group(2), size_text, integer_value(size_text), offset)
                )
        if self.version == 3:
            for keyword in ("qubit", "bit"):
                for offset in keyword_offsets(code, keyword):
                    m = _NEW_DECLARATION.match(code, offset)
                    if m is None:
                        continue
                    kind = "qubit" if keyword == "qubit" else "clbit"
                    size_text = m.group(2) if m.group(2) is not None else "1"
                    found.append(
                        Declaration(kind, m.group(3), size_text, integer_value(size_text), offset)
                    )
        found.sort(key=lambda d: d.offset)
        return found

    @cached_property
    def register_sizes(self) -> dict[str, int]:
        """Register name -> size, for the registers whose size is a literal."""
        return {d.name: d.size for d in self.declarations if d.size is not None}

    @cached_property
    def physical_qubits(self) -> list[tuple[int, int]]:
        """OpenQASM 3 physical qubits ``$n`` as (n, offset)."""
        if "$" not in self.code:
            return []
        return [
            (integer_value(m.group(1)) or 0, m.start()) for m in _PHYSICAL_QUBIT.finditer(self.code)
        ]

    @cached_property
    def tokens(self) -> list[str]:
        """Every token of the blanked source (only computed for sources that need it)."""
        return _TOKEN.findall(self.code)

    @cached_property
    def token_offsets(self) -> list[int]:
        """Where each of :attr:`tokens` starts."""
        return [m.start() for m in _TOKEN.finditer(self.code)]

    @cached_property
    def definition_spans(self) -> list[tuple[int, int]]:
        """(start, end) offsets of each ``gate ... { ... }`` and ``opaque ...;`` statement.

        Keywords inside an earlier span are skipped, so the scan stays linear even when
        braces never close."""
        code = self.code
        starts = [(o, "gate") for o in keyword_offsets(code, "gate")]
        starts += [(o, "opaque") for o in keyword_offsets(code, "opaque")]
        spans: list[tuple[int, int]] = []
        last_end = 0
        for start, keyword in sorted(starts):
            if start < last_end:
                continue
            end = len(code)
            if keyword == "opaque":
                semicolon = code.find(";", start)
                end = semicolon + 1 if semicolon >= 0 else end
            elif (opening := code.find("{", start)) >= 0:
                depth = 0
                for brace in _BRACE.finditer(code, opening):
                    depth += 1 if brace.group() == "{" else -1
                    if depth == 0:
                        end = brace.end()
                        break
            spans.append((start, end))
            last_end = end
        return spans

    @cached_property
    def has_definitions(self) -> bool:
        """Whether the source defines gates (``gate``/``opaque``)."""
        return bool(self.definition_spans)

    @cached_property
    def definitions(self) -> DefinitionTable:
        """Custom gates, analysed symbolically; empty when the source defines none. Only the
        definitions are tokenised, not the whole source."""
        from .definitions import DefinitionTable, analyse_definitions

        tokens: list[str] = []
        offsets: list[int] = []
        for start, end in self.definition_spans:
            for m in _TOKEN.finditer(self.code, start, end):
                tokens.append(m.group())
                offsets.append(m.start())
        if not tokens:
            return DefinitionTable({})
        return analyse_definitions(tokens, offsets)
