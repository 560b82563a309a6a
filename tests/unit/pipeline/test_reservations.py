"""Reservations: all or nothing, never above capacity, and the queue's order."""

import asyncio
import random

from qorch.pipeline.reservations import QueueEntry, Reservations

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
