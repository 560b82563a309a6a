"""spec.suspend: a job admitted and planned, then held in Planned reserving nothing, until
spec.suspend turns false; then it runs the plan it held, or a new one if its resources moved.
"""

from __future__ import annotations

from qorch.api import get_condition
from qorch.api import reasons as R
from qorch.pipeline.job import JobPipeline, suspended

from .fake_world import make_job
from .test_job_transitions import (
    BELL,
    BELL_COUNTS,
    GHZ3,
    LONG_AGO,
    NOISY,
    SHOTS,
    condition,
    qubits,
    queued,
    step,
    step_to,
)


async def held(pipeline: JobPipeline, name: str = "j", qasm: str = BELL, **spec):
    job = make_job(name, qasm, shots=SHOTS, suspend=True, **spec)
    await step_to(pipeline, job, "Planned")
    return job


async def test_a_suspended_job_is_planned_and_holds_nothing(pipeline, world, book, settings):
    world.add_node("noisy", 4, **NOISY)
    world.add_node("clean", 4)
    job = await held(pipeline)
    assert suspended(job.status)
    assert condition(job, R.PLANNED) == ("True", R.PLACED)
    assert condition(job, R.SUSPENDED) == ("True", R.SUSPENDED)
    plan = job.status.plan
    assert plan is not None and (plan.strategy, plan.nodes) == ("single", "clean")
    assert plan.reservation == {}
    assert book.total() == 0 and queued(book, "clean", "noisy") == []
    # Every strategy considered is in status, the chosen one with its placement.
    by_name = {c.strategy: c for c in plan.candidates}
    assert set(by_name) == {"single", "teleport", "cut", "locc-cut"}
    assert [(p.node, p.qubits) for p in by_name["single"].placement] == [("clean", [0, 1])]
    assert not by_name["cut"].feasible and "no observables" in by_name["cut"].reason
    # Held: stepping again changes nothing and sends nothing.
    before = job.status.model_copy(deep=True)
    result = await step(pipeline, job)
    assert job.status == before
    assert result.requeue_after == settings.capacity_retry_seconds
    assert world.calls == []
    assert world.reasons()[-1] == R.SUSPENDED


async def test_a_suspended_job_neither_waits_for_nor_blocks_another(pipeline, world, book):
    world.add_node("a", 3)
    assert book.try_reserve("other", {qubits("a"): 3}, {qubits("a"): 3})
    job = await held(pipeline, "suspended", GHZ3, priority=100)  # a full node: still planned
    assert suspended(job.status) and book.allocated(qubits("a")) == 3
    book.release("other")
    low = make_job("low", GHZ3, shots=SHOTS, priority=0)
    await step_to(pipeline, low, "Planned")
    assert low.status.plan and low.status.plan.reservation == {qubits("a"): 3.0}
    assert queued(book, "a") == []


async def test_unsuspended_it_runs_the_plan_it_held(pipeline, world, book):
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await held(pipeline)
    held_plan = job.status.plan
    job.spec.suspend = False
    await step(pipeline, job)
    assert job.status.phase == "Planned" and not suspended(job.status)
    assert condition(job, R.SUSPENDED) == ("False", R.RESUMED)
    assert job.status.plan and held_plan
    assert job.status.plan.placement == held_plan.placement
    assert book.allocated(qubits("a")) == 2
    assert job.status.timings.resumed_at
    await step_to(pipeline, job, "Succeeded")
    assert job.status.result and job.status.result.counts == BELL_COUNTS
    assert book.total() == 0


async def test_unsuspended_after_its_node_changed_it_is_planned_again(pipeline, world, book):
    world.add_node("a", 4)
    world.add_node("b", 4, **NOISY)
    job = await held(pipeline)
    assert job.status.plan and job.status.plan.nodes == "a"
    world.set_phase("a", "Cordoned", R.CORDONED, "annotated")
    job.spec.suspend = False
    await step(pipeline, job)
    assert job.status.phase == "Planned" and job.status.plan
    assert job.status.plan.nodes == "b"
    assert condition(job, R.SUSPENDED) == ("False", R.REPLANNED)
    replanned = get_condition(job.status.conditions, R.SUSPENDED)
    assert replanned and "held single on a, now single on b" in replanned.message
    assert book.allocated(qubits("b")) == 2 and book.allocated(qubits("a")) == 0
    assert world.reasons()[-1] == R.PLACED and R.REPLANNED in world.reasons()


async def test_a_planned_job_suspended_before_it_starts_gives_back_its_hold(pipeline, world, book):
    world.add_node("a", 4)
    job = make_job("j", BELL, shots=SHOTS)
    await step_to(pipeline, job, "Planned")
    assert book.allocated(qubits("a")) == 2
    job.spec.suspend = True
    await step(pipeline, job)
    assert suspended(job.status) and job.status.plan and job.status.plan.reservation == {}
    assert book.total() == 0


async def test_time_suspended_does_not_count_against_the_timeout(pipeline, world, book):
    world.add_node("a", 4)
    job = await held(pipeline, timeoutSeconds=60)
    job.status.timings.admitted_at = LONG_AGO  # held far longer than timeoutSeconds
    await step(pipeline, job)
    assert suspended(job.status)  # holding never times out
    job.spec.suspend = False
    await step(pipeline, job)
    assert job.status.phase == "Planned", job.status.message
    assert book.allocated(qubits("a")) == 2
