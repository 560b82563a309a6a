"""Top-level statements of a source: how many instructions each becomes, and on which line.

Used twice: before parsing, to estimate how many operations broadcasting (``h q;`` on a
register) and custom gates will produce, so a short source cannot make the loader build
millions of instructions; and after a rejection, to give each violation its source line.
The walk over tokens is linear; it recurses only on blocks, whose nesting QS004 bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .definitions import DefinitionTable, matching, skip_modifiers
from .scan import SourceScan

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
_OPENING = frozenset("([")
_CLOSING = frozenset(")]")


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
        self.tokens = scan.tokens
        self.definitions = definitions
        self.registers = scan.register_sizes
        self.total_qubits = sum(d.size or 0 for d in scan.declarations if d.kind == "qubit")
        self.total_qubits += len({n for n, _ in scan.physical_qubits})
        self._line_mark = (0, 1)  # (offset, line) of the last statement located

    def line_at(self, index: int) -> int:
        """Line of token ``index``, counted on from the previous call (statements come in
        order, so the whole walk counts each newline once)."""
        offset = self.scan.token_offsets[index]
        start, line = self._line_mark
        if offset < start:
            start, line = 0, 1
        line += self.scan.source.count("\n", start, offset)
        self._line_mark = (offset, line)
        return line

    def statement_end(self, i: int) -> int:
        """Index just past the ``;`` ending the statement at ``i`` (brackets respected), or of
        the brace that ends it early."""
        depth, tokens, n = 0, self.tokens, len(self.tokens)
        while i < n:
            text = tokens[i]
            if text == ";" and depth <= 0:
                return i + 1
            if text in _OPENING:
                depth += 1
            elif text in _CLOSING:
                depth -= 1
            elif (text == "{" or text == "}") and depth <= 0:
                return i
            i += 1
        return i

    def broadcast(self, start: int, end: int) -> int:
        """How many times a statement's arguments in [start, end) repeat it: the largest
        register used whole (or sliced), else 1."""
        widest, depth, tokens, registers = 1, 0, self.tokens, self.registers
        for i in range(start, end):
            text = tokens[i]
            if text in _OPENING:
                depth += 1
            elif text in _CLOSING:
                depth -= 1
            elif depth == 0 and text in registers:
                subscripted = i + 1 < end and tokens[i + 1] == "["
                if not subscripted or ":" in tokens[i + 1 : matching(tokens, i + 1, "[", "]")]:
                    widest = max(widest, registers[text])
        return widest

    def arguments(self, start: int, end: int) -> list[tuple[int, int]]:
        """Comma-separated argument spans at bracket depth 0, up to a ``;``."""
        spans, depth, begin, tokens = [], 0, start, self.tokens
        for i in range(start, end):
            text = tokens[i]
            if text in _OPENING:
                depth += 1
            elif text in _CLOSING:
                depth -= 1
            elif depth == 0 and (text == "," or text == ";"):
                if i > begin:
                    spans.append((begin, i))
                begin = i + 1
        if end > begin and tokens[end - 1] != ";":
            spans.append((begin, end))
        return spans

    def simple(self, start: int, end: int) -> tuple[int, int]:
        """(instructions, operations) of a statement without a body."""
        tokens = self.tokens
        first = tokens[start]
        statement = tokens[start:end]
        if "measure" in statement:
            at = start + statement.index("measure") + 1
            stop = start + statement.index("->") if "->" in statement else end
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
            if i < end and tokens[i] == "[":
                i = matching(tokens, i, "[", "]")
            args = [self.broadcast(a, b) for a, b in self.arguments(i, end)]
            n = sum(args) if args else self.total_qubits
            return n, n
        if "=" in statement:  # a classical assignment
            return 0, 0
        i, _ = skip_modifiers(tokens, start, end)
        if i >= end:
            return 0, 0
        callee = tokens[i]
        i += 1
        if i < end and tokens[i] == "(":
            i = matching(tokens, i, "(", ")")
        if callee == "gphase" and (i >= end or tokens[i] == ";"):
            return 0, 0
        n = self.broadcast(i, end)
        return n, n * self.definitions.expansion(callee)

    def control(self, i: int) -> tuple[int, int, int]:
        """(end, instructions, operations) of a control-flow statement at ``i``."""
        tokens, n = self.tokens, len(self.tokens)
        keyword = tokens[i]
        operations = 0
        inner_instructions = 0
        while True:
            i += 1
            if keyword == "else" and i < n and tokens[i] == "if":
                keyword = "if"
                i += 1
            # the head: a condition in parentheses, a for-loop head, a box duration
            while i < n and tokens[i] not in ("{", ";"):
                if tokens[i] == "in" and i + 1 < n and tokens[i + 1] == "{":
                    i = matching(tokens, i + 1, "{", "}")  # a for loop over a discrete set
                elif tokens[i] == "(":
                    i = matching(tokens, i, "(", ")")
                elif tokens[i] == "[":
                    i = matching(tokens, i, "[", "]")
                elif keyword in ("if", "while") and tokens[i - 1] == ")":
                    break  # a single statement as the body
                else:
                    i += 1
            if i < n and tokens[i] == "{":
                end = matching(tokens, i, "{", "}")
                operations += self.walk(i + 1, end - 1)[1]
                i = end
            else:
                i, instructions, ops = self.one(i)
                inner_instructions += instructions
                operations += ops
            if i < n and tokens[i] == "else":
                keyword = "else"
                continue
            break
        # OpenQASM 2 wraps each broadcast element of a conditioned statement separately.
        instructions = inner_instructions if self.scan.version == 2 else 1
        return i, instructions, operations

    def one(self, i: int) -> tuple[int, int, int]:
        """(end, instructions, operations) of the statement starting at ``i``."""
        tokens = self.tokens
        if i >= len(tokens):  # a statement cut off by the end of the source
            return i, 0, 0
        text = tokens[i]
        if text in ("gate", "def", "defcal"):  # definitions: their bodies run when called
            j = i
            while j < len(tokens) and tokens[j] not in ("{", ";"):
                j += 1
            if j < len(tokens) and tokens[j] == "{":
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
        i, tokens = start, self.tokens
        while i < end:
            if tokens[i] == ";":
                i += 1
                continue
            nxt, ins, ops = self.one(i)
            if out is not None:
                out.append(Statement(self.line_at(i), ins, ops))
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
