"""Hostile sources are refused cheaply, with a rule id, before the parser can suffer them."""

from __future__ import annotations

import resource
import time

import pytest

from qorch.sanitizer import SanitizerPolicy, sanitize

from .sources import QASM2, QASM3, denied_by, doubling_chain, qasm2, qasm3

#: A correctness bound, not a benchmark: each refusal takes milliseconds on a quiet machine.
SECONDS = 1.0
#: Peak memory may grow by at most this much over the whole module.
MEGABYTES = 150
#: Room for large OpenQASM 3 sources, so that the rule under test, not QS002, refuses them.
ROOMY = SanitizerPolicy(max_qasm3_source_bytes=1_000_000, max_qasm3_tokens=2_000_000)

HOSTILE: dict[str, tuple[str, str]] = {
    "a billion-qubit register (OpenQASM 2)": (QASM2 + "qreg q[1000000000];\nh q[0];\n", "QS006"),
    "a billion-qubit register (OpenQASM 3)": (QASM3 + "qubit[1000000000] q;\nh q[0];\n", "QS006"),
    "a register sized by an expression": (QASM3 + "const int n = 1000;\nqubit[n] q;\n", "QS006"),
    "a physical qubit a billion away": (QASM3 + "h $1000000000;\n", "QS006"),
    "gates doubling 40 times (2**40 operations)": (doubling_chain(40), "QS202"),
    "100k nested parentheses (OpenQASM 2)": (
        qasm2("U(" + "(" * 100_000 + "1" + ")" * 100_000 + ", 0, 0) q[0];\n"),
        "QS004",
    ),
    "100k nested parentheses (OpenQASM 3)": (
        qasm3("rz(" + "(" * 100_000 + "1" + ")" * 100_000 + ") q[0];\n"),
        "QS004",
    ),
    "100k nested blocks": (qasm3("if (c[0]) { " * 50_000 + "x q[0];" + " }" * 50_000), "QS004"),
    "a NaN angle": (qasm3("rz(1e308 * 10 - 1e308 * 10) q[0];\nc = measure q;\n"), "QS204"),
    "an infinite angle": (qasm2("U(1e400, 0, 0) q[0];\nmeasure q -> c;\n"), "QS204"),
    "the word nan as an angle": (qasm2("U(nan, 0, 0) q[0];\n"), "QS001"),
    "an integer beyond 64 bits as an angle": (
        qasm2("U(100000000000000000000000, 0, 0) q[0];\n"),
        "QS005",
    ),
    "an integer beyond 64 bits as an index": (qasm2("h q[99999999999999999999];\n"), "QS005"),
    "a 100k-digit integer": (qasm2("h q[" + "9" * 100_000 + "];\n"), "QS005"),
    "an unterminated string": ('OPENQASM 2.0;\ninclude "qelib1.inc;\nqreg q[1];\n', "QS003"),
    "an unterminated block comment": (qasm2("/* h q[0];\n"), "QS003"),
    "a NUL byte": (qasm2("h q[0];\x00\n"), "QS003"),
    "an include of a system file": ('OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n', "QS203"),
    "broadcast over a wide register 20k times": (
        QASM2 + "qreg q[128];\n" + "h q;\n" * 20_000,
        "QS007",
    ),
    "a dense matrix power": (qasm3("pow(0.5) @ x q[0];\n"), "QS205"),
    "fifty control qubits": (qasm3("ctrl(50) @ x q[0], q[1];\n"), "QS205"),
    "a while loop": (qasm3("c[0] = measure q[0];\nwhile (c[0] == false) { x q[0]; }\n"), "QS301"),
    "a for loop over a billion indices": (
        qasm3("for int i in [0:1000000000] { h q[0]; }\n"),
        "QS302",
    ),
    "a megabyte of comments": (qasm2("// x\n" * 300_000), "QS002"),
    "an unknown version": ("OPENQASM 4.0;\nqubit q;\n", "QS001"),
    "an empty source": ("", "QS001"),
}


@pytest.fixture(scope="module")
def peak_memory() -> object:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < MEGABYTES, f"peak memory grew by {grown_mb:.0f} MB"


@pytest.mark.usefixtures("peak_memory")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_source_is_refused_quickly_with_its_rule(name: str) -> None:
    source, rule = HOSTILE[name]

    start = time.perf_counter()
    result = sanitize(source, ROOMY)
    elapsed = time.perf_counter() - start

    assert not result.report.accepted
    assert rule in denied_by(result), result.report.violations
    assert elapsed < SECONDS, f"{elapsed:.2f} s"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_sources_refused_before_or_at_parsing_yield_no_circuit(name: str) -> None:
    source, rule = HOSTILE[name]
    result = sanitize(source, ROOMY)

    if rule.startswith("QS0") or rule in ("QS202", "QS203", "QS205"):
        assert result.circuit is None
    else:
        assert result.circuit is not None


def test_openqasm3_sources_too_long_to_parse_quickly_are_refused_unread() -> None:
    start = time.perf_counter()
    result = sanitize(qasm3("h q[0];\n" * 10_000))

    assert denied_by(result) == {"QS002"}
    assert "maxQasm3SourceBytes" in result.report.violations[0].message
    assert time.perf_counter() - start < SECONDS


def test_parser_errors_carry_the_parsers_message_and_line() -> None:
    result = sanitize(qasm2("h q[0];\nfoo q[1];\n"))
    (violation,) = result.report.violations

    assert violation.rule == "QS001"
    assert "foo" in violation.message
    assert violation.location.line == 6


def test_openqasm3_syntax_errors_name_the_offending_token() -> None:
    result = sanitize(QASM3 + "qubit q;\nh q q;\n")
    (violation,) = result.report.violations

    assert violation.rule == "QS001"
    assert violation.location.line == 4


def test_non_text_input_is_refused_not_raised() -> None:
    result = sanitize(b"OPENQASM 2.0;")  # type: ignore[arg-type]

    assert [v.rule for v in result.report.violations] == ["QS001"]
