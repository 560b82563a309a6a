"""Angles inside custom gates: interval arithmetic proves most safe; the rest are expanded."""

from __future__ import annotations

import math

import pytest

from qorch.sanitizer import sanitize
from qorch.sanitizer.rules import ParameterBounds
from qorch.sanitizer.source.intervals import Unsupported, evaluate

from .sources import denied_by, qasm2, qasm3

SCALE = "gate scale(a) x { rz(a * 3) x; }\n"
NESTED = SCALE + "gate twice(b) x { scale(b * 2) x; h x; }\n"


@pytest.mark.parametrize(
    ("tokens", "env", "expected"),
    [
        (["a", "*", "3"], {"a": (-1.0, 2.0)}, (-3.0, 6.0)),
        (["-", "a", "+", "pi", "/", "2"], {"a": (0.0, 1.0)}, (math.pi / 2 - 1, math.pi / 2)),
        (["a", "*", "b"], {"a": (-2.0, 3.0), "b": (-1.0, 4.0)}, (-8.0, 12.0)),
        (["sin", "(", "a", "*", "1e9", ")"], {"a": (-5.0, 5.0)}, (-1.0, 1.0)),
        (["(", "(", "a", ")", ")"], {"a": (1.0, 1.0)}, (1.0, 1.0)),
    ],
)
def test_interval_arithmetic(tokens: list[str], env: dict, expected: tuple) -> None:
    low, high = evaluate(tokens, env)

    assert low == pytest.approx(expected[0]) and high == pytest.approx(expected[1])


@pytest.mark.parametrize(
    "tokens", [["a", "^", "2"], ["1", "/", "a"], ["exp", "(", "a", ")"], ["a", "a"]]
)
def test_what_intervals_cannot_bound_is_left_to_expansion(tokens: list[str]) -> None:
    with pytest.raises(Unsupported):
        evaluate(tokens, {"a": (-1.0, 1.0)})


def test_scaled_angles_within_the_limit_are_accepted_without_expanding_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_expansion(*_: object) -> None:
        raise AssertionError("a definition was expanded")

    monkeypatch.setattr(ParameterBounds, "_definition_problem", no_expansion)
    result = sanitize(qasm2(SCALE + "scale(0.5) q[0];\nscale(300) q[1];\nmeasure q -> c;\n"))

    assert result.report.accepted, result.report.violations


def test_scaled_angles_beyond_the_limit_are_refused() -> None:
    result = sanitize(qasm2(SCALE + "scale(0.5) q[0];\nscale(400) q[1];\nmeasure q -> c;\n"))

    assert denied_by(result) == {"QS204"}
    assert result.report.violations[0].location.instruction == 1


def test_angles_scale_through_nested_custom_gates() -> None:
    safe = sanitize(qasm2(NESTED + "twice(100) q[0];\nmeasure q -> c;\n"))
    unsafe = sanitize(qasm2(NESTED + "twice(200) q[0];\nmeasure q -> c;\n"))

    assert safe.report.accepted
    assert denied_by(unsafe) == {"QS204"}


def test_bodies_beyond_interval_arithmetic_are_checked_call_by_call() -> None:
    body = "gate square(a) x { rz(a ^ 2) x; }\n"

    assert sanitize(qasm2(body + "square(3) q[0];\nmeasure q -> c;\n")).report.accepted
    assert denied_by(sanitize(qasm2(body + "square(40) q[0];\n"))) == {"QS204"}


def test_openqasm3_custom_gates_are_checked_the_same_way() -> None:
    body = "gate scale(a) x { rz(a * 3) x; }\n"

    assert sanitize(qasm3(body + "scale(0.5) q[0];\nc = measure q;\n")).report.accepted
    assert denied_by(sanitize(qasm3(body + "scale(400) q[0];\nc = measure q;\n"))) == {"QS204"}
