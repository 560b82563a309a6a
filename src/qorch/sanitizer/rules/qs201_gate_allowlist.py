"""QS201 gate-allowlist."""

from __future__ import annotations

from collections.abc import Iterable

from qiskit.dagcircuit import DAGCircuit

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..catalog import GATE_ALLOWLIST
from ..gates import CONTROL_FLOW, allowlist_name
from .base import SanitizerRule


class GateAllowlist(SanitizerRule):
    """Every operation must be allowed by name (gates made with modifiers by what they are, see
    :func:`allowlist_name`), or be a custom gate the source defines (whose expansion QS202 has
    checked). Control flow is left to the QS3xx rules."""

    rule_id = GATE_ALLOWLIST

    def __init__(self, *, allowed: Iterable[str], custom: Iterable[str] = ()) -> None:
        """
        Args:
            allowed: operation names the policy allows.
            custom: names of the custom gates defined in the source.
        """
        super().__init__()
        self.allowed = frozenset(allowed)
        self.custom = frozenset(custom)
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        permitted = self.allowed | self.custom | CONTROL_FLOW
        reported: set[str] = set()
        for block in self.property_set[BLOCKS]:
            for name in block.dag.count_ops(recurse=False):
                if name in permitted or name in reported:
                    continue
                refused = [
                    node
                    for node in block.dag.named_nodes(name)
                    if allowlist_name(node.op) not in permitted
                ]
                if not refused:
                    continue
                reported.add(name)
                node = refused[0]
                self.report(
                    f"operation {name!r} is not in the allowed set. Use the standard gates of "
                    "qelib1.inc / stdgates.inc, define it with a gate statement in terms of "
                    "them, or ask for it to be added to extraGates.",
                    instruction=block.index_of(node),
                )
