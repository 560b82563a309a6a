"""The memory this process may use, so that the widest simulation it takes on fits in it.

In a pod that is the container's limit (`resources.limits.memory`), which the kernel enforces
by killing a process of the container: a simulation sized for the machine instead would end
the operator, and a job that asks for it again would do so after every restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

#: The container's limit under cgroup v2, then v1 ("max", or a number near 2^63: none).
CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
#: Peak bytes per outcome of an exact simulation and its outcome probabilities (amplitudes
#: 16, probabilities 8, their copies on the way out; measured at 24 qubits: 514 MiB in the
#: simulation process, 258 MiB more in the operator).
EXACT_BYTES_PER_OUTCOME = 40
#: Of the limit, what one simulation may take: the rest is the process itself (Qiskit and
#: Aer imported: 0.2 GiB) and the other work running beside it.
SIMULATION_SHARE = 0.5
#: The operator itself, its imports done (196 MiB measured), with some room: the shares of
#: its budgets are of what the limit leaves beyond it. Shares of the whole limit overran it
#: below about 0.8 GiB: at 640 MiB the widest simulation, the held and the kept outputs
#: took 320 + 160 + 40 MiB, beside the process's 196.
PROCESS_BASE_BYTES = 256 << 20


def memory_limit_bytes(files: Sequence[Path] = CGROUP_LIMIT_FILES) -> int:
    """The container's memory limit, or the machine's memory where that is smaller."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(int(text), physical)
    return physical


@functools.cache
def process_limit_bytes() -> int:
    """`memory_limit_bytes`, read once per process: the widths derived from it are fixed at
    import, and the slot for wide simulations follows the same figure."""
    return memory_limit_bytes()


def budget_bytes(limit: int | None = None) -> int:
    """What the operator's budgets share out: the memory limit (this process's, unless
    given) less PROCESS_BASE_BYTES, and at least a quarter of it."""
    limit = process_limit_bytes() if limit is None else limit
    return max(limit - PROCESS_BASE_BYTES, limit // 4)


def widest_fitting(bytes_per_outcome: int, cap: int, limit: int | None = None) -> int:
    """The most qubits n, at most `cap`, whose simulation (`bytes_per_outcome` x 2^n at its
    peak) fits in `SIMULATION_SHARE` of `budget_bytes`."""
    budget = SIMULATION_SHARE * budget_bytes(limit)
    n = cap
    while n > 1 and bytes_per_outcome << n > budget:
        n -= 1
    return n


def simulator_memory_mb() -> int:
    """Aer's `max_memory_mb` for every simulator of this process: its SIMULATION_SHARE of
    the memory limit. Aer's own default is the machine's memory, not the container's: a
    circuit too wide for the pod would have the kernel kill the process mid-run (measured
    in a 2 GiB cgroup with a 27-qubit state), where Aer refuses it at once and says how
    much it needs. The operator's own widths (`widest_fitting`) stay inside this bound."""
    return max(1, int(SIMULATION_SHARE * process_limit_bytes()) >> 20)


#: Simulations whose peak is over this share of `budget_bytes` run one at a time, so that one of
#: them (at most SIMULATION_SHARE) and the narrower ones of the planner's worker threads
#: beside it still fit.
WIDE_SHARE = 1 / 32
#: How often a task on the event loop looks whether the slot is free.
WAIT_SECONDS = 0.05
# Not reentrant: tasks of one event loop share its thread, and each must wait its turn.
_wide = threading.Lock()


def _is_wide(nbytes: int) -> bool:
    return nbytes > WIDE_SHARE * budget_bytes()


@contextlib.contextmanager
def simulating(nbytes: int) -> Iterator[None]:
    """While a simulation that peaks at `nbytes` runs: the process's one slot for wide
    simulations, waited for, if it is one."""
    if not _is_wide(nbytes):
        yield
        return
    with _wide:
        yield


@contextlib.asynccontextmanager
async def simulating_async(nbytes: int) -> AsyncIterator[None]:
    """`simulating` for the event loop: it waits without blocking the loop, and a task
    cancelled while it waits holds nothing."""
    if not _is_wide(nbytes):
        yield
        return
    while not _wide.acquire(blocking=False):
        await asyncio.sleep(WAIT_SECONDS)
    try:
        yield
    finally:
        _wide.release()


#: Of `budget_bytes`, what exact outputs may take together while they wait for their jobs'
#: programs to return. One alone is at most a tenth of it (8 of the
#: EXACT_BYTES_PER_OUTCOME a simulation within SIMULATION_SHARE peaks at), so a few of the
#: widest fit at once, and the wide simulation's slot beside them.
HELD_SHARE = 0.25


class HeldMemory:
    """Bytes that results take while they wait for a later step, bounded together: without
    a bound, as many running jobs as there are wide nodes would each hold their exact
    output, and the kernel would kill the operator, again after each restart. Takers get
    their bytes in the order they asked: a large one is not starved by small ones."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._waiting: collections.deque[object] = collections.deque()

    def holding(self) -> Holding:
        """A holder that takes nothing until `Holding.take`."""
        return Holding(self)


class Holding:
    """One holder's bytes of a `HeldMemory`: taken once, given back once; after `release`,
    a `take` still waiting or yet to come takes nothing."""

    def __init__(self, memory: HeldMemory) -> None:
        self._memory = memory
        self._bytes = 0
        self._released = False

    async def take(self, nbytes: int) -> bool:
        """Wait, without blocking the event loop, for the turn of this holder and until
        `nbytes` fit (or, larger than the budget, until nothing else is held), then hold
        them; False, holding nothing, once released. A task cancelled while it waits holds
        nothing."""
        if not nbytes:  # nothing to hold: no turn to wait for
            return not self._released
        memory, ticket = self._memory, object()
        memory._waiting.append(ticket)
        try:
            while not self._released and (
                memory._waiting[0] is not ticket
                or (memory.used and memory.used + nbytes > memory.budget)
            ):
                await asyncio.sleep(WAIT_SECONDS)
        finally:
            memory._waiting.remove(ticket)
        if self._released:
            return False
        memory.used += nbytes
        self._bytes = nbytes
        return True

    def release(self) -> None:
        self._released = True
        self._memory.used -= self._bytes
        self._bytes = 0
