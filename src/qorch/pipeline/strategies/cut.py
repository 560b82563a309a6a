"""`cut`: circuit knitting; each node runs its subexperiments on its own agent, and the
expectation values (or, for a job without observables, the output distribution) are
reconstructed classically."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.agent_protocol import RunRequest
from qorch.api.distributed_job import JobResult, MitigatedResult, Plan, Program, Verification
from qorch.planner.cut_distribution import DistributionPlan, OutputRequest, plan_cut_distribution
from qorch.planner.cutting import CutPlan, plan_cut
from qorch.planner.strategies import Candidate, estimate_cut
from qorch.qpu.circuits import encode_circuit

from ..cut_distribution import aggregate_distribution
from ..mitigation import mitigate_cut
from ..planning import placement_of, recorded_partition
from ..verification import verify_expectations
from .base import Context, Reply, Returned, Shape, Strategy, Work

_PREFIX = "cut-"


@dataclass(frozen=True)
class CutWork(Work):
    circuit: QuantumCircuit
    knitting: CutPlan

    def payloads(self, shots: int, key: str) -> dict[str, RunRequest]:
        return {
            f"{_PREFIX}{node}": RunRequest(
                program_id=f"{key}/{_PREFIX}{node}",
                shots=shots,
                circuits=[encode_circuit(c) for c in subs],
            )
            for node, subs in self.knitting.subexperiments.items()
        }

    def _results(self, replies: Mapping[str, Reply]) -> dict[str, list[dict[str, int]]]:
        return {pid.removeprefix(_PREFIX): reply.runs for pid, reply in replies.items()}

    def aggregate(self, returned: Returned) -> JobResult:
        values, errors = self.knitting.reconstruct(self._results(returned.replies))
        return JobResult(
            expectation_values=[round(v, 6) for v in values],
            standard_errors=[round(e, 6) for e in errors],
            verification=self.verify(values, errors, returned.plan.estimated_fidelity),
        )

    def mitigate(self, returned: Returned, result: JobResult) -> MitigatedResult:
        fidelity = returned.plan.estimated_fidelity
        return mitigate_cut(
            self.knitting,
            returned.replies,
            returned.nodes,
            result,
            lambda values, errors: self.verify(values, errors, fidelity),
        )

    def verify(
        self, values: list[float], errors: list[float], estimated_fidelity: float | None
    ) -> Verification:
        return verify_expectations(
            self.circuit, self.knitting.observables, values, errors, estimated_fidelity
        )


@dataclass(frozen=True)
class CutDistributionWork(CutWork):
    """A cut without observables: the subexperiments measure every output qubit, and their
    joint outcomes are knitted into the output distribution (`cut_distribution`)."""

    verifies_by_statevector = True

    distribution: DistributionPlan
    output: OutputRequest
    max_bits: int

    def aggregate(self, returned: Returned) -> JobResult:
        return aggregate_distribution(
            self.distribution,
            self.circuit,
            self._results(returned.replies),
            self.output,
            returned.plan.estimated_fidelity,
            self.max_bits,
            returned.exact_or_failure,
        )

    def mitigate(self, returned: Returned, result: JobResult) -> MitigatedResult:
        return MitigatedResult(
            method="none; readout correction of a reconstructed distribution is not implemented"
        )


def _distribution_work(
    circuit: QuantumCircuit, plan: DistributionPlan, context: Context
) -> CutDistributionWork:
    request = context.output or OutputRequest()
    return CutDistributionWork(circuit, plan.knitting, plan, request, context.max_distribution_bits)


class Cut(Strategy):
    name = "cut"
    preference = 2
    estimator = estimate_cut

    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        knitting, part = candidate.plan, candidate.partition
        if isinstance(knitting, DistributionPlan):
            knitting = knitting.knitting
        assert isinstance(knitting, CutPlan) and part is not None
        return Shape(
            placement=placement_of(part),
            programs=[
                Program(
                    id=f"{_PREFIX}{n}",
                    node=n,
                    shots=shots,
                    note=f"{len(subs)} subexperiment(s) of the cut circuit, {shots} shots each",
                )
                for n, subs in sorted(knitting.subexperiments.items())
            ],
        )

    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> CutWork:
        if isinstance(candidate.plan, DistributionPlan):
            return _distribution_work(circuit, candidate.plan, context)
        assert isinstance(candidate.plan, CutPlan)
        return CutWork(circuit, candidate.plan)

    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> CutWork:
        part = recorded_partition(plan)
        overhead = context.max_sampling_overhead
        if not context.observables:
            request = context.output or OutputRequest()
            distribution = plan_cut_distribution(
                circuit, part, overhead, request, context.max_distribution_bits
            )
            return _distribution_work(circuit, distribution, context)
        return CutWork(circuit, plan_cut(circuit, context.observables, part, overhead))
