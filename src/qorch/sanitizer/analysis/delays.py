"""Sum the delays of a circuit in seconds, for loops unrolled."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qiskit.dagcircuit import DAGCircuit, DAGOpNode

from ..passbase import KeywordAnalysisPass
from .blocks import BLOCKS, ControlFlowBlocks

#: property_set key written by :class:`SumDelays`: ``DelayTotals``.
DELAYS = "sanitizer_delays"

_SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}
#: Length of ``dt`` when the target does not say: 1 ns, longer than any current device's
#: sample time, so the total is an overestimate rather than an underestimate.
DEFAULT_DT_NS = 1.0


@dataclass
class DelayTotals:
    """Total delay, and delays whose duration is not a finite constant."""

    seconds: float = 0.0
    #: The most any one qubit spends in delays.
    longest_per_qubit: float = 0.0
    #: Top-level instruction indices of delays without a usable duration.
    unknown: list[int] = field(default_factory=list)


def delay_seconds(node: DAGOpNode, dt_ns: float | None) -> float | None:
    """Duration of one delay in seconds; None when it is not a finite non-negative constant."""
    op = node.op
    try:
        value = float(op.params[0])
    except (TypeError, ValueError, IndexError):
        return None
    unit = getattr(op, "unit", "dt")
    if unit == "dt":
        scale = (dt_ns if dt_ns is not None else DEFAULT_DT_NS) * 1e-9
    else:
        scale = _SECONDS_PER_UNIT.get(unit, math.nan)
    seconds = value * scale
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class SumDelays(KeywordAnalysisPass):
    """Total delay duration over every block, times the block's multiplicity."""

    def __init__(self, *, dt_ns: float | None = None) -> None:
        """
        Args:
            dt_ns: length of one ``dt`` sample; :data:`DEFAULT_DT_NS` when unknown.
        """
        super().__init__()
        self.dt_ns = dt_ns
        self.requires = [ControlFlowBlocks()]

    def run(self, dag: DAGCircuit) -> None:
        totals = DelayTotals()
        per_qubit: dict[object, float] = {}  # control-flow blocks share the circuit's bits
        for block in self.property_set[BLOCKS]:
            for node in block.dag.named_nodes("delay"):
                seconds = delay_seconds(node, self.dt_ns)
                if seconds is None:
                    totals.unknown.append(block.index_of(node))
                    continue
                totals.seconds += seconds * block.multiplicity
                for qubit in node.qargs:
                    per_qubit[qubit] = per_qubit.get(qubit, 0.0) + seconds * block.multiplicity
        totals.longest_per_qubit = max(per_qubit.values(), default=0.0)
        self.property_set[DELAYS] = totals
