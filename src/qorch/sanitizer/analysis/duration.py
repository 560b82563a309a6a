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

from ..passbase import KeywordAnalysisPass
from ..timing import TargetTiming
from .blocks import _iterations
from .delays import delay_seconds

#: property_set key written by :class:`EstimateDuration`: ``float`` seconds.
DURATION = "sanitizer_duration_seconds"
#: Operations whose duration depends on more than their name.
_VARIABLE = frozenset({"delay", "u0", "mcx", "barrier"})


class EstimateDuration(KeywordAnalysisPass):
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
        qubits = {bit: i for i, bit in enumerate(dag.qubits)}
        clbits = {bit: i + len(qubits) for i, bit in enumerate(dag.clbits)}
        clock = [0.0] * (len(qubits) + len(clbits))
        # Durations of gates whose name fixes them and that touch no bits; the rest are
        # worked out per node.
        by_name: dict[str, float] = {}
        known = by_name.get
        for node in dag.op_nodes():  # circuit order, which is a topological order
            qargs = node.qargs
            duration = known(node.name)
            if duration is not None:
                # Fast paths: almost every node is a one- or two-qubit gate.
                if len(qargs) == 1:
                    clock[qubits[qargs[0]]] += duration
                    continue
                if len(qargs) == 2:
                    i, j = qubits[qargs[0]], qubits[qargs[1]]
                    start = clock[i] if clock[i] > clock[j] else clock[j]
                    clock[i] = clock[j] = start + duration
                    continue
            cargs = node.cargs
            indices = [qubits[b] for b in qargs] + [clbits[b] for b in cargs]
            start = max((clock[i] for i in indices), default=0.0)
            name = node.name
            if name == "barrier":
                duration = 0.0
            elif node.is_control_flow():
                duration = self._control_flow_ns(node)
            elif duration is None:
                duration = self._gate_ns(node)
                if name not in _VARIABLE and not cargs:
                    by_name[name] = duration
            for i in indices:
                clock[i] = start + duration
        return max(clock, default=0.0)

    def run(self, dag: DAGCircuit) -> None:
        self.property_set[DURATION] = self._makespan_ns(dag) * 1e-9
