"""Top-level statements of a source: how many instructions each becomes, and on which line.

Used twice: before parsing, to estimate how many operations broadcasting (``h q;`` on a
register) and custom gates will produce, so a short source cannot make the loader build
millions of instructions; and after a rejection, to give each violation its source line.
The walk over tokens is linear and never recurses on user-controlled nesting.
"""

from __future__ import annotations

from dataclasses import dataclass

from .definitions import DefinitionTable, matching, skip_modifiers
from .scan import SourceScan, Token

#: Statements that declare something and produce no instruction by themselves.
_DECLARATIONS = frozenset(
    {
        "OPENQASM", "include", "qreg", "creg", "qubit", "bit", "input", "output", "const",
        "let", "def", "extern", "defcal", "cal", "defcalgrammar", "pragma", "int", "uint",
        "float", "angle", "bool", "duration", "stretch", "complex", "array", "return",
        "opaque",
    }
)  # fmt: skip
_CONTROL = frozenset({"if", "while", "for", "box", "switch"})


@dataclass(frozen=True)
class Statement:
    """A top-level statement."""

    line: int
    #: Instructions it adds to the top level of the parsed circuit.
    instructions: int
    #: Operations it amounts to once broadcast and custom gates are expanded (bodies included).
    operations: int


class _Walker:
    def __init__(self, scan: SourceScan, definitions: DefinitionTable) -> None:
        self.scan = scan
        self.tokens: list[Token] = scan.tokens
        self.definitions = definitions
        self.registers = scan.register_sizes
        self.total_qubits = sum(
            d.size or 0 for d in scan.declarations if d.kind == "qubit"
        ) + len({n for n, _ in scan.physical_qubits})

    def statement_end(self, i: int) -> int:
        """Index just past the ``;`` ending the statement at ``i`` (brackets respected)."""
        depth, tokens = 0, self.tokens
        while i < len(tokens):
            text = tokens[i].text
            if text in "([":
                depth += 1
            elif text in ")]":
                depth -= 1
            elif text == ";" and depth <= 0:
                return i + 1
            elif text in "{}" and depth <= 0:
                return i
            i += 1
        return i

    def broadcast(self, start: int, end: int) -> int:
        """How many times a statement's arguments from ``start`` repeat it (1 if none are
        whole registers)."""
        widest, depth, i, tokens = 1, 0, start, self.tokens
        while i < end:
            text = tokens[i].text
            if text in "([":
                depth += 1
            elif text in ")]":
                depth -= 1
            elif depth == 0 and text in self.registers:
                subscripted = i + 1 < end and tokens[i + 1].text == "["
                if not subscripted or ":" in {t.text for t in tokens[i + 1 : end]}:
                    widest = max(widest, self.registers[text])
            i += 1
        return widest

    def simple(self, start: int, end: int) -> tuple[int, int]:
        """(instructions, operations) of a statement without a body."""
        tokens = self.tokens
        first = tokens[start].text
        texts = [t.text for t in tokens[start:end]]
        if "measure" in texts:
            at = start + texts.index("measure") + 1
            stop = start + texts.index("->") if "->" in texts else end
            n = self.broadcast(at, stop)
            return n, n
        if first in _DECLARATIONS:
            return 0, 0
        if first in ("break", "continue", "barrier"):
            return 1, 1
        if first == "reset":
            n = self.broadcast(start + 1, end)
            return n, n
        if first == "delay":
            i = start + 1
            if i < end and tokens[i].text == "[":
                i = matching(tokens, i, "[", "]")
            args = [self.broadcast(a, b) for a, b in self.arguments(i, end)]
            n = sum(args) if args else self.total_qubits
            return n, n
        i, _ = skip_modifiers(tokens, start, end)
        if i >= end:
            return 0, 0
        callee = tokens[i].text
        i += 1
        if i < end and tokens[i].text == "(":
            i = matching(tokens, i, "(", ")")
        if callee == "gphase" and (i >= end or tokens[i].text == ";"):
            return 0, 0
        if "=" in texts:  # a classical assignment
            return 0, 0
        n = self.broadcast(i, end)
        return n, n * self.definitions.expansion(callee)

    def arguments(self, start: int, end: int) -> list[tuple[int, int]]:
        """Comma-separated argument spans at bracket depth 0, up to a ``;``."""
        spans, depth, begin = [], 0, start
        for i in range(start, end):
            text = self.tokens[i].text
            if text in "([":
                depth += 1
            elif text in ")]":
                depth -= 1
            elif depth == 0 and text in ",;":
                if i > begin:
                    spans.append((begin, i))
                begin = i + 1
        if end > begin and self.tokens[end - 1].text != ";":
            spans.append((begin, end))
        return spans

    def control(self, i: int) -> tuple[int, int, int]:
        """(end, instructions, operations) of a control-flow statement at ``i``."""
        tokens, n = self.tokens, len(self.tokens)
        keyword = tokens[i].text
        operations = 0
        inner_instructions = 0
        while True:
            i += 1
            # header: a condition in parentheses, a for-loop head, a box duration
            if keyword == "else" and i < n and tokens[i].text == "if":
                keyword = "if"
                i += 1
            while i < n and tokens[i].text not in ("{", ";"):
                if tokens[i].text == "in" and i + 1 < n and tokens[i + 1].text == "{":
                    i = matching(tokens, i + 1, "{", "}")  # a for loop over a discrete set
                elif tokens[i].text == "(":
                    i = matching(tokens, i, "(", ")")
                elif tokens[i].text == "[":
                    i = matching(tokens, i, "[", "]")
                elif keyword in ("if", "while") and tokens[i - 1].text == ")":
                    break  # a single statement as the body
                else:
                    i += 1
            if i < n and tokens[i].text == "{":
                end = matching(tokens, i, "{", "}")
                _, ops = self.walk(i + 1, end - 1)
                operations += ops
                i = end
            else:
                end, instructions, ops = self.one(i)
                inner_instructions += instructions
                operations += ops
                i = end
            if i < n and tokens[i].text == "else":
                keyword = "else"
                continue
            break
        # OpenQASM 2 wraps each broadcast element of a conditioned statement separately.
        instructions = inner_instructions if self.scan.version == 2 else 1
        return i, instructions, operations

    def one(self, i: int) -> tuple[int, int, int]:
        """(end, instructions, operations) of the statement starting at ``i``."""
        tokens = self.tokens
        text = tokens[i].text
        if text in ("gate", "def", "defcal"):  # definitions: their bodies run when called
            j = i
            while j < len(tokens) and tokens[j].text not in ("{", ";"):
                j += 1
            if j < len(tokens) and tokens[j].text == "{":
                return matching(tokens, j, "{", "}"), 0, 0
            return j + 1, 0, 0
        if text in _CONTROL:
            return self.control(i)
        if text == "{":
            end = matching(tokens, i, "{", "}")
            instructions, operations = self.walk(i + 1, end - 1)
            return end, instructions, operations
        end = self.statement_end(i)
        if end == i:  # a stray closing brace
            return i + 1, 0, 0
        instructions, operations = self.simple(i, end)
        return end, instructions, operations

    def walk(self, start: int, end: int, out: list[Statement] | None = None) -> tuple[int, int]:
        """Total (instructions, operations) of the statements in [start, end)."""
        instructions = operations = 0
        i = start
        while i < end:
            if self.tokens[i].text == ";":
                i += 1
                continue
            nxt, ins, ops = self.one(i)
            if out is not None:
                out.append(Statement(self.scan.line_of(self.tokens[i].offset), ins, ops))
            instructions += ins
            operations += ops
            i = max(nxt, i + 1)
        return instructions, operations


def top_level_statements(scan: SourceScan) -> list[Statement]:
    """The top-level statements of the source, in order."""
    walker = _Walker(scan, scan.definitions)
    out: list[Statement] = []
    walker.walk(0, len(scan.tokens), out)
    return out


def estimated_operations(scan: SourceScan) -> int:
    """Operations the source amounts to once broadcast and custom gates are expanded."""
    walker = _Walker(scan, scan.definitions)
    return walker.walk(0, len(scan.tokens))[1]


def instruction_lines(scan: SourceScan, instructions: int) -> list[int] | None:
    """Source line of each top-level instruction, or None when the count does not match the
    parsed circuit's (then the walk misread the source and lines would mislead)."""
    lines: list[int] = []
    for statement in top_level_statements(scan):
        lines.extend([statement.line] * statement.instructions)
        if len(lines) > instructions:
            return None
    return lines if len(lines) == instructions else None
