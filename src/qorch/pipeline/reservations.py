"""Reservations and the queue: a plan holds all of its resources or none, so no node is
oversubscribed and no two jobs deadlock on partial holds; jobs that wait are served in
priority order.

Resources are qubits on nodes (`qn/<namespace>/<name>`) and Bell-pair rate on links
(`qlink/<namespace>/<name>`, pairs per second). The book lives in the operator's memory;
after a restart it is read back from the placed jobs' statuses, so one operator replica
owns it at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


def node_resource(namespace: str, name: str) -> str:
    return f"qn/{namespace}/{name}"


def link_resource(namespace: str, name: str) -> str:
    return f"qlink/{namespace}/{name}"


@dataclass(frozen=True, order=True)
class QueueEntry:
    """A job waiting for capacity. Order: higher priority first, then earlier admission."""

    rank: tuple[int, str, str]
    job: str
    nodes: frozenset[str]

    @classmethod
    def of(cls, job: str, priority: int, admitted_at: str, nodes: frozenset[str]) -> QueueEntry:
        return cls((-priority, admitted_at, job), job, nodes)


@dataclass(frozen=True)
class Holder:
    """Who holds a reservation, as preemption judges it: its priority, and whether it may
    still be preempted (docs/preemption.md)."""

    priority: int
    preemptible: bool


class Reservations:
    """All-or-nothing reservations keyed by job, and the queue of jobs waiting for them."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}
        self._queue: dict[str, QueueEntry] = {}
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        # Preemption: each holder's priority (a hold restored after a restart has none until
        # its job reserves again, and is not preempted meanwhile), the order of the holds,
        # and the jobs asked to stop, each with the job it makes room for.
        self._holders: dict[str, Holder] = {}
        self._reserved_at: dict[str, int] = {}
        self._reserves = 0
        self._preempted: dict[str, str] = {}
        self._version = 0

    def allocated(self, resource: str) -> float:
        with self._lock:
            return sum(h.get(resource, 0) for h in self._held.values())

    def total(self) -> int:
        """Qubits reserved across all nodes."""
        with self._lock:
            return int(
                sum(n for h in self._held.values() for r, n in h.items() if r.startswith("qn/"))
            )

    def free(self, capacity: dict[str, float]) -> dict[str, float]:
        with self._lock:
            used: dict[str, float] = {}
            for held in self._held.values():
                for resource, n in held.items():
                    used[resource] = used.get(resource, 0) + n
        return {r: cap - used.get(r, 0) for r, cap in capacity.items()}

    def try_reserve(
        self,
        job: str,
        want: dict[str, float],
        capacity: dict[str, float],
        holder: Holder | None = None,
    ) -> bool:
        """Reserve every resource in `want` for `job`, or nothing; re-reserving is a no-op.
        A job that gets its reservation leaves the queue. `holder`: what preemption needs to
        know of the job; without it the hold is never preempted."""
        with self._lock:
            if holder is not None and job in self._held:
                self._holders[job] = holder
            if self._held.get(job) == want:
                return True
            others = [h for k, h in self._held.items() if k != job]
            for resource, n in want.items():
                used = sum(h.get(resource, 0) for h in others)
                # A tolerance for float rates; qubits are whole numbers.
                if used + n > capacity.get(resource, 0) + 1e-9:
                    return False
            self._held[job] = dict(want)
            self._queue.pop(job, None)
            self._reserves += 1
            self._reserved_at[job] = self._reserves
            if holder is not None:
                self._holders[job] = holder
            load = {r: round(sum(h.get(r, 0) for h in self._held.values()), 6) for r in want}
            log.info(
                "reserved %s: %s",
                job,
                ", ".join(
                    f"{r} {round(n, 6)} ({load[r]}/{capacity.get(r, 0)})" for r, n in want.items()
                ),
            )
        self._notify()
        return True

    def restore(self, job: str, held: dict[str, float]) -> None:
        """Hold what a job's status says it holds, as found after a restart: the status is
        the truth, so this is not checked against capacity."""
        with self._lock:
            self._held[job] = dict(held)
            self._queue.pop(job, None)
            self._reserves += 1
            self._reserved_at[job] = self._reserves
        log.info("restored %s: %s", job, ", ".join(f"{r} {n}" for r, n in held.items()))

    def drop_hold(self, job: str) -> None:
        """Forget a hold left by a step that failed after reserving; the job keeps its place
        in the queue and nobody is woken (it was never visible as free capacity)."""
        with self._lock:
            self._held.pop(job, None)
            self._forget(job)

    def release(self, job: str) -> None:
        with self._lock:
            held = self._held.pop(job, None)
            queued = self._queue.pop(job, None)
            self._forget(job)
        if held is not None:
            log.info("released %s", job)
        if held is not None or queued is not None:
            self._notify()

    def _forget(self, job: str) -> None:
        self._holders.pop(job, None)
        self._reserved_at.pop(job, None)
        self._preempted.pop(job, None)

    # -- preemption ------------------------------------------------------------------------

    def victims(
        self, job: str, want: dict[str, float], capacity: dict[str, float], priority: int
    ) -> list[str] | None:
        """The holds to preempt so that `want` fits: [] when it fits already, None when no
        set of preemptible holds of lower priority frees enough. Lowest priority first, then
        the most recently reserved (the least work lost); no more than needed."""
        with self._lock:
            used: dict[str, float] = {}
            for key, held in self._held.items():
                if key != job:
                    for resource, n in held.items():
                        used[resource] = used.get(resource, 0) + n
            short = {
                r: used.get(r, 0) + n - capacity.get(r, 0)
                for r, n in want.items()
                if used.get(r, 0) + n > capacity.get(r, 0) + 1e-9
            }
            if not short:
                return []
            eligible = sorted(
                (h.priority, -self._reserved_at.get(key, 0), key)
                for key, h in self._holders.items()
                if key != job
                and key in self._held
                and h.preemptible
                and h.priority < priority
                and any(self._held[key].get(r) for r in short)
            )
            chosen = []
            for _, _, key in eligible:
                chosen.append(key)
                for resource in short:
                    short[resource] -= self._held[key].get(resource, 0)
                if all(left <= 1e-9 for left in short.values()):
                    return chosen
            return None

    def preempt(self, victims: list[str], by: str) -> None:
        """Ask the holders `victims` to stop and release what they hold, for job `by`."""
        with self._lock:
            asked = [v for v in victims if v in self._held and v not in self._preempted]
            for victim in asked:
                self._preempted[victim] = by
        for victim in asked:
            log.info("preempting %s for %s", victim, by)
        if asked:
            self._notify()

    def preempted_by(self, job: str) -> str | None:
        """The job that `job` must make room for, if it was preempted."""
        with self._lock:
            return self._preempted.get(job)

    # -- queue -----------------------------------------------------------------------------

    def enqueue(self, entry: QueueEntry) -> None:
        with self._lock:
            self._queue[entry.job] = entry

    def leave_queue(self, job: str) -> None:
        with self._lock:
            left = self._queue.pop(job, None)
        if left is not None:
            self._notify()

    def ahead_of(self, entry: QueueEntry) -> list[QueueEntry]:
        """Waiting jobs served before `entry` that want some of the same nodes."""
        with self._lock:
            return sorted(
                e
                for e in self._queue.values()
                if e.job != entry.job and e.rank < entry.rank and e.nodes & entry.nodes
            )

    def first_in_line(self, entry: QueueEntry) -> bool:
        """Whether no waiting job is served before `entry` on its nodes."""
        return not self.ahead_of(entry)

    # -- waiting ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Wake the jobs waiting in `changed`: something they wait for outside the book (a
        queue's admission) may have changed."""
        self._notify()

    @property
    def version(self) -> int:
        """Counts the changes: read it before a step, pass it to `changed` after."""
        return self._version

    def _notify(self) -> None:
        self._version += 1
        event, self._changed = self._changed, None
        if event is not None:
            event.set()

    async def changed(
        self,
        timeout: float,
        since: int | None = None,
        until: Callable[[], bool] | None = None,
    ) -> bool:
        """Whether a reservation or the queue changed within `timeout` seconds, or already
        after `version` was `since`: a change while the caller was still planning (its
        capacity read before the change) is not lost. With `until`, only a change after
        which it holds counts: a job queued behind others sleeps through the changes that
        leave them ahead of it (50 queued jobs otherwise re-planned 40 times each)."""
        if since is not None and since != self._version and (until is None or until()):
            return True
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                async with asyncio.timeout_at(deadline):
                    await self._changed.wait()
            except TimeoutError:
                return False
            if until is None or until():
                return True
