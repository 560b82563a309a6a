"""The executor branches shots only where branches stay few next to the shots: many early
measurements on a few qubits would make every shot a branch of its own, each with Aer's
per-branch overhead (15x slower than plain shots in benchmarks/shot_branching.py)."""

from __future__ import annotations

from qiskit import QuantumCircuit

from qorch.qpu.circuits import branching_pays
from qorch.qpu.executor import NodeExecutor
from tests.support import make_node


def measured_early(width: int, measured_layers: int, layers: int = 30) -> QuantumCircuit:
    """Layers of H and CX; the first `measured_layers` end in a measurement, then a reset
    (which keeps the measurements from being deferred to ancillas)."""
    qc = QuantumCircuit(width, width)
    for layer in range(layers):
        qc.h(range(width))
        for q in range(0, width - 1, 2):
            qc.cx(q, q + 1)
        if layer < measured_layers:
            qc.measure(layer % width, layer % width)
            qc.reset(layer % width)
    qc.measure(range(width), range(width))
    return qc


def test_many_early_measurements_on_few_qubits_run_shot_by_shot_in_chunks() -> None:
    executor = NodeExecutor(make_node("small", 4).spec)
    compiled = executor.compile(measured_early(4, 16))
    assert not branching_pays(compiled, 2000)
    # Shot by shot costs grow with the shots: the agent runs them in chunks, so calibration
    # and cancellation interleave.
    assert not executor.samples_at_once(compiled, 2000)


def test_a_few_measurements_on_a_wide_state_branch() -> None:
    executor = NodeExecutor(make_node("wide", 16).spec)
    compiled = executor.compile(measured_early(16, 1))
    assert branching_pays(compiled, 200)
    assert executor.samples_at_once(compiled, 200)
    # Branches bounded by the shots: one shot has nothing to share.
    assert not branching_pays(compiled, 1)


def test_final_measurements_do_not_split_and_shot_by_shot_gives_every_shot() -> None:
    assert branching_pays(measured_early(4, 0), 2000)  # one branch for all shots
    executor = NodeExecutor(make_node("small", 4).spec)
    counts = executor.sample(executor.compile(measured_early(4, 16)), 500, seed=7).counts
    assert sum(counts.values()) == 500
