"""Qiskit's OpenQASM 3 importer, with conditions over bit logic.

``qiskit.qasm3.loads`` is ``qiskit_qasm3_import.parse``: the reference ANTLR parser, then a
converter whose conditions are limited to ``bit == bool`` and ``register == int``. Circuits
that Qiskit itself exports with ``qasm3.dumps`` use more: a feed-forward on the parity of two
measurements comes out as ``if ((m[0] ^ m[1]) == true)`` (MQT Bench's ``ghz_dynamic`` is one),
and the converter refuses it. This subclass builds such conditions as Qiskit classical
expressions (which ``if_test`` and Aer take) and leaves every other condition, and everything
else, to the converter as it is.
"""

from __future__ import annotations

from typing import Any

import openqasm3
from openqasm3 import ast
from qiskit.circuit import Clbit, QuantumCircuit
from qiskit.circuit.classical import expr
from qiskit_qasm3_import import ConversionError
from qiskit_qasm3_import.converter import ConvertVisitor
from qiskit_qasm3_import.expression import ValueResolver

_BINARY = {
    "^": expr.bit_xor,
    "&": expr.bit_and,
    "|": expr.bit_or,
    "&&": expr.logic_and,
    "||": expr.logic_or,
    "==": expr.equal,
    "!=": expr.not_equal,
}
_LOGIC = frozenset(_BINARY) - {"==", "!="}
_UNARY = {"!": expr.logic_not, "~": expr.bit_not}


def _uses_logic(node: ast.Expression) -> bool:
    """Whether a condition combines bits with logic operators (beyond what the converter
    reads: one comparison, or one negated bit)."""
    if isinstance(node, ast.BinaryExpression):
        return node.op.name in _LOGIC or _uses_logic(node.lhs) or _uses_logic(node.rhs)
    if isinstance(node, ast.UnaryExpression):
        return _uses_logic(node.expression)
    return False


class _Converter(ConvertVisitor):
    def _resolve_condition(self, node: ast.Expression, context: Any) -> Any:
        if not _uses_logic(node):
            return super()._resolve_condition(node, context)
        return _BitLogic(context).build(node)


class _BitLogic:
    """A condition over single bits and boolean literals, as a Qiskit classical expression."""

    def __init__(self, context: Any) -> None:
        self.values = ValueResolver(context, strict=True)

    def build(self, node: ast.Expression) -> expr.Expr:
        if isinstance(node, ast.BinaryExpression) and node.op.name in _BINARY:
            return _BINARY[node.op.name](self.build(node.lhs), self.build(node.rhs))
        if isinstance(node, ast.UnaryExpression) and node.op.name in _UNARY:
            return _UNARY[node.op.name](self.build(node.expression))
        if isinstance(node, ast.BooleanLiteral):
            return expr.lift(node.value)
        value, _ = self.values.visit(node)
        if not isinstance(value, Clbit):
            raise ConversionError(
                f"{_position(node)}conditions combine single bits and true/false, not "
                f"{type(node).__name__}"
            )
        return expr.lift(value)


def _position(node: ast.QASMNode) -> str:
    span = node.span
    return f"{span.start_line},{span.start_column}: " if span is not None else ""


def loads(source: str) -> QuantumCircuit:
    """The circuit, as ``qiskit.qasm3.loads(source)`` builds it where that succeeds.

    Raises ``openqasm3.parser.QASM3ParsingError`` for what is not OpenQASM 3 and
    ``ConversionError`` for what the converter cannot represent."""
    return _Converter().convert(openqasm3.parse(source)).circuit


def unsupported(exc: BaseException) -> bool:
    """Whether `loads` refused valid OpenQASM 3 that the converter cannot represent."""
    return isinstance(exc, ConversionError)
