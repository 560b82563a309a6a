"""DistributedJob handlers: one daemon per job drives the shared pipeline to a terminal phase."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from qorch.api import GROUP, TERMINAL_PHASES, VERSION, DistributedJob
from qorch.api.phases import JobPhases
from qorch.api.yamlload import errors_in_a_line
from qorch.pipeline.job import JobPipeline, reservation_key
from qorch.telemetry.metrics import METRICS

from . import kube
from . import kueue as kueue_admission
from .state import OperatorState, plain
from .world import KubeWorld

DJOB = (GROUP, VERSION, "distributedjobs")


@kopf.index(*DJOB, id="holds")
def index_holds(
    body: kopf.Body, name: str, namespace: str | None, uid: str, **_: Any
) -> dict[str, dict[str, float]]:
    """What each placed job's status says it holds. kopf fills every index before any
    other handler runs, so after a restart the book is whole before a job moves."""
    status = body.get("status") or {}
    held = (status.get("plan") or {}).get("reservation")
    being_deleted = (body.get("metadata") or {}).get("deletionTimestamp")
    if (
        status.get("phase") not in (JobPhases.PLANNED, JobPhases.RUNNING)
        or not held
        or being_deleted
    ):
        return {}
    return {reservation_key(namespace or "", name, uid): dict(held)}


def restore_reservations(state: OperatorState, holds: kopf.Index) -> None:
    """Once per operator process: later index entries may be of jobs already released."""
    if state.reservations_restored:
        return
    state.reservations_restored = True
    for key, entries in holds.items():
        for held in entries:
            state.reservations.restore(key, held)


# kopf's handler protocols do not list index kwargs (qnodes, qlinks), hence the ignores.
@kopf.daemon(*DJOB, id="pipeline", cancellation_timeout=5.0)  # type: ignore[arg-type]
async def run_job(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: Any,
    qnodes: kopf.Index,
    qlinks: kopf.Index,
    holds: kopf.Index,
    workloads: kopf.Index,
    logger: Any,
    **_: Any,
) -> None:
    """Step the job until it is terminal, persisting the status after every step.

    On an operator restart kopf starts this daemon again and the job resumes from the
    status it last persisted.
    """
    state: OperatorState = memo.state
    restore_reservations(state, holds)
    assert namespace is not None  # DistributedJobs are namespaced
    if (body.get("status") or {}).get("phase") in TERMINAL_PHASES:
        await _finish_workload(body)  # in case the operator stopped before it did
        return
    try:
        job = DistributedJob.model_validate(plain(body))
    except ValidationError as exc:
        state.reservations.release(reservation_key(namespace, name, body.metadata.uid))
        msg = f"does not validate: {errors_in_a_line(exc)}"
        await kube.patch_status(
            DJOB[2], namespace, name, {"phase": JobPhases.REJECTED, "message": msg}
        )
        return
    world = KubeWorld(qnodes, qlinks, state)
    queue = kueue_admission.KueueQueue(workloads, state)
    pipeline = JobPipeline(
        world,
        state.reservations,
        state.pipeline_settings,
        queue=queue,
        exact_outputs=state.exact_outputs,
    )
    try:
        await _drive(job, body, pipeline, state, logger)
        if kueue_admission.managed(job):
            await kueue_admission.finish(job)
    except BaseException:
        # Stopped or failed mid-step (kopf retries later): hold no place in the queue
        # meanwhile; a running plan keeps its reservation, which its status records.
        state.reservations.leave_queue(reservation_key(namespace, name, job.metadata.uid))
        raise


async def _drive(
    job: DistributedJob, body: kopf.Body, pipeline: JobPipeline, state: OperatorState, logger: Any
) -> None:
    namespace, name = job.metadata.namespace, job.metadata.name
    while job.status.phase not in TERMINAL_PHASES:
        # The daemon's body is live: spec.suspend is the one field read again while the job
        # moves (kubectl patch ... spec.suspend=false resumes a held plan), and the labels
        # (the Kueue queue a waiting job asks).
        job.spec.suspend = (body.get("spec") or {}).get("suspend") is True
        if job.status.phase in (JobPhases.PENDING, JobPhases.ADMITTED):
            job.metadata.labels = dict((body.get("metadata") or {}).get("labels") or {})
        before = job.status
        version = state.reservations.version
        result = await pipeline.step(job)
        if result.status != before:
            await kube.patch_status(DJOB[2], namespace, name, result.status.wire())
            job.status = result.status
            logger.info("phase %s: %s", job.status.phase, job.status.message)
        if result.requeue_after is not None:
            await state.reservations.changed(
                result.requeue_after, since=version, until=result.until
            )


async def _finish_workload(body: kopf.Body) -> None:
    try:
        job = DistributedJob.model_validate(plain(body))
    except ValidationError:
        return
    if kueue_admission.managed(job):
        await kueue_admission.finish(job)


@kopf.on.delete(*DJOB, id="release")  # type: ignore[arg-type]
async def release(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    memo: Any,
    qnodes: kopf.Index,
    qlinks: kopf.Index,
    **_: Any,
) -> None:
    """The finalizer: a deleted job's running programs are cancelled on their agents and
    its reservations freed."""
    key = reservation_key(namespace or "", name, uid)
    state: OperatorState = memo.state
    try:
        job = DistributedJob.model_validate(plain(body))
    except ValidationError:
        state.reservations.release(key)
    else:
        world = KubeWorld(qnodes, qlinks, state)
        pipeline = JobPipeline(
            world, state.reservations, state.pipeline_settings, exact_outputs=state.exact_outputs
        )
        await pipeline.cancel(job)
    METRICS.track_job_phase(key, None)


@kopf.on.probe(id="jobs-reserved")
def jobs_reserved(memo: Any, **_: Any) -> int:
    """Liveness endpoint detail: qubits currently reserved."""
    state: OperatorState | None = memo.get("state")
    return 0 if state is None else state.reservations.total()
