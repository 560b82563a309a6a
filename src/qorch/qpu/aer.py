"""The one way qorch makes an Aer simulator that runs circuits: bounded by this process's
memory limit (`memory_limit.simulator_memory_mb`), so that a state too large for the pod is
refused by Aer, saying how much it needs, rather than ended by the kernel."""

from __future__ import annotations

import os
from typing import Any

from qiskit_aer import AerSimulator

from qorch.memory_limit import simulator_memory_mb


def bounded_simulator(**options: Any) -> AerSimulator:
    """`AerSimulator(**options)` whose states may take at most `simulator_memory_mb`, on at
    most OMP_NUM_THREADS threads."""
    return AerSimulator(**{"max_memory_mb": simulator_memory_mb(), **_threads(), **options})


def _threads() -> dict[str, int]:
    """OMP_NUM_THREADS as Aer's own thread limit: OpenMP reads it once, when Aer loads, and
    an agent forked from a process that had loaded Aer (as `qorch run` starts them) is given
    it after."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return {"max_parallel_threads": int(first)} if first.isdigit() and int(first) > 0 else {}
