"""Custom gate definitions, measured symbolically before any loader expands them.

OpenQASM only lets a gate call gates defined before it, so one pass in source order with
the results of earlier gates memoised gives every gate's fully expanded size, its nesting
depth and the standard operations it bottoms out in, in time linear in the source. Sizes
saturate, so a chain of 40 gates that each call the previous twice (2**40 operations when
expanded) costs 40 additions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..gates import qiskit_name

#: Sizes stop growing here; anything this large is refused anyway.
SATURATION = 2**62
MODIFIERS = frozenset({"inv", "pow", "ctrl", "negctrl"})
#: Body statements that are not operations of their own.
_PHASE_ONLY = frozenset({"gphase"})


@dataclass
class GateDefinition:
    """What one custom gate amounts to once every gate it calls is expanded."""

    name: str
    offset: int
    opaque: bool = False
    #: Standard operations after full expansion (saturated at :data:`SATURATION`).
    expanded_size: int = 0
    #: Of those, operations on two or more qubits.
    expanded_multi_qubit: int = 0
    #: 1 when the body calls only standard gates, +1 per level of custom gates below.
    depth: int = 1
    #: Qiskit names of the standard operations it expands to.
    leaf_gates: set[str] = field(default_factory=set)
    #: Calls with modifiers other than ``inv`` on custom gates, as (modifier, callee).
    modified_custom_calls: list[tuple[str, str]] = field(default_factory=list)
    #: Anything else wrong with it, in words.
    problems: list[str] = field(default_factory=list)
    #: Names of its angle parameters.
    parameters: list[str] = field(default_factory=list)
    #: Each call in its body: the callee and the tokens of each angle argument.
    calls: list[tuple[str, tuple[tuple[str, ...], ...]]] = field(default_factory=list)


@dataclass(frozen=True)
class GateAngles:
    """The angle expressions of one custom gate's body, for the parameter rule."""

    name: str
    parameters: tuple[str, ...]
    #: (callee, token lists of its angle arguments) for each call in the body.
    calls: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]


@dataclass
class DefinitionTable:
    """Custom gates of a source in definition order."""

    gates: dict[str, GateDefinition]

    def angles(self) -> tuple[GateAngles, ...]:
        """The angle expressions of every non-opaque custom gate, in definition order."""
        return tuple(
            GateAngles(gate.name, tuple(gate.parameters), tuple(gate.calls))
            for gate in self.gates.values()
            if not gate.opaque
        )

    def expansion(self, name: str) -> int:
        """Operations one call of ``name`` expands to (1 for anything not custom)."""
        gate = self.gates.get(name)
        return gate.expanded_size if gate is not None and not gate.opaque else 1


def matching(tokens: list[str], start: int, open_: str, close: str) -> int:
    """Index just past the bracket closing the one at ``start`` (or the end of the tokens)."""
    depth = 0
    for i in range(start, len(tokens)):
        text = tokens[i]
        if text == open_:
            depth += 1
        elif text == close:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(tokens)


def skip_modifiers(tokens: list[str], i: int, end: int) -> tuple[int, list[str]]:
    """Skip ``inv @``, ``ctrl(2) @`` ...; return the index of the callee and the modifiers."""
    found: list[str] = []
    while i < end and tokens[i] in MODIFIERS:
        found.append(tokens[i])
        i += 1
        if i < end and tokens[i] == "(":
            i = matching(tokens, i, "(", ")")
        if i < end and tokens[i] == "@":
            i += 1
    return i, found


def count_arguments(tokens: list[str], i: int, end: int) -> int:
    """Comma-separated arguments from ``i`` to ``end`` at bracket depth 0."""
    if i >= end:
        return 0
    count, depth = 1, 0
    for k in range(i, end):
        text = tokens[k]
        if text in "([":
            depth += 1
        elif text in ")]":
            depth -= 1
        elif text == "," and depth == 0:
            count += 1
    return count


def split_arguments(tokens: list[str], start: int, end: int) -> tuple[tuple[str, ...], ...]:
    """Token lists of the comma-separated arguments in [start, end), at bracket depth 0."""
    found: list[tuple[str, ...]] = []
    depth, begin = 0, start
    for k in range(start, end):
        text = tokens[k]
        if text in "([":
            depth += 1
        elif text in ")]":
            depth -= 1
        elif text == "," and depth == 0:
            found.append(tuple(tokens[begin:k]))
            begin = k + 1
    if end > begin:
        found.append(tuple(tokens[begin:end]))
    return tuple(found)


def _body_statements(tokens: list[str], start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) token ranges of the statements of a gate body, nested braces flattened."""
    spans: list[tuple[int, int]] = []
    begin = start
    for i in range(start, end):
        text = tokens[i]
        if text in ";{}":
            if i > begin:
                spans.append((begin, i))
            begin = i + 1
    if end > begin:
        spans.append((begin, end))
    return spans


def _add_call(
    gate: GateDefinition,
    table: dict[str, GateDefinition],
    tokens: list[str],
    span: tuple[int, int],
) -> None:
    start, end = span
    i, modifiers = skip_modifiers(tokens, start, end)
    if i >= end:
        return
    callee = tokens[i]
    i += 1
    arguments: tuple[tuple[str, ...], ...] = ()
    if i < end and tokens[i] == "(":
        close = matching(tokens, i, "(", ")")
        arguments = split_arguments(tokens, i + 1, close - 1)
        i = close
    gate.calls.append((callee, arguments))
    qubits = count_arguments(tokens, i, end)
    if callee in _PHASE_ONLY:
        return
    known = table.get(callee)
    if callee == gate.name:
        gate.problems.append(f"gate {gate.name!r} calls itself")
        return
    if known is not None:
        if known.opaque:
            gate.problems.append(f"calls opaque gate {callee!r}")
            return
        gate.modified_custom_calls.extend((m, callee) for m in modifiers if m != "inv")
        gate.expanded_size = min(SATURATION, gate.expanded_size + known.expanded_size)
        gate.expanded_multi_qubit = min(
            SATURATION, gate.expanded_multi_qubit + known.expanded_multi_qubit
        )
        gate.depth = max(gate.depth, known.depth + 1)
        gate.leaf_gates |= known.leaf_gates
        return
    gate.expanded_size = min(SATURATION, gate.expanded_size + 1)
    if qubits >= 2 and callee != "barrier":
        gate.expanded_multi_qubit = min(SATURATION, gate.expanded_multi_qubit + 1)
    gate.leaf_gates.add(qiskit_name(callee))


def analyse_definitions(tokens: list[str], offsets: list[int]) -> DefinitionTable:
    """Every ``gate`` and ``opaque`` declaration, measured in source order."""
    table: dict[str, GateDefinition] = {}
    i, n = 0, len(tokens)
    while i < n:
        text = tokens[i]
        if text not in ("gate", "opaque") or i + 1 >= n:
            i += 1
            continue
        name = tokens[i + 1]
        gate = GateDefinition(name=name, offset=offsets[i], opaque=text == "opaque")
        if gate.opaque:
            while i < n and tokens[i] != ";":
                i += 1
            table[name] = gate
            continue
        if i + 2 < n and tokens[i + 2] == "(":
            close = matching(tokens, i + 2, "(", ")")
            gate.parameters = [t for t in tokens[i + 3 : close - 1] if t != ","]
        body = i + 2
        while body < n and tokens[body] != "{":
            body += 1
        end = matching(tokens, body, "{", "}")
        for span in _body_statements(tokens, body + 1, max(body + 1, end - 1)):
            _add_call(gate, table, tokens, span)
        if name in table:
            gate.problems.append(f"gate {name!r} is defined twice")
        table[name] = gate
        i = end
    return DefinitionTable(table)
