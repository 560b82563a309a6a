"""The DistributedJob state machine, shared by the operator and the embedded control plane.

Each `step` performs one transition and returns the new status; the driver persists it
before calling `step` again. Every step is idempotent and derives what it needs from the
spec and the persisted status alone, so a driver that restarts resumes where it stopped.
Programs are sent with ids that include the attempt, and agents never run an id twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qiskit import QuantumCircuit

from qorch.api import TERMINAL_PHASES, DistributedJob, DistributedJobStatus, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import ConditionStatus, get_condition, now_rfc3339, set_condition
from qorch.api.distributed_job import (
    Plan,
    Program,
    ProgramProgress,
    SanitizerStatus,
)
from qorch.planner.cutting import CutPlan
from qorch.planner.strategies import Candidate, choose, estimate_candidates
from qorch.planner.teleport import TeleportProgram
from qorch.qpu.circuits import encode_circuit
from qorch.qpu.transport import TIMEOUT, AgentError
from qorch.sanitizer import SanitizerPolicy, SanitizerPolicyFile, TargetTiming, sanitize
from qorch.telemetry.instrument import instrument_step
from qorch.telemetry.metrics import JOBS_FINISHED, SANITIZER_REJECTIONS
from qorch.telemetry.tracing import step_span

from .aggregation import aggregate
from .authorization import AuthorizationPolicy, authorize
from .planning import Work, plan_status, reservation, slots, work_for
from .ports import World
from .reservations import Reservations


@dataclass(frozen=True)
class StepResult:
    """New status, and when to step again if the job is waiting rather than moving."""

    status: DistributedJobStatus
    requeue_after: float | None = None


@dataclass
class PipelineSettings:
    """Knobs of the pipeline, the same for both drivers."""

    policy: SanitizerPolicyFile = field(default_factory=SanitizerPolicyFile)
    authorization: AuthorizationPolicy = field(default_factory=AuthorizationPolicy)
    capacity_retry_seconds: float = 1.0
    # Cutting multiplies the shots needed by this factor; beyond it a cut is refused.
    max_sampling_overhead: float = 1000.0
    # The "quantum hallucination" guard: a result that fails verification fails the job.
    fail_unverified: bool = False


def reservation_key(namespace: str, name: str, uid: str | None) -> str:
    """Reservations are per object instance: a re-created job with the same name is new."""
    return f"{namespace}/{name}/{uid or ''}"


def job_key(job: DistributedJob) -> str:
    return reservation_key(job.metadata.namespace, job.metadata.name, job.metadata.uid)


def node_is_ready(node: QuantumNode) -> bool:
    return node.status.phase == "Ready"


def _not_ready(node: QuantumNode) -> str:
    ready = get_condition(node.status.conditions, R.READY)
    why = f" ({ready.reason}: {ready.message})" if ready and ready.message else ""
    return f"{node.metadata.name} is {node.status.phase}{why}"


class JobPipeline:
    """Drives one DistributedJob at a time through admit, plan, dispatch, collect, aggregate."""

    def __init__(
        self, world: World, reservations: Reservations, settings: PipelineSettings | None = None
    ) -> None:
        self.world = world
        self.reservations = reservations
        self.settings = settings or PipelineSettings()
        self._circuits: dict[str, tuple[int, QuantumCircuit]] = {}
        self._programs: dict[str, Work] = {}

    @instrument_step
    async def step(self, job: DistributedJob) -> StepResult:
        phase = job.status.phase
        if phase in TERMINAL_PHASES:
            self.reservations.release(job_key(job))
            return StepResult(job.status)
        if phase == "Pending":
            return await self._admit(job)
        if phase == "Admitted":
            return await self._plan(job)
        if phase == "Planned":
            return self._start_attempt(job)
        return await self._collect(job)

    def abandon(self, job: DistributedJob, why: str) -> StepResult:
        """End a job that waits for capacity nothing will free (the embedded control plane
        knows when that is; the operator waits until timeoutSeconds instead)."""
        status = self._status(job)
        msg = f"{status.message}; {why}"
        return self._finish(job, status, "Failed", R.UNSCHEDULABLE, msg)

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
        ok: ConditionStatus = "True" if phase == "Succeeded" else "False"
        self._cond(job, status, R.SUCCEEDED, ok, reason, msg)
        self.reservations.release(job_key(job))
        self.world.event(job, "Normal" if ok == "True" else "Warning", reason, msg)
        strategy = status.plan.strategy if status.plan else "none"
        JOBS_FINISHED.labels(phase=phase, strategy=strategy).inc()
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

    def _selected(self, job: DistributedJob) -> list[QuantumNode]:
        """Nodes the job may use, whatever their phase."""
        selector = job.spec.node_selector
        return [
            n
            for n in self.world.nodes(job.metadata.namespace)
            if selector is None or selector.matches(n.metadata.labels)
        ]

    def _candidates(self, job: DistributedJob) -> list[QuantumNode]:
        return [n for n in self._selected(job) if node_is_ready(n)]

    async def _circuit(self, job: DistributedJob) -> QuantumCircuit:
        """The parsed circuit, from the cache or parsed again after a restart."""
        cached = self._circuits.get(job_key(job))
        if cached and cached[0] == job.metadata.generation:
            return cached[1]
        source = await self._source(job)
        result = sanitize(source or "", self._policy(job), shots=job.spec.shots)
        if result.circuit is None:
            raise RuntimeError("the admitted circuit no longer parses")
        self._circuits[job_key(job)] = (job.metadata.generation, result.circuit)
        return result.circuit

    async def _source(self, job: DistributedJob) -> str | None:
        circuit = job.spec.circuit
        if circuit.qasm is not None:
            return circuit.qasm
        ref = circuit.config_map_ref
        assert ref is not None
        return await self.world.config_map_value(job.metadata.namespace, ref.name, ref.key)

    # -- steps -----------------------------------------------------------------------------

    async def _admit(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        source = await self._source(job)
        if source is None:
            ref = job.spec.circuit.config_map_ref
            msg = f"ConfigMap {ref.name!r} has no key {ref.key!r}" if ref else "no circuit"
            self._cond(job, status, R.SANITIZED, "False", R.CIRCUIT_UNAVAILABLE, msg)
            return self._finish(job, status, "Rejected", R.CIRCUIT_UNAVAILABLE, msg)
        started = time.perf_counter()
        with step_span("sanitize"):
            result = sanitize(
                source,
                self._policy(job),
                shots=job.spec.shots,
                timing=self._timing(self._candidates(job)),
            )
        status.timings.sanitize_seconds = round(time.perf_counter() - started, 6)
        status.sanitizer = SanitizerStatus.model_validate(result.report.to_status())
        denied = [v for v in result.report.violations if v.severity == "deny"]
        if denied or result.circuit is None:
            first = denied[0] if denied else None
            rule = first.rule if first else "QS001"
            msg = f"{rule}: {first.message}" if first else "circuit rejected"
            self._cond(job, status, R.SANITIZED, "False", rule, msg)
            SANITIZER_REJECTIONS.labels(rule=rule).inc()
            return self._finish(job, status, "Rejected", rule, msg)
        self._circuits[job_key(job)] = (job.metadata.generation, result.circuit)
        warnings = len(result.report.violations)
        self._cond(job, status, R.SANITIZED, "True", R.POLICY_PASSED, f"{warnings} warning(s)")
        with step_span("authorize"):
            decision = authorize(job, self.settings.authorization)
        if not decision.allowed:
            self._cond(job, status, R.AUTHORIZED, "False", decision.reason, decision.message)
            return self._finish(job, status, "Rejected", decision.reason, decision.message)
        self._cond(job, status, R.AUTHORIZED, "True", decision.reason, decision.message)
        self._cond(job, status, R.SUCCEEDED, "Unknown", R.IN_PROGRESS)
        status.phase = "Admitted"
        status.timings.admitted_at = now_rfc3339()
        status.message = "admitted"
        self.world.event(job, "Normal", "Admitted", f"sanitizer passed ({warnings} warnings)")
        return StepResult(status)

    def _estimate(
        self,
        job: DistributedJob,
        circuit: QuantumCircuit,
        nodes: list[QuantumNode],
        free: dict[str, int],
    ) -> tuple[list[Candidate], Candidate | str]:
        node_slots, link_slots = slots(nodes, self.world.links(job.metadata.namespace), free)
        candidates = estimate_candidates(
            circuit,
            job.spec.observables,
            node_slots,
            link_slots,
            shots=job.spec.shots,
            timeout_seconds=job.spec.timeout_seconds,
            max_sampling_overhead=self.settings.max_sampling_overhead,
        )
        return candidates, choose(candidates, job.spec.fidelity_budget, job.spec.strategy)

    async def _plan(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        started = time.perf_counter()
        circuit = await self._circuit(job)
        if self._remaining_seconds(job, status) <= 0:
            msg = f"not placed within timeoutSeconds={job.spec.timeout_seconds}: {status.message}"
            return self._finish(job, status, "Failed", R.TIMED_OUT, msg)
        nodes = self._candidates(job)
        capacity = {n.metadata.name: n.spec.qubits for n in nodes}
        candidates, choice = self._estimate(job, circuit, nodes, self.reservations.free(capacity))
        if isinstance(choice, str):
            # Wait while the job would fit once nodes are Ready and free; reject when even
            # every selected node, idle and Ready, could not run it.
            everything = self._selected(job)
            _, ideal = self._estimate(job, circuit, everything, {})
            not_ready = [_not_ready(n) for n in everything if not node_is_ready(n)]
            if everything and isinstance(ideal, str):
                reason = (
                    R.FIDELITY_BUDGET_NOT_MET if "fidelityBudget" in choice else R.UNSCHEDULABLE
                )
                self._cond(job, status, R.PLANNED, "False", reason, choice)
                return self._finish(job, status, "Rejected", reason, choice)
            # No node at all (yet): a job applied with its nodes may be seen before them.
            detail = (
                "; ".join([choice, *not_ready])
                if everything
                else ("no QuantumNode matches the nodeSelector yet")
            )
            self._cond(job, status, R.PLANNED, "False", R.WAITING_FOR_CAPACITY, detail)
            status.message = f"waiting for capacity: {detail}"
            return StepResult(status, requeue_after=self.settings.capacity_retry_seconds)
        want = reservation(choice, circuit.num_qubits)
        if not self.reservations.try_reserve(job_key(job), want, capacity):
            self._cond(job, status, R.PLANNED, "False", R.WAITING_FOR_CAPACITY, "reservation lost")
            return StepResult(status, requeue_after=self.settings.capacity_retry_seconds)
        status.plan = plan_status(choice, candidates, circuit.num_qubits, job.spec.shots)
        self._programs[job_key(job)] = self._work_from(choice, circuit)
        status.timings.plan_seconds = round(time.perf_counter() - started, 6)
        status.phase = "Planned"
        status.message = f"{choice.strategy} on {status.plan.nodes}"
        self._cond(job, status, R.PLANNED, "True", R.PLACED, status.plan.reason)
        self.world.event(job, "Normal", R.PLACED, f"{status.message}: {status.plan.reason}")
        return StepResult(status)

    @staticmethod
    def _work_from(candidate: Candidate, circuit: QuantumCircuit) -> Work:
        teleport = candidate.plan if isinstance(candidate.plan, TeleportProgram) else None
        cut = candidate.plan if isinstance(candidate.plan, CutPlan) else None
        return Work(candidate.strategy, circuit, teleport=teleport, cut=cut)

    async def _work(self, job: DistributedJob, plan: Plan) -> Work:
        """The plan's programs: built at planning, or rebuilt from the status after a restart."""
        work = self._programs.get(job_key(job))
        if work is None:
            ns = job.metadata.namespace
            work = work_for(
                plan,
                await self._circuit(job),
                job.spec.observables,
                self.world.nodes(ns),
                self.world.links(ns),
                self.settings.max_sampling_overhead,
            )
            self._programs[job_key(job)] = work
        return work

    def _start_attempt(self, job: DistributedJob) -> StepResult:
        """Persist the new attempt before anything is sent, so a restart re-sends, never re-runs."""
        status = self._status(job)
        assert status.plan is not None
        status.attempt += 1
        status.phase = "Running"
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
        """timeoutSeconds counts from admission: waiting for capacity uses it up too."""
        since = status.timings.admitted_at or status.timings.started_at
        if not since:
            return float(job.spec.timeout_seconds)
        begun = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return job.spec.timeout_seconds - (datetime.now(UTC) - begun).total_seconds()

    def _payloads(self, job: DistributedJob, attempt: int, work: Work) -> dict[str, dict]:
        """What each program sends to its agent, by program id."""
        base = {"shots": job.spec.shots}
        key = f"{job_key(job)}/{attempt}"
        if work.teleport is not None:
            return {
                "p0": {
                    **base,
                    "programId": f"{key}/p0",
                    "circuit": encode_circuit(work.teleport.circuit),
                    "noise": work.teleport.noise,
                }
            }
        if work.cut is not None:
            return {
                f"cut-{node}": {
                    **base,
                    "programId": f"{key}/cut-{node}",
                    "circuits": [encode_circuit(c) for c in subs],
                }
                for node, subs in work.cut.subexperiments.items()
            }
        return {"p0": {**base, "programId": f"{key}/p0", "circuit": encode_circuit(work.circuit)}}

    async def _collect(self, job: DistributedJob) -> StepResult:
        status = self._status(job)
        plan = status.plan
        assert plan is not None
        nodes = {n.metadata.name: n for n in self.world.nodes(job.metadata.namespace)}
        capacity = {n: nodes[n].spec.qubits for n in nodes}
        held = {p.node: len(p.qubits) for p in plan.placement}
        self.reservations.try_reserve(job_key(job), held, capacity)
        remaining = self._remaining_seconds(job, status)
        if remaining <= 0:
            msg = f"no result within timeoutSeconds={job.spec.timeout_seconds}"
            return self._finish(job, status, "Failed", R.TIMED_OUT, msg)
        work = await self._work(job, plan)
        payloads = self._payloads(job, status.attempt, work)
        started = time.perf_counter()

        async def run(program: Program) -> dict:
            node = nodes.get(program.node)
            if node is None:
                raise AgentError(R.NODE_MISSING, f"QuantumNode {program.node!r} no longer exists")
            return await self.world.agent(node).call("run", payloads[program.id], timeout=remaining)

        outcomes = await asyncio.gather(*(run(p) for p in plan.programs), return_exceptions=True)
        status.timings.execute_seconds = round(time.perf_counter() - started, 6)
        failures = []
        for progress, outcome in zip(status.progress, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                progress.state = "Failed"
                progress.message = str(outcome)
                failures.append(f"{progress.node}: {outcome}")
            else:
                progress.state = "Done"
                progress.seconds = outcome.get("simulateSeconds")
        if failures:
            if any(isinstance(o, asyncio.CancelledError) for o in outcomes):
                raise asyncio.CancelledError
            msg = "; ".join(failures)
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if all(isinstance(o, AgentError) and o.code == TIMEOUT for o in errors):
                return self._finish(job, status, "Failed", R.TIMED_OUT, msg)
            return self._finish(job, status, "Failed", R.NODE_FAILED, msg)
        replies = {
            p.id: o for p, o in zip(plan.programs, outcomes, strict=True) if isinstance(o, dict)
        }
        with step_span("aggregate"):
            status.result = aggregate(work, replies, plan.estimated_fidelity, job.spec.observables)
        self._record_verification(job, status)
        self._cond(job, status, R.DISPATCHED, "True", R.PROGRAMS_DONE, "all programs returned")
        verified = get_condition(status.conditions, R.VERIFIED)
        if self.settings.fail_unverified and verified and verified.status == "False":
            return self._finish(job, status, "Failed", R.VERIFICATION_FAILED, verified.message)
        summary = (
            f"{sum(status.result.counts.values())} shots collected"
            if status.result.counts is not None
            else f"{len(status.result.expectation_values or [])} expectation value(s) reconstructed"
        )
        return self._finish(job, status, "Succeeded", R.COMPLETED, summary)

    def _record_verification(self, job: DistributedJob, status: DistributedJobStatus) -> None:
        v = status.result.verification if status.result else None
        if v is None or v.threshold is None:
            self._cond(
                job,
                status,
                R.VERIFIED,
                "Unknown",
                R.NOT_TRACTABLE,
                "no exact classical simulation for this circuit",
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
