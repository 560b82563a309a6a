"""`NodeExecutor.run_all`: several circuits compiled together and sampled in as few Aer runs
as their simulators allow, each circuit's counts in its own place."""

from __future__ import annotations

from qiskit import QuantumCircuit

from qorch.api.quantum_node import QuantumNodeSpec
from qorch.qpu.executor import NodeExecutor


def flips(width: int, ones: list[int]) -> QuantumCircuit:
    """|0...0> with X on `ones`, every qubit measured: one outcome, ideally."""
    qc = QuantumCircuit(width, width)
    for q in ones:
        qc.x(q)
    qc.measure(range(width), range(width))
    return qc


def measured_twice() -> QuantumCircuit:
    """A mid-circuit measurement: read 1, flip back, read 0."""
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    qc.x(0)
    qc.measure(0, 1)
    return qc


def unmeasured() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    return qc


def most_common(counts: dict[str, int]) -> str:
    return max(counts, key=lambda k: counts[k])


def test_each_circuit_gets_its_own_counts_whichever_run_drew_them() -> None:
    spec = QuantumNodeSpec.model_validate({"qubits": 7})
    circuits = [flips(3, [0]), measured_twice(), unmeasured(), flips(3, [1, 2])]
    counts = NodeExecutor(spec).run_all(circuits, 100, seed=5)
    assert counts == [{"001": 100}, {"01": 100}, {}, {"110": 100}]


def test_a_noisy_node_splits_density_matrices_from_shot_by_shot_runs_and_keeps_the_order() -> None:
    noise = {"singleQubitError": 0.001, "readoutError": 0.001}
    spec = QuantumNodeSpec.model_validate({"qubits": 7, "noise": noise})
    # 64 shots: one density matrix for 2 qubits (64 > 2^2), shot by shot for 7 (64 < 2^7).
    circuits = [flips(7, [6]), flips(2, [1]), flips(7, [0, 3]), flips(2, [0])]
    executor = NodeExecutor(spec)
    counts = executor.run_all(circuits, 64, seed=5)
    assert [most_common(c) for c in counts] == ["1000000", "10", "0001001", "01"]
    assert [sum(c.values()) for c in counts] == [64] * 4
    assert executor.run_all(circuits, 64, seed=5) == counts  # seeded
