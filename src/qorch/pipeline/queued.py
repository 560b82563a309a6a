"""Planning for jobs admitted by an external queue (Kueue) instead of the operator's book.

The job is planned once on its nodes as if they were idle; that plan's qubits per node and
pair rate per link are what it asks the queue for. Once the queue admits it, it is planned
again on what was granted (the nodes and amounts of the assigned flavors), so the placement
follows the queue. An eviction pauses a running job like a re-route does: its programs are
cancelled, its resources released, and it waits for admission again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from qorch.api import DistributedJob, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import now_rfc3339
from qorch.api.distributed_job import Plan
from qorch.api.phases import JobPhases
from qorch.planner.strategies import OUTPUT_WIDTH
from qorch.telemetry.metrics import METRICS

from .planning import capacity, plan_status, reservation
from .ports import ExternalQueue, QueueRequest
from .reservations import node_resource
from .strategies import Work, strategy_named

if TYPE_CHECKING:
    from .job import JobPipeline, StepResult

#: Slack for float pair rates compared with what a queue granted (it rounds up to milli).
_EPSILON = 1e-6


async def _shape(
    p: JobPipeline, job: DistributedJob, nodes: list[QuantumNode], free: dict[str, float]
) -> tuple[Plan, Work, dict[str, float]] | str:
    """The plan on `nodes` with `free` resources, its work and what it holds; or why none."""
    circuit = await p._circuit(job)
    candidates, choice, details = await p._estimate(job, circuit, nodes, free)
    if isinstance(choice, str):
        if any(c.limited_by == OUTPUT_WIDTH for c in candidates):
            return f"{R.OUTPUT_TOO_WIDE}: {choice}"
        return choice
    strategy = strategy_named(choice.strategy)
    ns, shots, timeout = job.metadata.namespace, job.spec.shots, job.spec.timeout_seconds
    plan = plan_status(choice, candidates, strategy.shape(choice, circuit, shots), details)
    limits = capacity(nodes, p._links(job))
    work = strategy.work(choice, circuit, p._context(job, nodes, free))
    want = reservation(ns, plan, work, shots, timeout)
    lean = work.lean()
    if lean is not None and any(n > limits.get(r, 0) + 1e-9 for r, n in want.items()):
        work, note = lean
        want = reservation(ns, plan, work, shots, timeout)
        plan.reason += f"; {note}"
    return plan, work, want


async def plan_queued(p: JobPipeline, job: DistributedJob, queue: ExternalQueue) -> StepResult:
    """Ask the queue for the job's resources; plan on what it granted once admitted."""
    from .job import StepResult, job_key

    status = p._status(job)
    started = time.perf_counter()
    ns = job.metadata.namespace
    # No timeout while queued: timeoutSeconds counts from the queue's admission, as a
    # Kueue-managed Job's deadline counts from its start.
    everything = p._selected(job)
    if not everything:
        return p._wait(job, status, R.NODE_NOT_READY, "no QuantumNode matches the nodeSelector yet")
    # What the job asks for, shaped once per view of its nodes: a waiting job is stepped
    # at every change of the queue, and building a plan's work can take milliseconds.
    view = (
        job.metadata.generation,
        tuple((n.metadata.name, n.spec.qubits, n.status.phase) for n in everything),
        tuple((x.metadata.name, x.status.phase) for x in p._links(job)),
    )
    cached = p._queue_requests.get(job_key(job))
    if cached is not None and cached[0] == view:
        ideal = cast("tuple[Plan, Work, dict[str, float]] | str", cached[1])
    else:
        ideal = await _shape(p, job, everything, {})
        p._queue_requests[job_key(job)] = (view, ideal)
    if isinstance(ideal, str):
        reason = R.OUTPUT_TOO_WIDE if ideal.startswith(R.OUTPUT_TOO_WIDE) else R.UNSCHEDULABLE
        if "fidelityBudget" in ideal:
            reason = R.FIDELITY_BUDGET_NOT_MET
        p._cond(job, status, R.PLANNED, "False", reason, ideal)
        return p._finish(job, status, JobPhases.REJECTED, reason, ideal)
    _, _, want = ideal
    request = QueueRequest(want, tuple(n.metadata.name for n in everything))
    decision = await queue.admission(job, request)
    if decision.state == "rejected":
        p._cond(job, status, R.QUOTA_RESERVED, "False", decision.reason, decision.message)
        return p._finish(job, status, JobPhases.REJECTED, decision.reason, decision.message)
    if decision.state == "waiting":
        p._cond(job, status, R.QUOTA_RESERVED, "False", decision.reason, decision.message)
        return p._wait(job, status, decision.reason, decision.message)
    granted = decision.granted
    nodes = [
        n for n in p._candidates(job) if node_resource(ns, n.metadata.name) in granted
    ]  # fmt: skip
    shaped = await _shape(p, job, nodes, granted) if nodes else "no granted node is Ready"
    if isinstance(shaped, str):
        # Admitted, but the granted resources cannot run it now (a node turned unhealthy
        # since): wait; the job keeps its admission until a node recovers or it times out.
        msg = f"admitted, but not plannable on what was granted: {shaped}"
        return p._wait(job, status, R.NODE_NOT_READY, msg)
    plan, work, want = shaped
    over = [r for r, n in want.items() if n > granted.get(r, 0) + _EPSILON]
    if over:
        msg = f"admitted, but the plan needs more than was granted on {', '.join(over)}"
        return p._wait(job, status, R.WAITING_FOR_ADMISSION, msg)
    # The queue's quota is the book: the operator's book only records the hold.
    p.reservations.restore(job_key(job), want)
    plan.reservation = want
    p._resumed(job, status, plan)
    status.plan = plan
    p._programs[job_key(job)] = work
    status.timings.resumed_at = now_rfc3339()
    status.timings.plan_seconds = round(time.perf_counter() - started, 6)
    status.phase = JobPhases.PLANNED
    status.message = f"{plan.strategy} on {plan.nodes} ({decision.message})"
    p._cond(job, status, R.QUOTA_RESERVED, "True", R.ADMITTED_BY_QUEUE, decision.message)
    p._cond(job, status, R.PLANNED, "True", R.PLACED, plan.reason)
    p.world.event(job, "Normal", R.PLACED, f"{status.message}: {plan.reason}")
    return StepResult(status)


async def pause_evicted(
    p: JobPipeline, job: DistributedJob, queue: ExternalQueue, why: str
) -> StepResult:
    """The queue took the job's admission back: stop what runs, release, wait again. The
    attempt's partial results are dropped; the next admission re-plans and re-runs it."""
    from .job import StepResult, job_key

    status = p._status(job)
    key = job_key(job)
    if status.phase == JobPhases.RUNNING and status.plan is not None:
        await p._cancel(job, status.attempt, status.plan.programs)
        for progress in status.progress:
            if progress.state == "Running":
                progress.state = "Cancelled"
    p.reservations.release(key)
    p._programs.pop(key, None)
    await queue.requeue(job)
    msg = f"evicted by the queue: {why}; waiting to be admitted again"
    p._cond(job, status, R.QUOTA_RESERVED, "False", R.EVICTED, msg)
    p._cond(job, status, R.PLANNED, "False", R.EVICTED, msg)
    if status.phase == JobPhases.RUNNING:
        p._cond(job, status, R.DISPATCHED, "False", R.EVICTED, msg)
    status.phase = JobPhases.PENDING
    status.message = msg
    METRICS.record("qorch_job_reroutes_total", kind="Queue", reason=R.EVICTED)
    p.world.event(job, "Warning", R.EVICTED, msg)
    return StepResult(status)
