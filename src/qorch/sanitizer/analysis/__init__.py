"""Analysis passes the rules share (measurements, not verdicts), each with its property_set key."""

from .blocks import BLOCKS, Block, ControlFlowBlocks
from .delays import DELAYS, DelayTotals, SumDelays
from .duration import DURATION, EstimateDuration
from .measurements import MID_CIRCUIT, FindMidCircuitOperations, MidCircuitOperations
from .multi_qubit import MULTI_QUBIT_GATE_COUNT, CountMultiQubitGates

__all__ = [
    "BLOCKS",
    "DELAYS",
    "DURATION",
    "MID_CIRCUIT",
    "MULTI_QUBIT_GATE_COUNT",
    "Block",
    "ControlFlowBlocks",
    "CountMultiQubitGates",
    "DelayTotals",
    "EstimateDuration",
    "FindMidCircuitOperations",
    "MidCircuitOperations",
    "SumDelays",
]
