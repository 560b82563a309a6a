"""QS401 idle-probe: circuits that only wait and measure characterise the device (T1, T2,
readout, thermal population) rather than compute; ordinary tenants may not run them."""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.dagcircuit import DAGCircuit
from qiskit.transpiler.passes import CountOps

from ..analysis.blocks import BLOCKS, ControlFlowBlocks
from ..analysis.delays import DELAYS, SumDelays
from ..analysis.duration import DURATION, EstimateDuration
from ..catalog import IDLE_PROBE
from ..gates import CONTROL_FLOW, IDENTITY_AT_ZERO, IDLE_OPERATIONS
from ..timing import TargetTiming
from .base import SanitizerRule


class IdleProbe(SanitizerRule):
    """Refuse circuits with nothing but idling and measurement, and (when the duration is
    known) circuits where one qubit spends more than ``max_idle_fraction`` of it in delays."""

    rule_id = IDLE_PROBE

    def __init__(
        self,
        *,
        max_idle_fraction: float,
        timing: TargetTiming | None = None,
        expansions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """
        Args:
            max_idle_fraction: the largest share of the duration spent in delays.
            timing: gate times of the candidate nodes; without them only the first test runs.
            expansions: custom gate name -> (operations, multi-qubit operations).
        """
        super().__init__()
        self.max_idle_fraction = max_idle_fraction
        dt_ns = timing.dt_ns if timing else None
        self.requires = [CountOps(recurse=True), ControlFlowBlocks(), SumDelays(dt_ns=dt_ns)]
        if timing is not None and timing.gate_times_known:
            self.requires.append(EstimateDuration(timing=timing, expansions=expansions))

    def _only_idles(self) -> bool:
        names = set(self.property_set["count_ops"])
        if "measure" not in names:
            return False
        active = names - IDLE_OPERATIONS - CONTROL_FLOW - {"measure"}
        if not active <= IDENTITY_AT_ZERO:
            return False
        # OpenQASM 3's id is U(0, 0, 0): angles of zero leave the qubit alone too.
        return all(
            all(isinstance(p, int | float) and p == 0 for p in node.op.params)
            for block in self.property_set[BLOCKS]
            for name in active
            for node in block.dag.named_nodes(name)
        )

    def run(self, dag: DAGCircuit) -> None:
        if self._only_idles():
            self.report(
                "the circuit only idles and measures, which probes the device's noise "
                "(T1/T2/readout) rather than computing; such circuits are reserved for "
                "trusted tenants."
            )
            return
        duration = self.property_set[DURATION]
        idle = self.property_set[DELAYS].longest_per_qubit
        if duration and idle > self.max_idle_fraction * duration:
            self.report(
                f"a qubit spends {idle / duration:.0%} of the circuit's estimated duration in "
                f"delays; the limit (maxIdleFraction) is {self.max_idle_fraction:.0%}. Such "
                "circuits probe decoherence (T1/T2) and are reserved for trusted tenants."
            )
