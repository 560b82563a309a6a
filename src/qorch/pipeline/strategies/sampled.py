"""Work that samples the whole circuit in one program: counts, and expectation values from
one more circuit per measurement basis sent in the same batch (single and teleport)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from qiskit import QuantumCircuit

from qorch.agent_protocol import RunRequest
from qorch.api.distributed_job import JobResult, MitigatedResult, Plan, Verification
from qorch.planner.circuits import measured_clbits
from qorch.planner.observables import (
    MeasurementBasis,
    expectation_values,
    first_bits,
    measurement_bases,
)
from qorch.qpu.circuits import encode_circuit

from ..mitigation import mitigate_bases, mitigate_counts
from ..verification import verify_counts
from .base import Reply, Returned, Work

#: The one program of a sampled plan.
PROGRAM_ID = "p0"


class SampledWork(Work):
    """One program on one agent: the circuit as the strategy writes it, then its bases."""

    circuit: QuantumCircuit
    bases: tuple[MeasurementBasis, ...]
    verifies_by_statevector = True

    @abstractmethod
    def program_circuits(self) -> list[QuantumCircuit]:
        """What the program runs: the circuit, then one circuit per basis, as sent."""

    @abstractmethod
    def counts(self, raw: Mapping[str, int]) -> dict[str, int]:
        """The program's counts of its first circuit over the job's clbits."""

    @abstractmethod
    def qubit_owners(self, plan: Plan) -> list[str]:
        """The node holding each of the circuit's qubits."""

    @abstractmethod
    def clbit_owners(self, plan: Plan) -> dict[int, str]:
        """clbit -> the node that measures it, for the circuit's clbits."""

    def noise(self) -> dict[str, Any] | None:
        """The composite noise a program spanning several nodes is co-simulated under."""
        return None

    def payloads(self, shots: int, key: str) -> dict[str, RunRequest]:
        circuits = [encode_circuit(c) for c in self.program_circuits()]
        program = RunRequest(
            program_id=f"{key}/{PROGRAM_ID}",
            shots=shots,
            # A lone circuit is sent as one, and its counts come back as `counts`.
            circuit=circuits[0] if len(circuits) == 1 else None,
            circuits=circuits if len(circuits) > 1 else None,
            noise=self.noise(),
        )
        return {PROGRAM_ID: program}

    def basis_counts(self, replies: Mapping[str, Reply]) -> list[dict[str, int]] | None:
        """Each basis circuit's counts over the circuit's qubits (a co-simulated program puts
        its own bits after them); None when the job measured no bases. What was sent
        decides, not what was rebuilt: after a restart the two may differ."""
        runs = _runs(replies)
        if not self.bases or len(runs) != 1 + len(self.bases):
            return None
        return [first_bits(c, self.circuit.num_qubits) for c in runs[1:]]

    def aggregate(self, returned: Returned) -> JobResult:
        replies, observables = returned.replies, returned.observables
        counts = {key: int(n) for key, n in self.counts(_runs(replies)[0]).items()}
        verification = (
            verify_counts(
                self.circuit, counts, returned.plan.estimated_fidelity, returned.exact_or_failure
            )
            if counts
            else Verification(method="none; the circuit measures nothing")
        )
        result = JobResult(counts=counts, verification=verification)
        bases = self.basis_counts(replies)
        if bases is not None and observables:
            values, errors = expectation_values(self.bases, bases, observables)
            result.expectation_values = [round(v, 6) for v in values]
            result.standard_errors = [round(e, 6) for e in errors]
        return result

    def mitigate(self, returned: Returned, result: JobResult) -> MitigatedResult:
        plan, nodes, observables = returned.plan, returned.nodes, returned.observables
        mitigated = mitigate_counts(
            self.circuit,
            self.clbit_owners(plan),
            nodes,
            result,
            plan.estimated_fidelity,
            returned.exact_or_failure,
        )
        # The bases are corrected only where the counts could be (calibrations found).
        if not (observables and result.expectation_values is not None and mitigated.calibrations):
            return mitigated
        bases = self.basis_counts(returned.replies)
        if bases is not None:
            mitigate_bases(
                self.bases, bases, self.qubit_owners(plan), nodes, observables, mitigated
            )
        return mitigated


def _runs(replies: Mapping[str, Reply]) -> list[dict[str, int]]:
    """Counts of each circuit of the one program."""
    [reply] = replies.values()
    return reply.runs


def single_node_owners(circuit: QuantumCircuit, node: str) -> dict[int, str]:
    """Every measured clbit of a circuit that runs whole on `node`."""
    return dict.fromkeys(measured_clbits(circuit), node)


def measurement_bases_of(
    circuit: QuantumCircuit, observables: list[str] | None
) -> tuple[MeasurementBasis, ...]:
    """One circuit per group of qubit-wise commuting observables, rotated into its basis;
    none without observables, or for a circuit that is not a unitary followed by
    measurements (it gets counts only)."""
    if not observables:
        return ()
    try:
        return tuple(measurement_bases(circuit, observables))
    except ValueError:
        return ()
