"""Reservations: all or nothing, never above capacity, and the queue's order."""

import asyncio
import random

from qorch.pipeline.reservations import Holder, QueueEntry, Reservations

CAPACITY = {"qn/a": 6.0, "qn/b": 6.0, "qlink/ab": 100.0}


def test_a_reservation_holds_everything_or_nothing():
    book = Reservations()
    assert book.try_reserve("j1", {"qn/a": 4, "qn/b": 4, "qlink/ab": 60}, CAPACITY)
    # b has room, a does not: nothing of j2 is held.
    assert not book.try_reserve("j2", {"qn/a": 3, "qn/b": 2}, CAPACITY)
    assert book.allocated("qn/b") == 4
    # The link's pair rate is a resource like qubits.
    assert not book.try_reserve("j3", {"qn/b": 1, "qlink/ab": 50}, CAPACITY)
    assert book.try_reserve("j3", {"qn/b": 1, "qlink/ab": 40}, CAPACITY)
    assert book.free(CAPACITY) == {"qn/a": 2, "qn/b": 1, "qlink/ab": 0}
    book.release("j1")
    assert book.try_reserve("j2", {"qn/a": 3, "qn/b": 2}, CAPACITY)
    assert book.total() == 6  # qubits only, not pairs per second


def test_random_reserve_and_release_never_oversubscribe():
    rng = random.Random(7)
    book = Reservations()
    held: dict[str, dict[str, float]] = {}
    for step in range(2000):
        if held and rng.random() < 0.4:
            job = rng.choice(sorted(held))
            book.release(job)
            del held[job]
            continue
        want = {r: float(rng.randint(1, 4)) for r in rng.sample(sorted(CAPACITY), 2)}
        if book.try_reserve(f"j{step}", want, CAPACITY):
            held[f"j{step}"] = want
        for resource, cap in CAPACITY.items():
            assert sum(w.get(resource, 0) for w in held.values()) <= cap
            assert book.allocated(resource) == sum(w.get(resource, 0) for w in held.values())


def entry(job: str, priority: int, admitted: str, nodes: str) -> QueueEntry:
    return QueueEntry.of(job, priority, admitted, frozenset(nodes))


def test_queue_serves_priority_then_admission_order_among_jobs_sharing_nodes():
    book = Reservations()
    low = entry("low", 0, "2026-01-01T00:00:00Z", "ab")
    early = entry("early", 5, "2026-01-01T00:00:00Z", "ab")
    late = entry("late", 5, "2026-01-01T00:00:09Z", "a")
    elsewhere = entry("elsewhere", 0, "2026-01-01T00:00:00Z", "c")
    for e in (low, early, late, elsewhere):
        book.enqueue(e)
    assert book.ahead_of(early) == []
    assert [e.job for e in book.ahead_of(late)] == ["early"]
    assert [e.job for e in book.ahead_of(low)] == ["early", "late"]
    assert book.ahead_of(elsewhere) == []  # wants other nodes: nobody is ahead of it
    # Getting a reservation leaves the queue.
    assert book.try_reserve("early", {"qn/a": 1}, CAPACITY)
    assert [e.job for e in book.ahead_of(low)] == ["late"]
    book.release("late")
    assert book.ahead_of(low) == []


async def test_waiters_wake_when_capacity_is_released():
    book = Reservations()
    assert book.try_reserve("j1", {"qn/a": 6}, CAPACITY)
    waiter = asyncio.create_task(book.changed(timeout=30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    book.release("j1")
    await asyncio.wait_for(waiter, timeout=2)


async def test_a_release_while_a_job_still_plans_is_not_lost():
    """A job reads the free capacity, plans, and only then waits: capacity released in
    between wakes it at once, or it would wait out its whole timeout (and `qorch run` would
    give it up as one no job is left to free capacity for)."""
    book = Reservations()
    assert book.try_reserve("j1", {"qn/a": 6}, CAPACITY)
    seen = book.version  # the waiting job's step starts
    book.release("j1")  # while it plans on the capacity it read
    assert await asyncio.wait_for(book.changed(timeout=30, since=seen), timeout=1)
    assert not await book.changed(timeout=0.01, since=book.version)


async def test_a_job_queued_behind_others_wakes_only_when_its_turn_comes():
    """Changes that leave jobs ahead of a queued one do not wake it (before, each of 50
    queued jobs re-planned on every change); the one that makes it first in line does,
    also when it came while the job was still planning."""
    book = Reservations()
    first = entry("first", 0, "2026-01-01T00:00:00Z", "a")
    second = entry("second", 0, "2026-01-01T00:00:01Z", "a")
    third = entry("third", 0, "2026-01-01T00:00:02Z", "a")
    for e in (first, second, third):
        book.enqueue(e)
    seen = book.version
    assert book.try_reserve("other", {"qn/a": 1}, CAPACITY)  # a change, third still behind
    waiter = asyncio.ensure_future(
        book.changed(timeout=30, since=seen, until=lambda: book.first_in_line(third))
    )
    await asyncio.sleep(0.05)
    assert not waiter.done()
    book.leave_queue("first")  # second is still ahead
    book.release("other")
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert book.try_reserve("second", {"qn/a": 1}, CAPACITY)  # leaves the queue
    assert await asyncio.wait_for(waiter, timeout=2)
    # A change after which `until` still fails ends no wait: the timeout does.
    asyncio.get_running_loop().call_later(0.01, book.wake)
    assert not await book.changed(timeout=0.1, until=lambda: False)


def test_same_node_names_in_two_namespaces_are_different_resources():
    from qorch.pipeline.planning import capacity
    from tests.support import make_node

    nodes = []
    for ns in ("team-a", "team-b"):
        node = make_node("qpu-1", 5)
        node.metadata.namespace = ns
        nodes.append(node)
    limits = capacity(nodes, [])
    assert limits == {"qn/team-a/qpu-1": 5.0, "qn/team-b/qpu-1": 5.0}
    book = Reservations()
    assert book.try_reserve("team-a/j", {"qn/team-a/qpu-1": 5}, limits)
    assert book.try_reserve("team-b/j", {"qn/team-b/qpu-1": 5}, limits)


# -- preemption --------------------------------------------------------------------------


def test_victims_are_the_fewest_lowest_priority_latest_holds_that_make_room():
    book = Reservations()
    assert book.try_reserve("old-low", {"qn/a": 2}, CAPACITY, Holder(1, True))
    assert book.try_reserve("new-low", {"qn/a": 2}, CAPACITY, Holder(1, True))
    assert book.try_reserve("mid", {"qn/a": 2}, CAPACITY, Holder(5, True))
    # Fits already: nobody is preempted.
    assert book.victims("urgent", {"qn/b": 6}, CAPACITY, 10) == []
    # 2 qubits short on a: the most recent of the lowest priority makes room.
    assert book.victims("urgent", {"qn/a": 2}, CAPACITY, 10) == ["new-low"]
    # 4 short: both low ones, before the one of priority 5.
    assert book.victims("urgent", {"qn/a": 4}, CAPACITY, 10) == ["new-low", "old-low"]
    # Only strictly lower priorities: a job of priority 5 cannot preempt "mid".
    assert book.victims("five", {"qn/a": 6}, CAPACITY, 5) is None
    # Holds on other resources do not help.
    assert book.try_reserve("b-user", {"qn/b": 6}, CAPACITY, Holder(0, True))
    assert book.victims("urgent", {"qn/a": 6, "qn/b": 1}, CAPACITY, 10) == [
        "b-user",
        "new-low",
        "old-low",
        "mid",
    ]


def test_a_hold_preempted_often_enough_or_of_unknown_priority_is_never_a_victim():
    book = Reservations()
    assert book.try_reserve("spent", {"qn/a": 6}, CAPACITY, Holder(0, False))
    assert book.victims("urgent", {"qn/a": 1}, CAPACITY, 10) is None
    book.release("spent")
    # Restored after a restart: no priority known until the job reserves again.
    book.restore("restored", {"qn/a": 6})
    assert book.victims("urgent", {"qn/a": 1}, CAPACITY, 10) is None
    assert book.try_reserve("restored", {"qn/a": 6}, CAPACITY, Holder(0, True))
    assert book.victims("urgent", {"qn/a": 1}, CAPACITY, 10) == ["restored"]


async def test_preempting_tells_the_victim_once_and_its_release_wakes_the_waiter():
    book = Reservations()
    assert book.try_reserve("low", {"qn/a": 6}, CAPACITY, Holder(0, True))
    book.preempt(["low", "not-holding"], "urgent")
    assert book.preempted_by("low") == "urgent"
    assert book.preempted_by("not-holding") is None
    book.preempt(["low"], "another")  # asked already: the first asker stands
    assert book.preempted_by("low") == "urgent"
    waiter = asyncio.ensure_future(book.changed(5))
    await asyncio.sleep(0)
    book.release("low")
    assert await waiter
    assert book.preempted_by("low") is None
    assert book.try_reserve("urgent", {"qn/a": 6}, CAPACITY)


def test_no_later_job_backfills_past_a_large_waiting_job_of_its_priority():
    """A large job waiting for a whole node is not starved by smaller jobs that would fit
    now: each waits behind it while it waits for some of the same nodes."""
    book = Reservations()
    assert book.try_reserve("running", {"qn/a": 4}, CAPACITY)
    large = entry("large", 0, "2026-01-01T00:00:00Z", "a")
    book.enqueue(large)
    small = entry("small", 0, "2026-01-01T00:00:01Z", "a")
    assert [e.job for e in book.ahead_of(small)] == ["large"]
    # Of higher priority, it goes first: priority is strict.
    urgent = entry("urgent", 1, "2026-01-01T00:00:02Z", "a")
    assert book.ahead_of(urgent) == []
