"""The DistributedJob state machine, shared by the operator and the embedded control plane.

Each `step` performs one transition and returns the new status; the driver persists it
before calling `step` again. Every step is idempotent and derives what it needs from the
spec and the persisted status alone, so a driver that restarts resumes where it stopped.
Programs are sent with ids that include the attempt, and agents never run an id twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from qiskit import QuantumCircuit

from qorch.agent_protocol import AgentError, CancelRequest, ErrorCode, RunResult, ask
from qorch.api import (
    TERMINAL_PHASES,
    DistributedJob,
    DistributedJobStatus,
    EntanglementLink,
    QuantumNode,
)
from qorch.api import reasons as R
from qorch.api.base import ConditionStatus, get_condition, now_rfc3339, set_condition
from qorch.api.distributed_job import (
    JobResult,
    Plan,
    Program,
    ProgramProgress,
    Reroute,
    SanitizerStatus,
    StrategyEstimate,
    source_sha256,
)
from qorch.api.phases import JobPhases, LinkPhases, NodePhases
from qorch.memory_limit import HELD_SHARE, HeldMemory, Holding, budget_bytes
from qorch.planner.cut_distribution import output_request
from qorch.planner.prediction import MAX_PREDICTED_QUBITS, IdealOutput, close_simulation_process
from qorch.planner.strategies import OUTPUT_WIDTH, PURIFICATION, Candidate, Demand
from qorch.qpu.circuits import measures
from qorch.qpu.simulation_process import SimulationProcess
from qorch.sanitizer import (
    SanitizerPolicy,
    SanitizerPolicyFile,
    SanitizerResult,
    TargetTiming,
    sanitize,
)
from qorch.settings import Settings
from qorch.telemetry.instrument import instrument_step
from qorch.telemetry.metrics import METRICS
from qorch.telemetry.tracing import step_span

from .authorization import AuthorizationPolicy, authorize
from .candidates import considered
from .parsed_circuits import ParsedCircuits
from .planning import capacity, plan_figures, plan_status, reservation, slots
from .ports import ExternalQueue, World
from .priority import Priority, PriorityClasses
from .queued import pause_evicted, plan_queued
from .reservations import Holder, QueueEntry, Reservations
from .strategies import (
    Context,
    Returned,
    Work,
    choose_candidate,
    estimate_candidates,
    strategy_named,
)
from .verification import (
    MAX_STATEVECTOR_QUBITS,
    ExactProbabilities,
    exact_beside,
    exact_output_bytes,
    from_ideal,
)

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_SECONDS = 5.0
#: Estimates kept per job: one _plan reads up to three views (free, idle, every node).
_ESTIMATES_KEPT = 4
#: Memory for the exact outputs predictions simulated, kept for the jobs' later estimates
#: and verification (2^20 outcomes take 8 MiB): 256 MiB, or a sixteenth of a smaller
#: `budget_bytes` (48 MiB at a limit of 1 GiB). Past it a job's is not kept, and simulated
#: again: a queue of wide jobs cannot fill the operator's memory.
IDEAL_KEPT_BYTES = min(256 << 20, budget_bytes() // 16)


@dataclass(frozen=True)
class StepResult:
    """New status, and when to step again if the job is waiting rather than moving."""

    status: DistributedJobStatus
    requeue_after: float | None = None
    #: While waiting, the reservation changes that can matter: only one after which this
    #: holds wakes the job before `requeue_after` (`Reservations.changed`).
    until: Callable[[], bool] | None = None


_DEFAULTS = Settings()


@dataclass
class PipelineSettings:
    """Knobs of the pipeline, the same for both drivers; `from_settings` builds them."""

    policy: SanitizerPolicyFile = field(default_factory=SanitizerPolicyFile)
    authorization: AuthorizationPolicy = field(default_factory=AuthorizationPolicy)
    capacity_retry_seconds: float = _DEFAULTS.capacity_retry_seconds
    # Cutting multiplies the shots needed by this factor; beyond it a cut is refused.
    max_sampling_overhead: float = _DEFAULTS.max_sampling_overhead
    # A cut job reconstructs full distributions up to this many output bits.
    max_distribution_bits: int = _DEFAULTS.max_distribution_bits
    # How often a running job looks at the health of its nodes and links.
    watch_seconds: float = _DEFAULTS.job_watch_seconds
    # The "quantum hallucination" guard: a result that fails verification fails the job.
    fail_unverified: bool = _DEFAULTS.fail_unverified
    # Named priorities, and which of them preempt; how often one job may be preempted.
    priority_classes: PriorityClasses = field(default_factory=PriorityClasses)
    max_preemptions: int = _DEFAULTS.max_preemptions

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        policy: SanitizerPolicyFile | None = None,
        authorization: AuthorizationPolicy | None = None,
    ) -> PipelineSettings:
        """The pipeline's knobs from the QORCH_* settings: both drivers build them here."""
        return cls(
            policy=policy or SanitizerPolicyFile(),
            authorization=authorization or AuthorizationPolicy(),
            capacity_retry_seconds=settings.capacity_retry_seconds,
            max_sampling_overhead=settings.max_sampling_overhead,
            max_distribution_bits=settings.max_distribution_bits,
            watch_seconds=settings.job_watch_seconds,
            fail_unverified=settings.fail_unverified,
            priority_classes=PriorityClasses.parse(settings.priority_classes),
            max_preemptions=settings.max_preemptions,
        )


class Estimate(NamedTuple):
    """Every strategy's candidate, the choice among them (or why none), and the candidates
    as the status records them."""

    candidates: list[Candidate]
    choice: Candidate | str
    considered: list[StrategyEstimate]


def _estimated(demand: Demand) -> Estimate:
    candidates = estimate_candidates(demand, demand.strategy)
    choice = choose_candidate(candidates, demand.fidelity_budget, demand.strategy)
    return Estimate(candidates, choice, considered(candidates, demand))


def suspended(status: DistributedJobStatus) -> bool:
    """Whether the job holds a plan while spec.suspend is true (it reserves nothing then)."""
    held = get_condition(status.conditions, R.SUSPENDED)
    return status.phase == JobPhases.PLANNED and held is not None and held.status == "True"


def _same_plan(a: Plan, b: Plan) -> bool:
    return (a.strategy, a.placement, a.bell_pairs) == (b.strategy, b.placement, b.bell_pairs)


def reservation_key(namespace: str, name: str, uid: str | None) -> str:
    """Reservations are per object instance: a re-created job with the same name is new."""
    return f"{namespace}/{name}/{uid or ''}"


def job_key(job: DistributedJob) -> str:
    return reservation_key(job.metadata.namespace, job.metadata.name, job.metadata.uid)


def node_is_ready(node: QuantumNode) -> bool:
    return node.status.phase == NodePhases.READY


def _left(job: DistributedJob, kind: str) -> set[str]:
    """Names of the resources of `kind` the job was re-routed away from."""
    prefix = f"{kind}/"
    return {r.resource[len(prefix) :] for r in job.status.reroutes if r.resource.startswith(prefix)}


#: The address of a node that no longer exists.
ABSENT: tuple[str, tuple[bytes, ...]] = ("http://absent.invalid", ())
#: A program failed for its exchange with another agent (an LOCC cut): the job re-routes.
PEER_FAILURES = frozenset(
    {
        ErrorCode.PEER_MESSAGE_MISSING,
        ErrorCode.PEER_BAD_SIGNATURE,
        ErrorCode.PEER_OUT_OF_ORDER,
        ErrorCode.PEER_UNREACHABLE,
    }
)


def _returned(call: asyncio.Future[RunResult]) -> bool:
    return call.done() and not call.cancelled() and call.exception() is None


def _failed(call: asyncio.Future[RunResult]) -> bool:
    return call.done() and (call.cancelled() or call.exception() is not None)


async def _result(
    exact: asyncio.Future[ExactProbabilities | None] | None,
) -> tuple[ExactProbabilities | None, str | None]:
    """The exact simulation started beside the programs, or why it has no result."""
    if exact is None:
        return None, None
    try:
        return await exact, None
    except NoRoomForExactOutput as exc:
        return None, str(exc)
    except Exception as exc:
        log.warning("exact simulation beside the programs failed: %s", type(exc).__name__)
        return None, f"the exact simulation failed ({type(exc).__name__}: {str(exc)[:200]})"


def _not_ready(node: QuantumNode) -> str:
    ready = get_condition(node.status.conditions, R.READY)
    why = f" ({ready.reason}: {ready.message})" if ready and ready.message else ""
    return f"{node.metadata.name} is {node.status.phase}{why}"


def _summary(result: JobResult) -> str:
    if result.counts:
        return f"{sum(result.counts.values())} shots collected"
    if result.distribution or result.marginals or result.top_outcomes:
        return "output distribution reconstructed"
    return f"{len(result.expectation_values or [])} expectation value(s) estimated"


class CircuitChanged(Exception):
    """The job's ConfigMap holds a source other than the one its spec pins, or than the
    one admission passed: the job runs neither."""


class NoRoomForExactOutput(Exception):
    """A job's exact output found no room in the memory held for running jobs' outputs
    within its time: it is left unverified, saying so."""


@dataclass
class ExactOutputs:
    """What the jobs of one process share of their exact simulations: the child process the
    wide ones run in, the memory running jobs' outputs are held in until their programs
    return, and the outputs predictions simulated, by job, for their later estimates and
    verification (within IDEAL_KEPT_BYTES). The operator drives each job with a pipeline
    of its own: these bounds hold for all of them together."""

    process: SimulationProcess = field(default_factory=SimulationProcess)
    held: HeldMemory = field(default_factory=lambda: HeldMemory(int(HELD_SHARE * budget_bytes())))
    kept: dict[str, tuple[QuantumCircuit, IdealOutput]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The widest exact simulations the memory limit allows, on /metrics from the start
        # wherever jobs run (the operator, `qorch run --metrics-out`).
        widest = "qorch_exact_simulation_max_qubits"
        METRICS.record(widest, MAX_STATEVECTOR_QUBITS, kind="verification")
        METRICS.record(widest, MAX_PREDICTED_QUBITS, kind="prediction")

    def close(self) -> None:
        """At shutdown: stop the process of the exact simulations, and the planner's of
        long predictions (shared by every pipeline of the process)."""
        self.process.close()
        close_simulation_process()


class JobPipeline:
    """Drives one DistributedJob at a time through admit, plan, dispatch, collect, aggregate."""

    def __init__(
        self,
        world: World,
        reservations: Reservations,
        settings: PipelineSettings | None = None,
        queue: ExternalQueue | None = None,
        exact_outputs: ExactOutputs | None = None,
    ) -> None:
        self.world = world
        self.reservations = reservations
        self.settings = settings or PipelineSettings()
        #: Admits the jobs it manages (Kueue) in place of the reservation book's queue.
        self.queue = queue
        # What each queued job asks the queue for, by the view of its nodes it was shaped on.
        self._queue_requests: dict[str, tuple[tuple, object]] = {}
        self._circuits = ParsedCircuits()
        self._timings_checked: dict[str, TargetTiming] = {}
        self.exact_outputs = exact_outputs or ExactOutputs()
        self._programs: dict[str, Work] = {}
        # Estimates per job, by what they read: a waiting job woken by every reservation
        # change re-plans without estimating again until its nodes, links or free share move.
        self._estimates: dict[str, dict[tuple, Estimate]] = {}
        #: Told the candidates each planning considered first (`qorch plan` prints them).
        self.on_considered: Callable[[DistributedJob, list[StrategyEstimate]], None] | None = None

    @instrument_step
    async def step(self, job: DistributedJob) -> StepResult:
        try:
            return await self._step(job)
        except CircuitChanged as exc:  # read again after admission (a restart): not a bug
            with contextlib.suppress(Exception):
                await self.cancel(job)
            status = self._status(job)
            return self._finish(job, status, JobPhases.FAILED, R.CIRCUIT_CHANGED, str(exc))

    async def _step(self, job: DistributedJob) -> StepResult:
        phase = job.status.phase
        if phase in TERMINAL_PHASES:
            self.reservations.release(job_key(job))
            return StepResult(job.status)
        if phase == JobPhases.PENDING and not job.status.timings.admitted_at:
            return await self._admit(job)
        if self.queue is not None and self.queue.manages(job):
            queued = await self._step_queued(job, self.queue)
            if queued is not None:
                return queued
        # Admitted, waiting or re-routed: (re)plan.
        if phase in (JobPhases.PENDING, JobPhases.ADMITTED):
            return await self._plan(job)
        preempted = self.reservations.preempted_by(job_key(job))
        if phase == JobPhases.PLANNED and preempted and not suspended(job.status):
            return await self._make_room(job, self._status(job), preempted, [])
        if phase == JobPhases.PLANNED:
            # spec.suspend is read here and in _plan only; a job already Running is not
            # stopped. A signature does not cover suspend (channel/signing.py), so a queue
            # controller may flip it on a signed job.
            if suspended(job.status) and job.spec.suspend:
                return StepResult(job.status, requeue_after=self.settings.capacity_retry_seconds)
            if suspended(job.status) or job.spec.suspend:
                return await self._plan(job)  # resume, or suspend a plan not yet started
            return self._start_attempt(job)
        return await self._collect(job)

    async def _step_queued(self, job: DistributedJob, queue: ExternalQueue) -> StepResult | None:
        """The steps that differ for a job an external queue admits; None: the usual one."""
        phase = job.status.phase
        if phase in (JobPhases.PENDING, JobPhases.ADMITTED):
            return await plan_queued(self, job, queue)
        why = queue.evicted(job)
        if why is None and phase == JobPhases.PLANNED and job.spec.suspend:
            why = "spec.suspend is true"  # not started yet: give the admission back
        return None if why is None else await pause_evicted(self, job, queue, why)

    async def step_or_fail(self, job: DistributedJob) -> StepResult:
        """`step`, where an exception (a bug) fails this job alone (InternalError, the
        traceback logged), as the one-shot commands want: the operator lets kopf retry it."""
        try:
            return await self.step(job)
        except Exception as exc:
            log.exception("%s/%s: a step failed", job.metadata.namespace, job.metadata.name)
            # As for a deleted job: the agents drop what it sent, or they would run it on
            # with qubits the job's end gives to others.
            with contextlib.suppress(Exception):
                await self.cancel(job)
            why = f"internal error: {type(exc).__name__}: {str(exc)[:300]} (traceback on stderr)"
            return self.abandon(job, why, R.INTERNAL_ERROR)

    def abandon(self, job: DistributedJob, why: str, reason: str = R.UNSCHEDULABLE) -> StepResult:
        """End a job that waits for capacity nothing will free (the embedded control plane
        knows when that is; the operator waits until timeoutSeconds instead), or that a
        step failed on (where the operator's handler would be retried)."""
        status = self._status(job)
        msg = f"{status.message}; {why}"
        return self._finish(job, status, JobPhases.FAILED, reason, msg)

    # -- helpers ---------------------------------------------------------------------------

    def _status(self, job: DistributedJob) -> DistributedJobStatus:
        status = job.status.model_copy(deep=True)
        status.observed_generation = job.metadata.generation
        return status

    def _cond(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        type_: str,
        value: ConditionStatus,
        reason: str,
        message: str = "",
    ) -> None:
        status.conditions = set_condition(
            status.conditions, type_, value, reason, message, job.metadata.generation
        )

    def _finish(
        self, job: DistributedJob, status: DistributedJobStatus, phase: str, reason: str, msg: str
    ) -> StepResult:
        status.phase = phase  # type: ignore[assignment]
        status.message = msg
        status.timings.finished_at = now_rfc3339()
        ok: ConditionStatus = "True" if phase == JobPhases.SUCCEEDED else "False"
        self._cond(job, status, R.SUCCEEDED, ok, reason, msg)
        self.reservations.release(job_key(job))
        self._circuits.pop(job_key(job))
        self._estimates.pop(job_key(job), None)
        self.exact_outputs.kept.pop(job_key(job), None)
        self._timings_checked.pop(job_key(job), None)
        self.world.event(job, "Normal" if ok == "True" else "Warning", reason, msg)
        strategy = status.plan.strategy if status.plan else "none"
        METRICS.record("qorch_jobs_finished_total", phase=phase, strategy=strategy)
        return StepResult(status)

    def _policy(self, job: DistributedJob) -> SanitizerPolicy:
        return self.settings.policy.for_namespace(job.metadata.namespace)

    def _timing(self, nodes: list[QuantumNode]) -> TargetTiming | None:
        """The candidates' slowest gates and shortest T2 (T1 when T2 is unknown)."""
        worst = TargetTiming.worst_case(
            TargetTiming(
                single_qubit_gate_ns=x.single_qubit_gate_nanoseconds or None,
                two_qubit_gate_ns=x.two_qubit_gate_nanoseconds or None,
                measure_ns=x.measure_nanoseconds or None,
                shortest_t2_us=x.t2_microseconds or x.t1_microseconds or None,
            )
            for x in (n.spec.noise for n in nodes)
        )
        return worst if worst.shortest_t2_us is not None else None

    def _node_timing(self, job: DistributedJob) -> TargetTiming | None:
        """What QS305 and QS401 check a circuit against: the Ready nodes the job may use,
        else any it may use (their declared figures do not depend on being Ready)."""
        return self._timing(self._candidates(job) or self._selected(job))

    async def _check_timing(
        self, job: DistributedJob, status: DistributedJobStatus
    ) -> StepResult | None:
        """A job admitted before any of its nodes was seen (one applied together with them
        often is) skipped the rules that read the nodes' gate times and T2: they run once
        its nodes are known. The Rejected result when the circuit fails them, else None."""
        stats = status.sanitizer.stats if status.sanitizer else None
        timing = self._node_timing(job)
        if (
            stats is None
            or "estimatedDurationSeconds" in stats
            or timing is None
            or self._timings_checked.get(job_key(job)) == timing
        ):
            return None
        self._timings_checked[job_key(job)] = timing
        source = await self._admitted_source(job)
        _, rejected = await self._sanitize(
            job, status, source, timing, " (checked once its nodes were seen)"
        )
        return rejected

    async def _sanitize(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        source: str,
        timing: TargetTiming | None,
        note: str = "",
    ) -> tuple[SanitizerResult, StepResult | None]:
        """The sanitizer's report on the job's source, into the status, and the Rejected
        result when it denies the circuit (`note` ends the message)."""
        with step_span("sanitize"):  # a megabyte of hostile source must not stall other jobs
            result = await asyncio.to_thread(
                sanitize, source, self._policy(job), shots=job.spec.shots, timing=timing
            )
        status.sanitizer = SanitizerStatus.model_validate(result.report.to_status())
        status.sanitizer.source_sha256 = source_sha256(source)
        denied = [v for v in result.report.violations if v.severity == "deny"]
        if not denied and result.circuit is not None:
            return result, None
        rule = denied[0].rule if denied else "QS001"
        msg = f"{rule}: {denied[0].message}{note}" if denied else "circuit rejected"
        self._cond(job, status, R.SANITIZED, "False", rule, msg)
        METRICS.record("qorch_sanitizer_rejections_total", rule=rule)
        return result, self._finish(job, status, JobPhases.REJECTED, rule, msg)

    def _selected(self, job: DistributedJob) -> list[QuantumNode]:
        """Nodes the job may use, whatever their phase: those its selector matches and it
        was not re-routed away from."""
        selector = job.spec.node_selector
        left = _left(job, "QuantumNode")
        return [
            n
            for n in self.world.nodes(job.metadata.namespace)
            if (selector is None or selector.matches(n.metadata.labels))
            and n.metadata.name not in left
        ]

    def _links(self, job: DistributedJob) -> list[EntanglementLink]:
        left = _left(job, "EntanglementLink")
        return [x for x in self.world.links(job.metadata.namespace) if x.metadata.name not in left]

    def _candidates(self, job: DistributedJob) -> list[QuantumNode]:
        return [n for n in self._selected(job) if node_is_ready(n)]

    async def _circuit(self, job: DistributedJob) -> QuantumCircuit:
        """The parsed circuit, from the cache or parsed again (after a restart, or evicted):
        the source admission passed, or CircuitChanged."""
        cached = self._circuits.get(job_key(job), job.metadata.generation)
        if cached is not None:
            return cached
        source = await self._admitted_source(job)
        result = await asyncio.to_thread(sanitize, source, self._policy(job), shots=job.spec.shots)
        denied = [v for v in result.report.violations if v.severity == "deny"]
        if result.circuit is None or denied:  # only where admission recorded no digest
            why = f"{denied[0].rule}: {denied[0].message}" if denied else "it does not parse"
            raise CircuitChanged(f"the job's source no longer passes the sanitizer ({why})")
        self._circuits.put(job_key(job), job.metadata.generation, result.circuit)
        return result.circuit

    async def _admitted_source(self, job: DistributedJob) -> str:
        """The source read again after admission: the one whose digest admission recorded
        (`status.sanitizer.sourceSha256`), or CircuitChanged."""
        source = await self._source(job)
        ref = job.spec.circuit.config_map_ref
        where = f"ConfigMap {ref.name!r} key {ref.key!r}" if ref else "the circuit"
        if source is None:
            raise CircuitChanged(f"{where} no longer holds the job's circuit")
        admitted = job.status.sanitizer.source_sha256 if job.status.sanitizer else None
        if admitted is not None and source_sha256(source) != admitted:
            raise CircuitChanged(
                f"{where} holds a source other than the one admitted (sha256"
                f" {source_sha256(source)}, not {admitted}): the job runs only what the"
                " sanitizer passed; submit it again to run the new source"
            )
        return source

    async def _source(self, job: DistributedJob) -> str | None:
        """The job's OpenQASM source; CircuitChanged when its ConfigMap holds another
        than the one spec.circuit.configMapRef.sha256 pins."""
        circuit = job.spec.circuit
        if circuit.qasm is not None:
            return circuit.qasm
        ref = circuit.config_map_ref
        assert ref is not None
        source = await self.world.config_map_value(job.metadata.namespace, ref.name, ref.key)
        if source is not None and ref.sha256 is not None and source_sha256(source) != ref.sha256:
            raise CircuitChanged(
                f"ConfigMap {ref.name!r} key {ref.key!r} holds a source of sha256"
                f" {source_sha256(source)}, not the {ref.sha256} that"
                " spec.circuit.configMapRef.sha256 pins"
            )
        return source

    # -- steps -----------------------------------------------------------------------------

    async def _admit(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        wrong_class = self.settings.priority_classes.problem(job)
        if wrong_class is not None:
            reason = R.INVALID_PRIORITY_CLASS
            return self._finish(job, status, JobPhases.REJECTED, reason, wrong_class)
        try:
            source = await self._source(job)
        except CircuitChanged as exc:
            self._cond(job, status, R.SANITIZED, "False", R.CIRCUIT_CHANGED, str(exc))
            return self._finish(job, status, JobPhases.REJECTED, R.CIRCUIT_CHANGED, str(exc))
        if source is None:
            ref = job.spec.circuit.config_map_ref
            msg = f"ConfigMap {ref.name!r} has no key {ref.key!r}" if ref else "no circuit"
            self._cond(job, status, R.SANITIZED, "False", R.CIRCUIT_UNAVAILABLE, msg)
            return self._finish(job, status, JobPhases.REJECTED, R.CIRCUIT_UNAVAILABLE, msg)
        started = time.perf_counter()
        result, rejected = await self._sanitize(job, status, source, self._node_timing(job))
        status.timings.sanitize_seconds = round(time.perf_counter() - started, 6)
        if rejected is not None:
            return rejected
        assert result.circuit is not None  # else rejected
        if not job.spec.observables and not measures(result.circuit):
            msg = (
                "the circuit measures nothing, so a run would have no counts to return: add "
                "measurements (e.g. measure q -> c;) or ask for spec.observables"
            )
            self._cond(job, status, R.SANITIZED, "False", R.NOTHING_MEASURED, msg)
            return self._finish(job, status, JobPhases.REJECTED, R.NOTHING_MEASURED, msg)
        self._circuits.put(job_key(job), job.metadata.generation, result.circuit)
        warnings = len(result.report.violations)
        self._cond(job, status, R.SANITIZED, "True", R.POLICY_PASSED, f"{warnings} warning(s)")
        with step_span("authorize"):
            decision = await authorize(job, self.settings.authorization)
        if not decision.allowed:
            self._cond(job, status, R.AUTHORIZED, "False", decision.reason, decision.message)
            return self._finish(job, status, JobPhases.REJECTED, decision.reason, decision.message)
        self._cond(job, status, R.AUTHORIZED, "True", decision.reason, decision.message)
        self._cond(job, status, R.SUCCEEDED, "Unknown", R.IN_PROGRESS)
        status.phase = JobPhases.ADMITTED
        status.timings.admitted_at = now_rfc3339()
        status.message = "admitted"
        self.world.event(
            job, "Normal", JobPhases.ADMITTED, f"sanitizer passed ({warnings} warnings)"
        )
        return StepResult(status)

    async def _estimate(
        self,
        job: DistributedJob,
        circuit: QuantumCircuit,
        nodes: list[QuantumNode],
        free: dict[str, float],
    ) -> Estimate:
        # Off the loop: a calibrated node's figures are compared with a simulation of its
        # declared noise, a second or two the first time (cached per noise).
        node_slots, link_slots = await asyncio.to_thread(slots, nodes, self._links(job), free)
        key = (
            job.metadata.generation,
            tuple(
                (n.name, n.free_qubits, n.noise.model_dump_json(), n.basis_gates)
                for n in node_slots
            ),
            tuple(link_slots),
        )
        cache = self._estimates.setdefault(job_key(job), {})
        if key not in cache:
            # Estimating compiles and partitions: seconds for wide circuits, off the loop.
            demand = Demand(
                circuit,
                job.spec.observables,
                node_slots,
                link_slots,
                shots=job.spec.shots,
                timeout_seconds=job.spec.timeout_seconds,
                max_sampling_overhead=self.settings.max_sampling_overhead,
                output=output_request(job.spec.output),
                strategy=job.spec.strategy,
                max_distribution_bits=self.settings.max_distribution_bits,
                fidelity_budget=job.spec.fidelity_budget,
                known_ideal=self._known_ideal(job, circuit),
            )
            # The estimate, its choice and details in one trip to the worker threads: each
            # trip waits behind every other job's, so with many jobs planning, a job split
            # over more trips would wait for them all.
            estimate = await asyncio.to_thread(_estimated, demand)
            if len(cache) >= _ESTIMATES_KEPT:
                cache.pop(next(iter(cache)))
            cache[key] = estimate
            if ideal := demand.__dict__.get("ideal"):  # only if a prediction simulated it
                self._keep_ideal(job, circuit, ideal)
        return cache[key]

    def _keep_ideal(self, job: DistributedJob, circuit: QuantumCircuit, ideal: IdealOutput) -> None:
        key = job_key(job)
        if self._known_ideal(job, circuit) is not None:
            return
        self.exact_outputs.kept.pop(key, None)
        used = sum(kept.probabilities.nbytes for _, kept in self.exact_outputs.kept.values())
        if used + ideal.probabilities.nbytes <= IDEAL_KEPT_BYTES:
            self.exact_outputs.kept[key] = (circuit, ideal)

    async def _exact(
        self, job: DistributedJob, circuit: QuantumCircuit, holding: Holding, seconds: float
    ) -> ExactProbabilities | None:
        """The exact output for verification: as the plan's prediction simulated it, or
        simulated now; its bytes held in `exact_outputs.held` until the caller releases
        them, once there is room for them within `seconds`."""
        ideal = self._known_ideal(job, circuit)
        nbytes = ideal.probabilities.nbytes if ideal is not None else exact_output_bytes(circuit)
        held = self.exact_outputs.held
        try:
            async with asyncio.timeout(seconds):
                if not await holding.take(nbytes):
                    return None
        except TimeoutError:
            raise NoRoomForExactOutput(
                f"no room for its {nbytes / 2**20:.3g} MiB exact output within the job's"
                f" time: running jobs' outputs hold {held.used / 2**20:.3g} of"
                f" {held.budget / 2**20:.3g} MiB"
            ) from None
        if ideal is not None:
            planned = await asyncio.to_thread(from_ideal, circuit, ideal.bits, ideal.probabilities)
            if planned is not None:
                return planned
        return await exact_beside(circuit, self.exact_outputs.process)

    def _known_ideal(self, job: DistributedJob, circuit: QuantumCircuit) -> IdealOutput | None:
        """The exact output a prediction of this very circuit simulated, if one is kept."""
        kept = self.exact_outputs.kept.get(job_key(job))
        return kept[1] if kept is not None and kept[0] is circuit else None

    def _queue_entry(self, job: DistributedJob, status: DistributedJobStatus) -> QueueEntry:
        ns = job.metadata.namespace
        nodes = frozenset(f"{ns}/{n.metadata.name}" for n in self._selected(job))
        return QueueEntry.of(
            job_key(job), self._priority(job).value, status.timings.admitted_at or "", nodes
        )

    def _priority(self, job: DistributedJob) -> Priority:
        return self.settings.priority_classes.of(job)

    def _holder(self, job: DistributedJob, status: DistributedJobStatus) -> Holder:
        """The job as preemption sees its hold: preemptible until preempted often enough."""
        preemptible = status.preemptions < self.settings.max_preemptions
        return Holder(self._priority(job).value, preemptible)

    def _wait(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        reason: str,
        detail: str,
        until: Callable[[], bool] | None = None,
    ) -> StepResult:
        """Wait in phase Pending; the driver steps again when reservations change (and
        `until` holds), or after `capacity_retry_seconds`."""
        self._cond(job, status, R.PLANNED, "False", reason, detail)
        if status.phase != JobPhases.PENDING:
            self.world.event(job, "Normal", reason, detail)
        status.phase = JobPhases.PENDING
        status.message = detail
        return StepResult(status, requeue_after=self.settings.capacity_retry_seconds, until=until)

    async def _plan(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        started = time.perf_counter()
        circuit = await self._circuit(job)
        if (rejected := await self._check_timing(job, status)) is not None:
            return rejected
        hold = bool(job.spec.suspend)
        if not hold and suspended(status):
            status.timings.resumed_at = now_rfc3339()  # suspended time is not run time
            msg = "spec.suspend is false: planning again against the resources now"
            self._cond(job, status, R.SUSPENDED, "False", R.RESUMING, msg)
        if not hold and self._remaining_seconds(job, status) <= 0:
            msg = f"not placed within timeoutSeconds={job.spec.timeout_seconds}: {status.message}"
            return self._finish(job, status, JobPhases.FAILED, R.TIMED_OUT, msg)
        entry = self._queue_entry(job, status)
        if hold:
            # A suspended job neither holds nor waits for anything: it plans as if the
            # nodes it may use were idle, and keeps no place in the queue.
            self.reservations.release(job_key(job))
            self._programs.pop(job_key(job), None)
        ahead = [] if hold else self.reservations.ahead_of(entry)
        if ahead:
            self.reservations.enqueue(entry)
            # A message that does not change as the queue moves: no status write per move.
            detail = "queued: jobs of higher priority or earlier admission wait for the same nodes"
            # Nothing but its turn can change this step's outcome before the retry.
            turn = self.reservations.first_in_line
            return self._wait(job, status, R.QUEUED, detail, until=lambda: turn(entry))
        # A hold left by a step that failed after reserving (the job holds nothing while
        # it plans) would otherwise count against the job itself.
        self.reservations.drop_hold(job_key(job))
        nodes = self._candidates(job)
        limits = capacity(nodes, self._links(job))
        free = {} if hold else self.reservations.free(limits)
        candidates, choice, details = await self._estimate(job, circuit, nodes, free)
        if self.on_considered is not None:
            self.on_considered(job, details)
        if isinstance(choice, str):
            # Wait while the job would fit once nodes are Ready and free; give up when even
            # every selected node, idle and Ready, could not run it (_finish also takes the
            # job out of the queue).
            everything = self._selected(job)
            ideal = (await self._estimate(job, circuit, everything, {})).choice
            not_ready = [_not_ready(n) for n in everything if not node_is_ready(n)]
            if status.reroutes and isinstance(ideal, str):
                left = ", ".join(f"{r.resource} ({r.reason})" for r in status.reroutes)
                msg = f"no healthy placement remains after leaving {left}: {ideal}"
                self._cond(job, status, R.PLANNED, "False", R.NO_HEALTHY_RESOURCES, msg)
                return self._finish(job, status, JobPhases.FAILED, R.NO_HEALTHY_RESOURCES, msg)
            if everything and isinstance(ideal, str):
                reason = (
                    R.PURIFICATION_CANNOT_CONVERGE
                    if any(c.limited_by == PURIFICATION and c.reason in choice for c in candidates)
                    else R.FIDELITY_BUDGET_NOT_MET
                    if "fidelityBudget" in choice
                    else R.OUTPUT_TOO_WIDE
                    if any(c.limited_by == OUTPUT_WIDTH for c in candidates)
                    else R.UNSCHEDULABLE
                )
                self._cond(job, status, R.PLANNED, "False", reason, choice)
                return self._finish(job, status, JobPhases.REJECTED, reason, choice)
            if not everything:
                # A job applied with its nodes may be seen before them.
                self.reservations.leave_queue(job_key(job))
                return self._wait(
                    job, status, R.NODE_NOT_READY, "no QuantumNode matches the nodeSelector yet"
                )
            idle = (await self._estimate(job, circuit, nodes, {})).choice
            if isinstance(idle, str):  # only nodes that are not Ready could run it
                self.reservations.leave_queue(job_key(job))
                detail = "; ".join([choice, *not_ready])
                return self._wait(job, status, R.NODE_NOT_READY, f"waiting for nodes: {detail}")
            self.reservations.enqueue(entry)
            if self._priority(job).preempts:
                preempting = await self._preempt_for(job, circuit, nodes, idle)
                if preempting:
                    return self._wait(job, status, R.PREEMPTING, preempting)
            return self._wait(
                job, status, R.WAITING_FOR_CAPACITY, f"waiting for capacity: {choice}"
            )
        strategy = strategy_named(choice.strategy)
        ns, shots, timeout = job.metadata.namespace, job.spec.shots, job.spec.timeout_seconds
        plan = plan_status(choice, candidates, strategy.shape(choice, circuit, shots), details)
        plan.figures = plan_figures(plan, nodes, self._links(job))
        if hold:
            return self._suspend(job, status, plan, started)
        work = strategy.work(choice, circuit, self._context(job, nodes, free))
        want = reservation(ns, plan, work, shots, timeout)
        lean = work.lean()
        if lean is not None and any(n > limits.get(r, 0) + 1e-9 for r, n in want.items()):
            # The full work would outrun the links even when they are idle.
            work, note = lean
            want = reservation(ns, plan, work, shots, timeout)
            plan.reason += f"; {note}"
        if not self.reservations.try_reserve(job_key(job), want, limits, self._holder(job, status)):
            self.reservations.enqueue(entry)
            return self._wait(job, status, R.WAITING_FOR_CAPACITY, "reservation lost to a peer")
        plan.reservation = want
        self._resumed(job, status, plan)
        status.plan = plan
        self._programs[job_key(job)] = work
        status.timings.plan_seconds = round(time.perf_counter() - started, 6)
        status.phase = JobPhases.PLANNED
        status.message = f"{choice.strategy} on {status.plan.nodes}"
        self._cond(job, status, R.PLANNED, "True", R.PLACED, status.plan.reason)
        self.world.event(job, "Normal", R.PLACED, f"{status.message}: {status.plan.reason}")
        return StepResult(status)

    def _suspend(
        self, job: DistributedJob, status: DistributedJobStatus, plan: Plan, started: float
    ) -> StepResult:
        """Hold the plan in phase Planned, reserving nothing, until spec.suspend is false."""
        status.plan = plan
        status.timings.plan_seconds = round(time.perf_counter() - started, 6)
        status.phase = JobPhases.PLANNED
        status.message = (
            f"suspended: would run {plan.strategy} on {plan.nodes}; holds nothing until"
            " spec.suspend is false"
        )
        self._cond(job, status, R.PLANNED, "True", R.PLACED, plan.reason)
        self._cond(job, status, R.SUSPENDED, "True", R.SUSPENDED, status.message)
        self.world.event(job, "Normal", R.SUSPENDED, status.message)
        return StepResult(status)

    def _resumed(self, job: DistributedJob, status: DistributedJobStatus, plan: Plan) -> None:
        """On the first placement after a resume: say whether the held plan still stood."""
        resuming = get_condition(status.conditions, R.SUSPENDED)
        if resuming is None or resuming.reason != R.RESUMING or status.plan is None:
            return
        held = status.plan
        if _same_plan(held, plan):
            reason, msg = R.RESUMED, f"runs the plan held while suspended ({plan.strategy})"
        else:
            reason = R.REPLANNED
            msg = (
                f"the resources changed while suspended: held {held.strategy} on {held.nodes},"
                f" now {plan.strategy} on {plan.nodes}"
            )
        self._cond(job, status, R.SUSPENDED, "False", reason, msg)
        self.world.event(job, "Normal", reason, msg)

    def _context(
        self, job: DistributedJob, nodes: list[QuantumNode], free: dict[str, float]
    ) -> Context:
        return Context(
            observables=job.spec.observables,
            nodes=nodes,
            links=self._links(job),
            max_sampling_overhead=self.settings.max_sampling_overhead,
            free=free,
            output=output_request(job.spec.output),
            max_distribution_bits=self.settings.max_distribution_bits,
        )

    async def _work(self, job: DistributedJob, plan: Plan) -> Work:
        """The plan's programs: built at planning, or rebuilt from the status after a restart."""
        work = self._programs.get(job_key(job))
        if work is None:
            circuit = await self._circuit(job)
            context = self._context(job, self.world.nodes(job.metadata.namespace), {})
            work = strategy_named(plan.strategy).rebuild(plan, circuit, context)
            self._programs[job_key(job)] = work
        return work

    def _start_attempt(self, job: DistributedJob) -> StepResult:
        """Persist the new attempt before anything is sent, so a restart re-sends, never re-runs."""
        status = self._status(job)
        assert status.plan is not None
        status.attempt += 1
        status.phase = JobPhases.RUNNING
        status.timings.started_at = status.timings.started_at or now_rfc3339()
        status.progress = [
            ProgramProgress(id=p.id, node=p.node, state="Running", attempt=status.attempt)
            for p in status.plan.programs
        ]
        msg = f"attempt {status.attempt}: {len(status.plan.programs)} program(s) sent"
        status.message = msg
        self._cond(job, status, R.DISPATCHED, "True", R.PROGRAMS_SENT, msg)
        self.world.event(job, "Normal", R.PROGRAMS_SENT, msg)
        return StepResult(status)

    def _remaining_seconds(self, job: DistributedJob, status: DistributedJobStatus) -> float:
        """timeoutSeconds counts from admission (from the resume, for a job that was
        suspended): waiting for capacity uses it up too."""
        since = status.timings.resumed_at or status.timings.admitted_at or status.timings.started_at
        if not since:
            return float(job.spec.timeout_seconds)
        begun = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return job.spec.timeout_seconds - (datetime.now(UTC) - begun).total_seconds()

    async def _collect(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        plan = status.plan
        assert plan is not None
        ns = job.metadata.namespace
        nodes = {n.metadata.name: n for n in self.world.nodes(ns)}
        remaining = self._remaining_seconds(job, status)
        if remaining <= 0:
            # The attempt was persisted, so it may have been sent: its qubits go to other
            # jobs now, so the agents must drop it too.
            await self._cancel(job, status.attempt, plan.programs)
            msg = f"no result within timeoutSeconds={job.spec.timeout_seconds}"
            return self._finish(job, status, JobPhases.FAILED, R.TIMED_OUT, msg)
        work = await self._work(job, plan)
        # Drivers restore every recorded reservation before any job moves after a restart;
        # a status from before plans recorded theirs is held again here.
        want = plan.reservation or reservation(
            ns, plan, work, job.spec.shots, job.spec.timeout_seconds
        )
        if not self.reservations.try_reserve(
            job_key(job),
            want,
            capacity(list(nodes.values()), self.world.links(ns)),
            self._holder(job, status),
        ):
            log.warning("%s runs without its reservation: another job holds it", job_key(job))
        # Where each agent is, for work whose agents talk to each other; a node gone is
        # found below and re-routes the job.
        work.locate(lambda name: self.world.address(nodes[name]) if name in nodes else ABSENT)
        payloads = work.payloads(job.spec.shots, f"{job_key(job)}/{status.attempt}")
        started = time.perf_counter()

        async def run(program: Program) -> RunResult:
            node = nodes.get(program.node)
            if node is None:
                raise AgentError(R.NODE_MISSING, f"QuantumNode {program.node!r} no longer exists")
            return await ask(self.world.agent(node), payloads[program.id], timeout=remaining)

        calls = {p.id: asyncio.ensure_future(run(p)) for p in plan.programs}
        # Verification reads the exact output the plan's prediction simulated, or simulates
        # it while the agents run.
        holding = self.exact_outputs.held.holding()
        exact = (
            asyncio.ensure_future(self._exact(job, work.circuit, holding, remaining))
            if work.verifies_by_statevector
            else None
        )
        try:
            return await self._settle(job, status, work, nodes, calls, exact, started)
        finally:
            if exact is not None and not exact.done():
                exact.cancel()  # the step stopped (cancelled, or it failed): nobody reads it
            holding.release()  # the exact output is read, or dropped, by now

    async def _settle(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        work: Work,
        nodes: Mapping[str, QuantumNode],
        calls: Mapping[str, asyncio.Future[RunResult]],
        exact: asyncio.Future[ExactProbabilities | None] | None,
        started: float,
    ) -> StepResult:
        """The attempt's outcome once its programs return (verified and aggregated), or a
        re-route, a pause or room made when its resources change under it."""
        plan = status.plan
        assert plan is not None
        evicted: str | None = None
        preempted: str | None = None
        try:
            trouble: list[Reroute] = []
            while not trouble and not preempted:
                pending = [c for c in calls.values() if not c.done()]
                if not pending:
                    break
                await asyncio.wait(
                    pending,
                    timeout=self.settings.watch_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if all(_returned(c) for c in calls.values()):
                    break  # complete: a node degrading now does not undo what it returned
                trouble = self._trouble(job, plan, status.attempt, calls)
                preempted = self.reservations.preempted_by(job_key(job))
                evicted = self.queue.evicted(job) if self.queue is not None else None
                if evicted is not None:
                    break
        finally:
            for call in calls.values():
                call.cancel()  # ours only: an agent keeps what it accepted
        unfinished = [p for p in plan.programs if not _returned(calls[p.id])]
        stopped = (
            trouble
            or evicted is not None
            or (preempted and unfinished)
            or any(_failed(c) for c in calls.values())
        )
        if stopped and exact is not None:
            exact.cancel()  # a thread or the process finishes it; nobody reads it
        if evicted is not None and self.queue is not None:
            return await pause_evicted(self, job, self.queue, evicted)
        if preempted and not trouble and unfinished:  # a complete attempt just finishes
            return await self._make_room(job, status, preempted, unfinished)
        if trouble:
            return await self._reroute(job, status, trouble, unfinished)
        outcomes = [calls[p.id].exception() or calls[p.id].result() for p in plan.programs]
        status.timings.execute_seconds = round(time.perf_counter() - started, 6)
        failures = []
        for progress, outcome in zip(status.progress, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                progress.state = "Failed"
                progress.message = str(outcome)
                failures.append(f"{progress.node}: {outcome}")
            else:
                progress.state = "Done"
                progress.seconds = outcome.simulate_seconds
        if failures:
            msg = "; ".join(failures)
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if all(isinstance(o, AgentError) and o.code == ErrorCode.TIMEOUT for o in errors):
                # Out of budget, not finished: the agents would run on into other jobs' qubits.
                timed_out = [
                    p for p, o in zip(plan.programs, outcomes, strict=True)
                    if isinstance(o, AgentError)
                ]  # fmt: skip
                await self._cancel(job, status.attempt, timed_out)
                return self._finish(job, status, JobPhases.FAILED, R.TIMED_OUT, msg)
            return self._finish(job, status, JobPhases.FAILED, R.NODE_FAILED, msg)
        replies = {
            p.id: o
            for p, o in zip(plan.programs, outcomes, strict=True)
            if isinstance(o, RunResult)
        }
        simulated, failure = await _result(exact)
        returned = Returned(plan, replies, nodes, job.spec.observables, simulated, failure)
        with step_span("aggregate"):  # exact verification can take a second: off the loop
            status.result = await asyncio.to_thread(work.aggregate, returned)
        if job.spec.mitigation != "none":
            with step_span("mitigate"):  # M3 takes seconds on many outcomes: off the loop
                status.result.mitigated = await asyncio.to_thread(
                    work.mitigate, returned, status.result
                )
        self._record_verification(job, status)
        self._cond(job, status, R.DISPATCHED, "True", R.PROGRAMS_DONE, "all programs returned")
        verified = get_condition(status.conditions, R.VERIFIED)
        if self.settings.fail_unverified and verified and verified.status == "False":
            return self._finish(
                job, status, JobPhases.FAILED, R.VERIFICATION_FAILED, verified.message
            )
        return self._finish(job, status, JobPhases.SUCCEEDED, R.COMPLETED, _summary(status.result))

    def _trouble(
        self,
        job: DistributedJob,
        plan: Plan,
        attempt: int,
        calls: Mapping[str, asyncio.Future[RunResult]],
    ) -> list[Reroute]:
        """Resources of the plan that failed or degraded while it ran: a reason to re-route.
        A cordoned node is not one: cordoning stops new placements, it does not evict."""
        ns = job.metadata.namespace
        now = now_rfc3339()
        found: dict[str, Reroute] = {}
        for program in plan.programs:
            call = calls[program.id]
            if call.done() and not call.cancelled():
                exc = call.exception()
                if isinstance(exc, AgentError) and exc.code in PEER_FAILURES:
                    # The classical path between two agents failed: plan without it.
                    used = [u.link for u in plan.bell_pairs]
                    resource = (
                        f"EntanglementLink/{used[0]}" if used else f"QuantumNode/{program.node}"
                    )
                    found[resource] = Reroute(
                        attempt=attempt,
                        resource=resource,
                        reason=exc.code,
                        message=exc.message,
                        time=now,
                    )
                if isinstance(exc, AgentError) and exc.code == ErrorCode.UNREACHABLE:
                    resource = f"QuantumNode/{program.node}"
                    found[resource] = Reroute(
                        attempt=attempt,
                        resource=resource,
                        reason=R.AGENT_FAILED,
                        message=exc.message,
                        time=now,
                    )
        nodes = {n.metadata.name: n for n in self.world.nodes(ns)}
        for name in sorted({p.node for p in plan.placement} | {p.node for p in plan.programs}):
            node = nodes.get(name)
            if node is not None and node.status.phase not in (
                NodePhases.DEGRADED,
                NodePhases.UNREACHABLE,
            ):
                continue
            resource = f"QuantumNode/{name}"
            why = _not_ready(node) if node else f"{name} no longer exists"
            reason = node.status.phase if node else R.NODE_MISSING
            found.setdefault(
                resource,
                Reroute(attempt=attempt, resource=resource, reason=reason, message=why, time=now),
            )
        links = {x.metadata.name: x for x in self.world.links(ns)}
        for use in plan.bell_pairs:
            link = links.get(use.link)
            # Down only says an end node is not Ready, which the node checks judge.
            if link is not None and link.status.phase != LinkPhases.DEGRADED:
                continue
            resource = f"EntanglementLink/{use.link}"
            reason = link.status.phase if link else "Missing"
            ready = get_condition(link.status.conditions, R.READY) if link else None
            why = (ready.message if ready else "") or f"{use.link} is {reason}"
            found[resource] = Reroute(
                attempt=attempt, resource=resource, reason=reason, message=why, time=now
            )
        return list(found.values())

    async def _reroute(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        trouble: list[Reroute],
        unfinished: list[Program],
    ) -> StepResult:
        """Pause: cancel what is still running; re-route: release the plan and plan again
        without the troubled resources. Finished programs of the attempt are dropped too:
        a plan's results come from one placement."""
        await self._cancel(job, status.attempt, unfinished)
        stopped = {p.id for p in unfinished}
        for progress in status.progress:
            progress.state = "Cancelled"
            if progress.id not in stopped:
                progress.message = "returned, but discarded: a result comes from one placement"
        status.reroutes.extend(trouble)
        for t in trouble:
            kind = t.resource.split("/", 1)[0]
            METRICS.record("qorch_job_reroutes_total", kind=kind, reason=t.reason)
        self.reservations.release(job_key(job))
        self._programs.pop(job_key(job), None)
        names = ", ".join(f"{t.resource} ({t.reason}: {t.message})" for t in trouble)
        msg = f"attempt {status.attempt} paused: {names}; re-planning on healthy resources"
        self._cond(job, status, R.PLANNED, "False", R.REROUTING, msg)
        self._cond(job, status, R.DISPATCHED, "False", R.REROUTING, msg)
        status.phase = JobPhases.PENDING
        status.message = msg
        self.world.event(job, "Warning", R.REROUTING, msg)
        return StepResult(status)

    async def _preempt_for(
        self,
        job: DistributedJob,
        circuit: QuantumCircuit,
        nodes: list[QuantumNode],
        idle: Candidate,
    ) -> str | None:
        """Preempt the running jobs of lower priority that hold what the job's plan on idle
        nodes needs; what the job waits for then, or None when preempting cannot make room."""
        ns = job.metadata.namespace
        strategy = strategy_named(idle.strategy)
        work = strategy.work(idle, circuit, self._context(job, nodes, {}))
        plan = plan_status(idle, [idle], strategy.shape(idle, circuit, job.spec.shots))
        want = reservation(ns, plan, work, job.spec.shots, job.spec.timeout_seconds)
        limits = capacity(nodes, self._links(job))
        key, priority = job_key(job), self._priority(job).value
        victims = self.reservations.victims(key, want, limits, priority)
        if not victims:
            return None
        self.reservations.preempt(victims, key)
        names = ", ".join(v.split("/")[1] for v in victims)
        return f"preempting {names} (lower priority) for {idle.strategy} on {plan.nodes}"

    async def _make_room(
        self,
        job: DistributedJob,
        status: DistributedJobStatus,
        by: str,
        unfinished: list[Program],
    ) -> StepResult:
        """Preempted: cancel the attempt's programs, release the reservation, and wait to be
        planned again. What the attempt returned is discarded: a result comes from one
        placement, so the next attempt runs every program again."""
        stopped_what = "its plan, not started yet, was"
        if status.phase == JobPhases.RUNNING:
            stopped_what = f"attempt {status.attempt} cancelled and its reservation"
            await self._cancel(job, status.attempt, unfinished)
            stopped = {p.id for p in unfinished}
            for progress in status.progress:
                progress.state = "Cancelled"
                progress.message = (
                    "cancelled: the job was preempted"
                    if progress.id in stopped
                    else "returned, but discarded: the job was preempted"
                )
        status.preemptions += 1
        self.reservations.release(job_key(job))
        self._programs.pop(job_key(job), None)
        left = self.settings.max_preemptions - status.preemptions
        msg = (
            f"preempted by {by.split('/')[1]} (higher priority): {stopped_what}"
            " released; waiting to be planned again"
            f" ({left} more preemption(s) allowed)"
        )
        self._cond(job, status, R.PLANNED, "False", R.PREEMPTED, msg)
        self._cond(job, status, R.DISPATCHED, "False", R.PREEMPTED, msg)
        status.phase = JobPhases.PENDING
        status.message = msg
        self.world.event(job, "Warning", R.PREEMPTED, msg)
        return StepResult(status)

    async def _cancel(self, job: DistributedJob, attempt: int, programs: list[Program]) -> None:
        """Best effort: tell each agent to drop the attempt's programs it still holds."""
        nodes = {n.metadata.name: n for n in self.world.nodes(job.metadata.namespace)}
        key = f"{job_key(job)}/{attempt}"
        by_node: dict[str, list[str]] = {}
        for program in programs:
            by_node.setdefault(program.node, []).append(f"{key}/{program.id}")

        async def cancel(node: QuantumNode, ids: list[str]) -> None:
            with contextlib.suppress(AgentError):
                await ask(
                    self.world.agent(node),
                    CancelRequest(program_ids=ids),
                    timeout=CANCEL_TIMEOUT_SECONDS,
                )

        await asyncio.gather(*(cancel(nodes[n], ids) for n, ids in by_node.items() if n in nodes))

    async def cancel(self, job: DistributedJob) -> None:
        """A deleted job: its running programs are cancelled and its reservations freed."""
        try:
            if job.status.phase == JobPhases.RUNNING and job.status.plan is not None:
                await self._cancel(job, job.status.attempt, job.status.plan.programs)
        finally:
            self.reservations.release(job_key(job))
            self._programs.pop(job_key(job), None)
            self._circuits.pop(job_key(job))
            self._timings_checked.pop(job_key(job), None)
            self._estimates.pop(job_key(job), None)
            self.exact_outputs.kept.pop(job_key(job), None)

    def _record_verification(self, job: DistributedJob, status: DistributedJobStatus) -> None:
        v = status.result.verification if status.result else None
        if v is None or v.threshold is None:
            self._cond(
                job,
                status,
                R.VERIFIED,
                "Unknown",
                R.NOT_TRACTABLE,
                "no exact classical simulation for this circuit"
                + (f" ({v.method.removeprefix('none; ')})" if v and "; " in v.method else ""),
            )
            return
        if v.hellinger_fidelity is not None:
            ok = v.hellinger_fidelity >= v.threshold
            measured = f"Hellinger fidelity {v.hellinger_fidelity:.4f} to the exact distribution"
        else:
            assert v.absolute_error is not None
            ok = v.absolute_error <= v.threshold
            measured = f"largest absolute error {v.absolute_error:.4f} against exact values"
        self._cond(
            job,
            status,
            R.VERIFIED,
            "True" if ok else "False",
            R.WITHIN_TOLERANCE if ok else R.ABOVE_TOLERANCE,
            f"{measured} ({v.method}; threshold {v.threshold:.4f})",
        )
