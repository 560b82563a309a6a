"""Preemption through the pipeline, against the fake World: a waiting job of a preempting
class stops a running job of lower priority, which cancels its programs, releases its
qubits and waits to be planned again; a job preempted QORCH_MAX_PREEMPTIONS times is not
preempted again."""

from __future__ import annotations

import pytest

from qorch.api import reasons as R
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.priority import PriorityClasses
from qorch.pipeline.reservations import Reservations

from .fake_world import WATCH_SECONDS, FakeWorld, make_job
from .test_job_transitions import GHZ3, condition, key, step, step_to

CLASSES = PriorityClasses.parse(
    '{"urgent": {"value": 100, "preemptionPolicy": "PreemptLowerPriority"}, "high": {"value": 100}}'
)
COUNTS = {"000": 500, "111": 500}


@pytest.fixture
def settings() -> PipelineSettings:
    return PipelineSettings(
        watch_seconds=WATCH_SECONDS,
        capacity_retry_seconds=0.01,
        priority_classes=CLASSES,
        max_preemptions=1,
    )


async def test_an_urgent_job_preempts_a_running_one_once_and_both_finish(
    pipeline: JobPipeline, world: FakeWorld, book: Reservations
):
    world.add_node("a", 4)  # one 3-qubit job at a time
    low = make_job("low", GHZ3, shots=1000)
    await step_to(pipeline, low, "Running")
    urgent = make_job("urgent", GHZ3, shots=1000, priorityClassName="urgent")
    await step_to(pipeline, urgent, "Admitted")
    await step(pipeline, urgent)
    assert condition(urgent, R.PLANNED) == ("False", R.PREEMPTING), urgent.status.message
    assert "preempting low (lower priority)" in urgent.status.message
    assert book.preempted_by(key(low)) == key(urgent)
    # The running job sees it at its next look, and stops.
    world.hang("a")
    await step(pipeline, low)
    assert low.status.phase == "Pending", low.status.message
    assert condition(low, R.PLANNED) == ("False", R.PREEMPTED)
    assert low.status.preemptions == 1
    assert [p.state for p in low.status.progress] == ["Cancelled"]
    [cancel] = world.sent("cancel")
    assert cancel.payload == {"programIds": [f"{key(low, 1)}/p0"]}
    assert world.reasons()[-1] == R.PREEMPTED
    assert book.allocated("qn/default/a") == 0
    # The urgent job is placed; the preempted one waits behind it.
    world.answer("a", COUNTS)
    await step_to(pipeline, urgent, "Succeeded")
    await step_to(pipeline, low, "Running")
    assert low.status.attempt == 2
    # Preempted as often as allowed: another urgent job waits for it instead.
    again = make_job("again", GHZ3, shots=1000, priorityClassName="urgent")
    await step_to(pipeline, again, "Admitted")
    await step(pipeline, again)
    assert condition(again, R.PLANNED) == ("False", R.WAITING_FOR_CAPACITY)
    assert book.preempted_by(key(low)) is None
    await step_to(pipeline, low, "Succeeded")
    await step_to(pipeline, again, "Succeeded")


async def test_a_class_of_high_priority_that_never_preempts_only_goes_first_in_the_queue(
    pipeline: JobPipeline, world: FakeWorld, book: Reservations
):
    world.add_node("a", 4)
    low = make_job("low", GHZ3, shots=1000)
    await step_to(pipeline, low, "Running")
    high = make_job("high", GHZ3, shots=1000, priorityClassName="high")
    await step_to(pipeline, high, "Admitted")
    await step(pipeline, high)
    assert condition(high, R.PLANNED) == ("False", R.WAITING_FOR_CAPACITY)
    assert book.preempted_by(key(low)) is None


async def test_an_unknown_class_is_rejected_at_admission(pipeline: JobPipeline, world: FakeWorld):
    world.add_node("a", 4)
    job = make_job("typo", GHZ3, priorityClassName="urgnet")
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.SUCCEEDED) == ("False", R.INVALID_PRIORITY_CLASS)
    assert "'urgnet' is not a priority class (known: high, urgent)" in job.status.message


async def test_a_planned_job_not_started_yet_is_preempted_without_a_cancel(
    pipeline: JobPipeline, world: FakeWorld, book: Reservations
):
    world.add_node("a", 4)
    low = make_job("low", GHZ3, shots=1000)
    await step_to(pipeline, low, "Planned")
    urgent = make_job("urgent", GHZ3, shots=1000, priorityClassName="urgent")
    await step_to(pipeline, urgent, "Admitted")
    await step(pipeline, urgent)
    assert condition(urgent, R.PLANNED) == ("False", R.PREEMPTING)
    await step(pipeline, low)
    assert low.status.phase == "Pending"
    assert (low.status.attempt, low.status.preemptions) == (0, 1)
    assert "its plan, not started yet, was released" in low.status.message
    assert world.sent("cancel") == []
    assert book.allocated("qn/default/a") == 0
