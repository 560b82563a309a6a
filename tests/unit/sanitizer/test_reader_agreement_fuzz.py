"""Fuzzing the scan against the parser: generated sources mix statements with every kind of
line terminator, comment and string. Whenever the pre-checks pass and the parser accepts a
source, the scan must have seen the statements the parser read: the same qubits and bits, and a
statement walk that accounts for every instruction of the parsed circuit on the right line.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qorch.sanitizer import SanitizerPolicy
from qorch.sanitizer.parsing import ParseFailure, load
from qorch.sanitizer.prechecks import run_prechecks
from qorch.sanitizer.source.statements import instruction_lines

STATEMENTS_3 = [
    "qubit[2] a;",
    "qubit b;",
    "bit[3] m;",
    "h q[0];",
    "cx q[0], q[1];",
    "rz(-0.5) q[1];",
    "x q;",
    "c[0] = measure q[0];",
    "barrier q;",
    'include "stdgates.inc";',
    "if (c[0]) { x q[1]; }",
]
STATEMENTS_2 = [
    "qreg a[2];",
    "creg m[3];",
    "h q[0];",
    "cx q[0], q[1];",
    "rz(-0.5) q[1];",
    "x q;",
    "measure q[0] -> c[0];",
    "barrier q;",
    "if (c == 1) x q[1];",
]
BREAKS = [" ", "\t", "\n", "\r", "\r\n", "\n\r", "\x0c", "\x0b", "\u2028", "\x85"]
#: Text that may appear inside comments and strings: breaks, quotes, comment markers and
#: statements that must stay hidden (or be seen) exactly as the parser sees them.
MARKERS = ['"', "'", "//", "/*", "*/", "*"]
HIDDEN = ["qubit[9] z;", "qreg z[9];", "x q[0];"]

inner_text = st.lists(
    st.one_of(st.sampled_from(BREAKS), st.sampled_from(MARKERS), st.sampled_from(HIDDEN)),
    max_size=5,
).map("".join)
comments = st.one_of(
    inner_text.map(lambda t: "//" + t),
    inner_text.map(lambda t: "/*" + t + "*/"),
    inner_text.map(lambda t: '"' + t + '"'),
    inner_text.map(lambda t: "'" + t + "'"),
)


def pieces(statements: list[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.one_of(st.sampled_from(statements), st.sampled_from(BREAKS), comments), max_size=14
    ).map("".join)


POLICY = SanitizerPolicy(max_qasm3_tokens=100_000)


def _agree(source: str) -> None:
    scan, found = run_prechecks(source, POLICY)
    if scan is None or found:
        return  # refused before the parser: nothing can have slipped past
    try:
        circuit = load(scan)
    except ParseFailure:
        return
    declared = {
        kind: sum(d.size or 0 for d in scan.declarations if d.kind == kind)
        for kind in ("qubit", "clbit")
    }
    parsed = {"qubit": circuit.num_qubits, "clbit": circuit.num_clbits}
    assert declared == parsed, (source, declared, parsed)
    lines = instruction_lines(scan, len(circuit.data))
    assert lines is not None, (source, circuit.data)


FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(pieces(STATEMENTS_3))
def test_scan_and_openqasm3_parser_read_the_same_statements(body: str) -> None:
    _agree('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n' + body)


@FUZZ
@given(pieces(STATEMENTS_2))
def test_scan_and_openqasm2_parser_read_the_same_statements(body: str) -> None:
    _agree('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n' + body)
