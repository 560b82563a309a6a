"""Builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

from qorch.api import QuantumNode

REPO = Path(__file__).resolve().parent.parent


def make_node(name: str = "qpu", qubits: int = 8, **spec: object) -> QuantumNode:
    """A QuantumNode from its wire form, as a manifest would give it."""
    return QuantumNode.model_validate(
        {"metadata": {"name": name}, "spec": {"qubits": qubits, **spec}}
    )
