"""The protocol every strategy follows, and the work a chosen plan becomes.

A `Strategy` estimates itself for a job (through the planner), shapes the plan recorded in
status from its candidate, and builds `Work` from that candidate, or rebuilds it from the
recorded plan after a restart (partitions are recorded, compilation and cutting are
deterministic, so both give the same programs). `Work` is everything that differs once a
plan runs: the payload of each program, what it holds, and how the agents' replies become
the job's result, mitigated and verified.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from qiskit import QuantumCircuit

from qorch.agent_protocol import RunRequest, RunResult
from qorch.api import EntanglementLink, QuantumNode
from qorch.api.distributed_job import JobResult, LinkUse, MitigatedResult, Placement, Plan, Program
from qorch.planner.cut_distribution import DEFAULT_MAX_DISTRIBUTION_BITS, OutputRequest
from qorch.planner.strategies import Candidate, Demand

from ..verification import ExactProbabilities

#: The agent's reply to one program.
Reply = RunResult


@dataclass(frozen=True)
class Context:
    """What building work may read besides the plan: the job's observables, the namespace's
    nodes and links, the free share of each resource, the policy's overhead bound, and what
    output a job without observables asks for (with the policy's width limit)."""

    observables: list[str] | None
    nodes: list[QuantumNode]
    links: list[EntanglementLink]
    max_sampling_overhead: float
    free: dict[str, float] = field(default_factory=dict)
    output: OutputRequest | None = None
    max_distribution_bits: int = DEFAULT_MAX_DISTRIBUTION_BITS


@dataclass(frozen=True)
class Returned:
    """What came back from one attempt: the plan it ran, each program's reply by program id,
    the nodes by name (with their latest calibration) and the job's observables."""

    plan: Plan
    replies: Mapping[str, Reply]
    nodes: Mapping[str, QuantumNode]
    observables: list[str] | None
    #: `exact_probabilities` of the work's circuit, computed while the programs ran, for
    #: work that `verifies_by_statevector`.
    exact: ExactProbabilities | None = None
    #: Why that simulation ended without a result (its process died, out of memory most
    #: likely, or Aer refused it). Verification says so rather than simulate again in the
    #: operator's own process.
    exact_failure: str | None = None

    @property
    def exact_or_failure(self) -> ExactProbabilities | str | None:
        """What verification reads: the exact output, or why its simulation failed."""
        return self.exact_failure or self.exact


@dataclass(frozen=True)
class Shape:
    """A plan's placement and programs, as the status records them."""

    placement: list[Placement]
    programs: list[Program]
    nonlocal_gates: int = 0
    bell_pairs: list[LinkUse] = field(default_factory=list)


class Work(ABC):
    """The programs of one plan and how their replies become the result."""

    circuit: QuantumCircuit
    #: Whether `aggregate` verifies against the exact probabilities of `circuit`, so that
    #: the pipeline may simulate them while the programs run (`Returned.exact`).
    verifies_by_statevector: ClassVar[bool] = False

    @abstractmethod
    def payloads(self, shots: int, key: str) -> dict[str, RunRequest]:
        """What each program sends to its agent, by program id; `key` prefixes the ids the
        agent sees (job and attempt), so that a cancel names exactly these programs."""

    def qubits_per_node(self, plan: Plan) -> dict[str, int]:
        """Qubits each node gives the plan (communication qubits included)."""
        return {p.node: len(p.qubits) for p in plan.placement}

    def locate(self, where: Callable[[str], tuple[str, tuple[bytes, ...]]]) -> None:
        """Told, before `payloads`, where each node's agent is and the keys pinned for it,
        for work whose agents talk to each other (`where(node)` -> endpoint, keys); most
        ignore it."""
        return None

    def bell_pairs_per_shot(self) -> dict[str, float]:
        """Bell pairs each link supplies per shot (expected raw pairs: heralded, before
        purification consumes them)."""
        return {}

    def lean(self) -> tuple[Work, str] | None:
        """A cheaper version of this work for when the full one would outrun the links, with
        what it gives up; None when there is none."""
        return None

    @abstractmethod
    def aggregate(self, returned: Returned) -> JobResult:
        """The job's result from every program's reply, verified where tractable."""

    @abstractmethod
    def mitigate(self, returned: Returned, result: JobResult) -> MitigatedResult:
        """The readout-corrected result beside `result`, from the nodes' calibrations."""


class Strategy(ABC):
    """One way of spreading a circuit over nodes. Register instances with `register`."""

    #: The name jobs ask for in `spec.strategy` and plans record.
    name: ClassVar[str]
    #: At equal estimated fidelity the lower one is chosen: fewer moving parts first.
    preference: ClassVar[int] = 0

    #: The planner's estimate of this strategy for a job.
    estimator: ClassVar[Callable[[Demand], Candidate]]

    def estimate(self, demand: Demand) -> Candidate:
        """Feasible with a plan and its estimated fidelity, or infeasible with the reason."""
        return type(self).estimator(demand)

    @abstractmethod
    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        """The placement and programs the status records for this candidate."""

    @abstractmethod
    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> Work:
        """The work of a candidate just chosen."""

    @abstractmethod
    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> Work:
        """The same work again from the recorded plan."""
