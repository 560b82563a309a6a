"""Jobs admitted by an external queue (Kueue's port): they ask for their plan's resources,
wait until admitted, are placed on what was granted, and pause when evicted."""

from __future__ import annotations

from qorch.api import DistributedJob
from qorch.api import reasons as R
from qorch.pipeline.job import JobPipeline
from qorch.pipeline.ports import QueueDecision, QueueRequest

from .fake_world import make_job
from .test_job_transitions import BELL, BELL_COUNTS, SHOTS, condition, qubits, step, step_to


class FakeQueue:
    """Admits when told to; records what it was asked and what it was given back."""

    def __init__(self) -> None:
        self.requests: list[QueueRequest] = []
        self.decision = QueueDecision("waiting", R.WAITING_FOR_ADMISSION, "in LocalQueue q")
        self.eviction: str | None = None
        self.requeued = 0

    def manages(self, job: DistributedJob) -> bool:
        return True

    async def admission(self, job: DistributedJob, request: QueueRequest) -> QueueDecision:
        self.requests.append(request)
        return self.decision

    def evicted(self, job: DistributedJob) -> str | None:
        return self.eviction

    async def requeue(self, job: DistributedJob) -> None:
        self.requeued += 1
        self.eviction = None
        self.decision = QueueDecision("waiting", R.WAITING_FOR_ADMISSION, "requeued")


def queued_pipeline(world, book, settings, queue: FakeQueue) -> JobPipeline:
    return JobPipeline(world, book, settings, queue=queue)


async def test_a_queued_job_waits_asks_for_its_plan_and_runs_where_it_was_granted(
    world, book, settings
):
    world.add_node("clean", 4)
    world.add_node("other", 4, twoQubitError=0.05)
    world.answer("other", BELL_COUNTS)
    queue = FakeQueue()
    pipeline = queued_pipeline(world, book, settings, queue)
    job = make_job("j", BELL, shots=SHOTS)
    await step_to(pipeline, job, "Admitted")
    result = await step(pipeline, job)
    assert job.status.phase == "Pending"
    assert condition(job, R.QUOTA_RESERVED) == ("False", R.WAITING_FOR_ADMISSION)
    assert result.requeue_after == settings.capacity_retry_seconds
    # Planned on idle nodes: the cleaner node, two qubits; either node may take it.
    request = queue.requests[-1]
    assert request.want == {qubits("clean"): 2.0}
    assert set(request.candidates) == {"clean", "other"}
    assert book.total() == 0  # the queue is the book

    # Kueue assigns the other node's flavor: the placement follows it.
    granted = {qubits("other"): 2.0}
    queue.decision = QueueDecision("admitted", R.ADMITTED_BY_QUEUE, "by ClusterQueue cq", granted)
    await step(pipeline, job)
    assert job.status.phase == "Planned" and job.status.plan is not None
    assert job.status.plan.nodes == "other"
    assert condition(job, R.QUOTA_RESERVED) == ("True", R.ADMITTED_BY_QUEUE)
    await step_to(pipeline, job, "Succeeded")
    assert [c.node for c in world.sent("run")] == ["other"]


async def test_a_rejection_by_the_queue_rejects_the_job_with_its_reason(world, book, settings):
    world.add_node("a", 4)
    queue = FakeQueue()
    queue.decision = QueueDecision("rejected", R.EXCEEDS_LARGEST_FLAVOR, "largest is f (1)")
    pipeline = queued_pipeline(world, book, settings, queue)
    job = make_job("j", BELL, shots=SHOTS)
    await step_to(pipeline, job, "Rejected")
    assert condition(job, R.QUOTA_RESERVED) == ("False", R.EXCEEDS_LARGEST_FLAVOR)
    assert job.status.message == "largest is f (1)"


async def test_an_evicted_running_job_is_cancelled_released_and_runs_again_when_readmitted(
    world, book, settings
):
    world.add_node("a", 4)
    queue = FakeQueue()
    pipeline = queued_pipeline(world, book, settings, queue)
    job = make_job("j", BELL, shots=SHOTS)
    queue.decision = QueueDecision("admitted", R.ADMITTED_BY_QUEUE, "ok", {qubits("a"): 2.0})

    def preempted() -> None:
        queue.eviction = "Preempted: to make room for a higher priority Workload"

    world.hang("a", meanwhile=preempted)
    await step_to(pipeline, job, "Running")
    assert book.allocated(qubits("a")) == 2
    await step(pipeline, job)  # collects until the eviction is seen
    assert job.status.phase == "Pending"
    assert condition(job, R.QUOTA_RESERVED) == ("False", R.EVICTED)
    assert "Preempted" in job.status.message
    assert queue.requeued == 1 and book.total() == 0
    cancelled = world.sent("cancel")
    assert cancelled and cancelled[0].node == "a"
    assert [p.state for p in job.status.progress] == ["Cancelled"]

    # Waiting again; admitted again, it runs a new attempt.
    await step(pipeline, job)
    assert condition(job, R.QUOTA_RESERVED) == ("False", R.WAITING_FOR_ADMISSION)
    world.answer("a", BELL_COUNTS)
    queue.decision = QueueDecision("admitted", R.ADMITTED_BY_QUEUE, "ok", {qubits("a"): 2.0})
    await step_to(pipeline, job, "Succeeded")
    assert job.status.attempt == 2
    assert sum(job.status.result.counts.values()) == SHOTS  # type: ignore[union-attr]
