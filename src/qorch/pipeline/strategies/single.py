"""`single`: the whole circuit on one node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api.distributed_job import Placement, Plan, Program
from qorch.planner.observables import MeasurementBasis
from qorch.planner.strategies import Candidate, estimate_single

from .base import Context, Shape, Strategy
from .sampled import PROGRAM_ID, SampledWork, measurement_bases_of, single_node_owners


@dataclass(frozen=True)
class SingleWork(SampledWork):
    circuit: QuantumCircuit
    node: str
    bases: tuple[MeasurementBasis, ...] = ()

    def program_circuits(self) -> list[QuantumCircuit]:
        return [self.circuit, *(b.circuit for b in self.bases)]

    def counts(self, raw: Mapping[str, int]) -> dict[str, int]:
        return dict(raw)

    def qubit_owners(self, plan: Plan) -> list[str]:
        return [self.node] * self.circuit.num_qubits

    def clbit_owners(self, plan: Plan) -> dict[int, str]:
        return single_node_owners(self.circuit, self.node)


class Single(Strategy):
    name = "single"
    preference = 0
    estimator = estimate_single

    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        assert isinstance(candidate.plan, str)
        node = candidate.plan
        return Shape(
            placement=[Placement(node=node, qubits=list(range(circuit.num_qubits)))],
            programs=[Program(id=PROGRAM_ID, node=node, shots=shots, note="whole circuit")],
        )

    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> SingleWork:
        assert isinstance(candidate.plan, str)
        return self._work(candidate.plan, circuit, context)

    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> SingleWork:
        return self._work(plan.programs[0].node, circuit, context)

    @staticmethod
    def _work(node: str, circuit: QuantumCircuit, context: Context) -> SingleWork:
        return SingleWork(circuit, node, measurement_bases_of(circuit, context.observables))
