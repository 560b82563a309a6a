"""The memory this process may use, so that the widest simulation it takes on fits in it.

In a pod that is the container's limit (`resources.limits.memory`), which the kernel enforces
by killing a process of the container: a simulation sized for the machine instead would end
the operator, and a job that asks for it again would do so after every restart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

#: The container's limit under cgroup v2, then v1 ("max", or a number near 2^63: none).
CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
#: Of the limit, what one simulation may take: the rest is the process itself (Qiskit and
#: Aer imported: 0.2 GiB) and the other work running beside it.
SIMULATION_SHARE = 0.5


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


def widest_fitting(bytes_per_outcome: int, cap: int, limit: int | None = None) -> int:
    """The most qubits n, at most `cap`, whose simulation (`bytes_per_outcome` x 2^n at its
    peak) fits in `SIMULATION_SHARE` of the memory limit."""
    budget = SIMULATION_SHARE * (memory_limit_bytes() if limit is None else limit)
    n = cap
    while n > 1 and bytes_per_outcome << n > budget:
        n -= 1
    return n
