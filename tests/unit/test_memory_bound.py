"""Simulations stay within the process's memory limit (a pod's): a circuit whose state
would not fit is refused by Aer at once, saying how much it needs. On an agent its program
fails with that (ExecutionFailed). Without the bound Aer sizes itself to the machine, and
the kernel kills the process mid-run."""

from __future__ import annotations

import pytest
from qiskit.exceptions import QiskitError

from qorch import memory_limit
from qorch.pipeline.verification import exact_probabilities
from qorch.qpu.composite_noise import simulate_composite
from qorch.qpu.executor import NodeExecutor
from tests.support import deep_circuit, make_node

LIMIT = 256 << 20  # half of it for simulations: 128 MiB, a 23-qubit statevector


@pytest.fixture
def small_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_limit, "process_limit_bytes", lambda: LIMIT)


@pytest.mark.usefixtures("small_pod")
def test_a_circuit_too_wide_for_the_memory_limit_fails_at_once_saying_why() -> None:
    executor = NodeExecutor(make_node("small", 24).spec)
    with pytest.raises(RuntimeError) as info:  # 256 MiB of state: refused, not simulated
        executor.sample(deep_circuit(24, 1), 10, seed=1)
    assert "Insufficient memory" in str(info.value), info.value
    assert "max memory: 128M" in str(info.value), info.value
    # One that fits runs on the same executor.
    assert sum(executor.sample(deep_circuit(22, 1), 10, seed=1).counts.values()) == 10


@pytest.mark.usefixtures("small_pod")
def test_a_co_simulated_program_is_bounded_alike() -> None:
    description = {"basisGates": ["rx", "cx"], "qubitOwner": ["a"] * 24, "nodes": {"a": {}}}
    with pytest.raises(RuntimeError, match="Insufficient memory"):
        simulate_composite(deep_circuit(24, 1), description, 10, seed=1)


@pytest.mark.usefixtures("small_pod")
def test_the_operators_exact_simulations_are_bounded_alike() -> None:
    """Inside its widths (`widest_fitting`, fixed at import) as a second line: here the
    limit shrank after them."""
    with pytest.raises(QiskitError, match="Insufficient memory"):
        exact_probabilities(deep_circuit(24, 1))
