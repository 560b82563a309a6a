"""Interval arithmetic over the angle expressions of custom gate bodies.

To show that no call of a custom gate produces a NaN, infinite or out-of-range angle inside
its definition, evaluate each body expression once over the range of values its parameters
take at the call sites, instead of building the definition of every call. Only what is
common in gate bodies is understood: numbers, pi/tau/euler, parameters, + - * /, sin and
cos. Anything else raises :class:`Unsupported`, and the caller falls back to expanding each
call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Interval = tuple[float, float]

_CONSTANTS: dict[str, float] = {
    "pi": math.pi,
    "π": math.pi,
    "tau": math.tau,
    "τ": math.tau,
    "euler": math.e,
    "ℇ": math.e,
}
_BOUNDED_FUNCTIONS: dict[str, Interval] = {
    "sin": (-1.0, 1.0),
    "cos": (-1.0, 1.0),
    "atan": (-math.pi / 2, math.pi / 2),
    "arctan": (-math.pi / 2, math.pi / 2),
}


class Unsupported(ValueError):
    """The expression uses something the interval evaluation does not cover."""


def _multiply(a: Interval, b: Interval) -> Interval:
    products = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    if any(math.isnan(p) for p in products):  # 0 * inf
        raise Unsupported("indeterminate product")
    return min(products), max(products)


def _divide(a: Interval, b: Interval) -> Interval:
    if b[0] <= 0 <= b[1]:
        raise Unsupported("the divisor may be zero")
    return _multiply(a, (1 / b[1], 1 / b[0]))


class _Evaluator:
    def __init__(self, tokens: Sequence[str], env: Mapping[str, Interval]) -> None:
        self.tokens = tokens
        self.env = env
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise Unsupported("the expression ends early")
        self.i += 1
        return token

    def expression(self) -> Interval:
        value = self.term()
        while self.peek() in ("+", "-"):
            right = self.term() if self.take() == "+" else self.negated(self.term())
            value = (value[0] + right[0], value[1] + right[1])
        return value

    def term(self) -> Interval:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.unary()
            value = _multiply(value, right) if op == "*" else _divide(value, right)
        return value

    @staticmethod
    def negated(value: Interval) -> Interval:
        return -value[1], -value[0]

    def unary(self) -> Interval:
        if self.peek() == "-":
            self.take()
            return self.negated(self.unary())
        if self.peek() == "+":
            self.take()
            return self.unary()
        value = self.atom()
        if self.peek() in ("^", "**"):
            raise Unsupported("powers")
        return value

    def atom(self) -> Interval:
        token = self.take()
        if token == "(":
            value = self.expression()
            if self.take() != ")":
                raise Unsupported("unbalanced parentheses")
            return value
        if token in self.env:
            return self.env[token]
        if token in _CONSTANTS:
            return _CONSTANTS[token], _CONSTANTS[token]
        if token in _BOUNDED_FUNCTIONS and self.peek() == "(":
            self.take()
            self.expression()  # any finite argument gives a value in the range
            if self.take() != ")":
                raise Unsupported("unbalanced parentheses")
            return _BOUNDED_FUNCTIONS[token]
        try:
            number = float(token.replace("_", ""))
        except ValueError:
            raise Unsupported(f"{token!r}") from None
        return number, number


def evaluate(tokens: Sequence[str], env: Mapping[str, Interval]) -> Interval:
    """The range of the expression ``tokens`` when each parameter ranges over ``env``."""
    evaluator = _Evaluator(tokens, env)
    value = evaluator.expression()
    if evaluator.peek() is not None:
        raise Unsupported("trailing tokens")
    return value


def hull(a: Interval | None, b: Interval) -> Interval:
    """The smallest interval holding both."""
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))
