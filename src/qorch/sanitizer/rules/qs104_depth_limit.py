"""QS104 depth-limit, on Qiskit's own ``Depth`` analysis."""

from __future__ import annotations

from qiskit.dagcircuit import DAGCircuit
from qiskit.transpiler.passes import Depth

from ..catalog import DEPTH_LIMIT
from .base import SanitizerRule


class DepthLimit(SanitizerRule):
    """The circuit's depth (for loops unrolled) may be at most ``max_depth``."""

    rule_id = DEPTH_LIMIT

    def __init__(self, *, max_depth: int) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.requires = [Depth(recurse=True)]

    def run(self, dag: DAGCircuit) -> None:
        depth = self.property_set["depth"]
        if depth > self.max_depth:
            self.report(
                f"the circuit is {depth} layers deep; the limit (maxDepth) is {self.max_depth}. "
                "Shorten it or run parts as separate jobs."
            )
