"""The pre-checks read the source exactly as the parser will.

Every pre-parse rule looks at a scan of the text in which comments and strings are blanked.
Wherever the scan and the parser disagree on where a line, a comment or a string ends, text
the parser reads as code escapes every pre-check. These tests hide hostile statements behind
each kind of line break, comment and string, in both OpenQASM versions, and check that they
are refused by the rule that guards them (or that the source is refused as a whole).
"""

from __future__ import annotations

import pytest

from qorch.sanitizer import SanitizerPolicy, sanitize
from qorch.sanitizer.catalog import EXPRESSION_SIZE, LEXICAL
from qorch.sanitizer.prechecks.qs003_lexical import normalise_newlines

from .sources import QASM2, QASM3, denied_by, doubling_chain

#: Statements the pre-checks must see, with the rule that refuses each.
HIDDEN_3 = {
    "qubit[1000000000] q2;": "QS006",
    "ctrl(39) @ x q[0], q[1];": "QS205",
    "pow(0.5) @ x q[0];": "QS205",
    'include "/etc/passwd";': "QS203",
}
HIDDEN_2 = {
    "qreg r[1000000000];": "QS006",
    'include "/etc/passwd";': "QS203",
    "h q[99999999999999999999];": "QS005",
}
#: Everything some reader may take for the end of a line.
BREAKS = ["\r", "\r\n", "\n\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]
#: Ways to open something a scanner might think runs on past the break.
OPENERS = ["// x", "//", '// "', "// /*", "/* */ // x", '// x "a"']


#: (program around the hidden statement, hidden statement, the rule that guards it)
CASES = [
    (QASM3 + "qubit[2] q;\nbit[2] c;\n{}\nc = measure q;\n", hidden, rule)
    for hidden, rule in HIDDEN_3.items()
] + [
    (QASM2 + "qreg q[2];\ncreg c[2];\n{}\nmeasure q -> c;\n", hidden, rule)
    for hidden, rule in HIDDEN_2.items()
]


@pytest.mark.parametrize(
    ("program", "hidden", "guard", "opener", "brk"),
    [(*case, opener, brk) for case in CASES for opener in OPENERS for brk in BREAKS],
)
def test_a_line_break_cannot_end_a_comment_for_the_parser_only(
    program: str, hidden: str, guard: str, opener: str, brk: str
) -> None:
    result = sanitize(program.format(opener + brk + hidden))

    assert not result.report.accepted
    refused = {guard, LEXICAL}
    if program.startswith(QASM2) and "/*" in opener:
        refused.add("QS001")  # OpenQASM 2 has no block comments: the parser refuses them
    assert refused & denied_by(result), result.report.violations


def test_a_hidden_doubling_chain_is_refused_before_expansion() -> None:
    chain = doubling_chain(30).removeprefix(QASM2 + "qreg q[2];\n")
    source = QASM2 + "qreg q[2];\n// x\r" + chain.replace("\n", "\r")

    result = sanitize(source)

    assert "QS202" in denied_by(result), result.report.violations


@pytest.mark.parametrize("brk", ["\r", "\r\n"])
def test_carriage_returns_are_ordinary_line_ends(brk: str) -> None:
    source = (QASM3 + "qubit[2] q;\nbit[2] c;\n// a comment\nh q[0];\ncx q[0], q[1];\n").replace(
        "\n", brk
    ) + "c = measure q;"

    result = sanitize(source)

    assert result.report.accepted, result.report.violations
    assert result.circuit is not None and result.circuit.count_ops() == {
        "h": 1,
        "cx": 1,
        "measure": 2,
    }


def test_lines_are_counted_the_same_after_normalising() -> None:
    source = QASM3 + "qubit[2] q;\r\nbit[2] c;\rpow(2) @ x q[0];\n"

    result = sanitize(source)

    assert [v.location.line for v in result.report.violations if v.rule == "QS205"] == [5]


def test_normalising_turns_every_carriage_return_into_one_newline() -> None:
    assert normalise_newlines("a\r\nb\rc\n\rd") == "a\nb\nc\n\nd"
    text = "no carriage return here\n"
    assert normalise_newlines(text) is text


@pytest.mark.parametrize(
    "body",
    [
        "rz(" + "-" * 60_000 + "1) q[0];",
        "rz(" + "- " * 20_000 + "1) q[0];",
        "rz(" + "~!" * 10_000 + "1) q[0];",
        "rz(" + "+".join(["1"] * 20_000) + ") q[0];",
        "rz(" + "*".join(["1"] * 300) + ") q[0];",
        "x q[" + "0+" * 2_000 + "0];",
    ],
    ids=["unary-chain", "spaced-unary-chain", "mixed-prefix", "sum", "product", "index"],
)
@pytest.mark.parametrize("header", [QASM2 + "qreg q[2];\ncreg c[2];\n", QASM3 + "qubit[2] q;\n"])
def test_long_expressions_are_refused_before_the_parser(body: str, header: str) -> None:
    result = sanitize(header + body + "\n", SanitizerPolicy(max_qasm3_tokens=1_000_000))

    assert EXPRESSION_SIZE in denied_by(result), result.report.violations


def test_controls_add_up_along_a_modifier_chain() -> None:
    qubits = ", ".join(f"q[{i}]" for i in range(21))
    source = QASM3 + "qubit[21] q;\nbit[1] c;\n" + "ctrl @ " * 20 + f"x {qubits};\n"

    result = sanitize(source)

    assert "QS205" in denied_by(result)
    assert "20 controls" in result.report.violations[0].message


def test_many_short_statements_are_bounded_by_tokens_not_bytes() -> None:
    body = "rz(1+1+1+1+1+1+1+1) q[0];\n" * 2_000  # 56 kB, under the byte limit

    result = sanitize(QASM3 + "qubit[1] q;\n" + body)

    assert "QS002" in denied_by(result)
    assert "tokens" in result.report.violations[0].message


@pytest.mark.parametrize(
    "statement",
    [
        "negctrl @ x q[0], q[1];",
        "ctrl @ s q[0], q[1];",
        "ctrl @ t q[0], q[1];",
        "ctrl(2) @ z q[0], q[1], q[2];",
        "ctrl @ gphase(0.3) q[0];",
        "ctrl @ ccx q[0], q[1], q[2], q[3];",
        "negctrl @ h q[0], q[1];",
        "inv @ ctrl @ sdg q[0], q[1];",
        "ctrl @ negctrl @ x q[0], q[1], q[2];",
    ],
)
def test_standard_gates_with_modifiers_are_judged_by_what_they_are(statement: str) -> None:
    source = QASM3 + "qubit[4] q;\nbit[4] c;\nh q;\n" + statement + "\nc = measure q;\n"

    result = sanitize(source)

    assert result.report.accepted, result.report.violations


def test_a_modified_gate_is_refused_when_what_it_is_is_not_allowed() -> None:
    source = QASM3 + "qubit[2] q;\nbit[2] c;\nctrl @ s q[0], q[1];\nc = measure q;\n"
    policy = SanitizerPolicy(allowed_gates=["h", "x", "cx", "measure"])

    result = sanitize(source, policy)

    assert "QS201" in denied_by(result)
    assert "'cs'" in result.report.violations[0].message


def test_control_flow_nested_in_a_for_loop_is_checked() -> None:
    source = QASM3 + (
        "qubit[2] q;\nbit[2] c;\n"
        "for int i in [0:2] { for int j in [0:2] { x q[0]; } }\n"
        "for int i in [0:1] { h q[0]; if (c[0]) { x q[1]; } }\n"
        "c = measure q;\n"
    )

    result = sanitize(source)

    assert result.report.accepted, result.report.violations
