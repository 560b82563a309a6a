"""Estimate how long a circuit runs on the target: the critical path over gate times.

Every operation starts when all its qubits (and the bits it reads) are free; the estimate is
when the last one ends. Multi-qubit standard gates beyond two qubits count as their usual
decomposition (a Toffoli is six two-qubit and nine single-qubit gates per extra control);
custom gates count as their expansion played serially; a control-flow operation takes its
longest branch, a for loop its body times its iterations, a while loop its body once.
"""

from __future__ import annotations

from collections.abc import Mapping

from qiskit.converters import circuit_to_dag
from qiskit.dagcircuit import DAGCircuit, DAGOpNode
from qiskit.transpiler.basepasses import AnalysisPass

from ..timing import TargetTiming
from .blocks import _iterations
from .delays import delay_seconds

#: property_set key written by :class:`EstimateDuration`: ``float`` seconds.
DURATION = "sanitizer_duration_seconds"


class EstimateDuration(AnalysisPass):
    """Critical-path duration in seconds from the target's gate times."""

    def __init__(
        self, *, timing: TargetTiming, expansions: Mapping[str, tuple[int, int]] | None = None
    ) -> None:
        """
        Args:
            timing: gate times; all of single-qubit, two-qubit and measure must be known.
            expansions: custom gate name -> (operations, multi-qubit operations) it expands to.
        """
        super().__init__()
        self.timing = timing
        self.expansions = dict(expansions or {})

    def _gate_ns(self, node: DAGOpNode) -> float:
        one = self.timing.single_qubit_gate_ns or 0.0
        two = self.timing.two_qubit_gate_ns or 0.0
        name = node.name
        if name in ("measure", "reset"):
            return self.timing.measure_ns or 0.0
        if name == "delay":
            return (delay_seconds(node, self.timing.dt_ns) or 0.0) * 1e9
        expansion = self.expansions.get(name)
        if expansion is not None:
            size, multi = expansion
            return (size - multi) * one + multi * two
        if name == "u0":
            try:
                return max(0.0, float(node.op.params[0])) * one
            except (TypeError, ValueError):
                return one
        qubits = len(node.qargs)
        if qubits <= 1:
            return one
        if qubits == 2:
            return two
        return (qubits - 2) * (6 * two + 9 * one)

    def _control_flow_ns(self, node: DAGOpNode) -> float:
        op = node.op
        bodies = [self._makespan_ns(circuit_to_dag(b, copy_operations=False)) for b in op.blocks]
        longest = max(bodies, default=0.0)
        if op.name == "for_loop":
            return longest * _iterations(op.params[0])
        return longest

    def _makespan_ns(self, dag: DAGCircuit) -> float:
        wires = {bit: i for i, bit in enumerate((*dag.qubits, *dag.clbits))}
        clock = [0.0] * len(wires)
        cache: dict[tuple[str, int], float] = {}
        for node in dag.op_nodes():
            indices = [wires[b] for b in node.qargs]
            indices += [wires[b] for b in node.cargs]
            start = max((clock[i] for i in indices), default=0.0)
            name = node.name
            if name == "barrier":
                duration = 0.0
            elif node.is_control_flow():
                duration = self._control_flow_ns(node)
            elif name in ("delay", "u0"):
                duration = self._gate_ns(node)
            else:
                key = (name, len(node.qargs))
                duration = cache.get(key, -1.0)
                if duration < 0:
                    duration = cache[key] = self._gate_ns(node)
            end = start + duration
            for i in indices:
                clock[i] = end
        return max(clock, default=0.0)

    def run(self, dag: DAGCircuit) -> None:
        self.property_set[DURATION] = self._makespan_ns(dag) * 1e-9
