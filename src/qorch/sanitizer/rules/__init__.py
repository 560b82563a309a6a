"""The post-parse rules, one Qiskit analysis pass per module (see the package README)."""

from .base import VIOLATIONS, SanitizerRule
from .qs101_qubit_limit import QubitLimit
from .qs102_clbit_limit import ClbitLimit
from .qs103_shot_limit import ShotLimit
from .qs104_depth_limit import DepthLimit
from .qs105_gate_limit import EXPANDED_SIZE, GateLimit
from .qs106_two_qubit_gate_limit import TwoQubitGateLimit
from .qs107_mid_circuit_measurement_limit import MidCircuitMeasurementLimit
from .qs108_mid_circuit_reset_limit import MidCircuitResetLimit
from .qs201_gate_allowlist import GateAllowlist
from .qs204_parameter_bounds import ParameterBounds
from .qs301_while_loop import WhileLoop
from .qs302_for_loop_bound import ForLoopBound
from .qs303_conditional import Conditional
from .qs304_delay_limit import DelayLimit
from .qs305_coherence_budget import CoherenceBudget
from .qs401_idle_probe import IdleProbe
from .qs402_repeated_two_qubit_gate import RepeatedTwoQubitGate

__all__ = [
    "EXPANDED_SIZE",
    "VIOLATIONS",
    "ClbitLimit",
    "CoherenceBudget",
    "Conditional",
    "DelayLimit",
    "DepthLimit",
    "ForLoopBound",
    "GateAllowlist",
    "GateLimit",
    "IdleProbe",
    "MidCircuitMeasurementLimit",
    "MidCircuitResetLimit",
    "ParameterBounds",
    "QubitLimit",
    "RepeatedTwoQubitGate",
    "SanitizerRule",
    "ShotLimit",
    "TwoQubitGateLimit",
    "WhileLoop",
]
