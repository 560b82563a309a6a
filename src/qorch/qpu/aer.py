"""The one way qorch makes an Aer simulator that runs circuits: bounded by this process's
memory limit (`memory_limit.simulator_memory_mb`), so that a state too large for the pod is
refused by Aer, saying how much it needs, rather than ended by the kernel."""

from __future__ import annotations

from typing import Any

from qiskit_aer import AerSimulator

from qorch.memory_limit import simulator_memory_mb


def bounded_simulator(**options: Any) -> AerSimulator:
    """`AerSimulator(**options)` whose states may take at most `simulator_memory_mb`."""
    return AerSimulator(max_memory_mb=simulator_memory_mb(), **options)
