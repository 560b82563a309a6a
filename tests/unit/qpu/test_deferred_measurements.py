"""Mid-circuit measurements deferred to ancillas give the distribution of the circuit run
literally, shot by shot; circuits where deferral would change the result keep their form.
Real Aer, seeded."""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from scipy.stats import chi2_contingency

from qorch.qpu.circuits import defer_measurements, measures_only_at_end
from qorch.qpu.executor import NodeExecutor
from tests.support import make_node

SHOTS = 20_000


def measured_twice(width: int = 4, seed: int = 5) -> QuantumCircuit:
    """Random rotations and CNOTs, two qubits measured mid-circuit into their own bits."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(width, width + 2)
    for layer in range(3):
        for q in range(width):
            qc.ry(rng.uniform(0, np.pi), q)
        for q in range(layer % 2, width - 1, 2):
            qc.cx(q, q + 1)
        if layer < 2:
            qc.measure(layer, width + layer)
    qc.measure(range(width), range(width))
    return qc


def literal(circuit: QuantumCircuit, seed: int) -> dict[str, int]:
    simulator = AerSimulator(shot_branching_enable=False)
    return simulator.run(circuit, shots=SHOTS, seed_simulator=seed).result().get_counts()


def same_distribution(a: dict[str, int], b: dict[str, int]) -> float:
    """p-value of a chi-squared test that two samples come from one distribution."""
    keys = sorted(set(a) | set(b))
    table = np.array([[a.get(k, 0) + 0.5 for k in keys], [b.get(k, 0) + 0.5 for k in keys]])
    return float(chi2_contingency(table).pvalue)


def test_deferred_measurements_keep_the_joint_distribution() -> None:
    circuit = measured_twice()
    deferred = defer_measurements(circuit, max_qubits=8)
    assert deferred is not None and measures_only_at_end(deferred)
    assert deferred.num_qubits == circuit.num_qubits + 2
    # A wrong wiring (bits swapped, a measurement left in place) changes this distribution
    # far beyond what 20000 shots can hide; a right one misses p > 1e-4 once in 10^4.
    assert same_distribution(literal(circuit, 1), literal(deferred, 2)) > 1e-4


def test_an_outcome_a_later_measurement_overwrites_is_deferred_unmeasured() -> None:
    overwritten = QuantumCircuit(2, 2)  # the later measurement stays the bit's last word
    overwritten.h(0)
    overwritten.measure(0, 0)
    overwritten.h(0)  # after a measurement, H gives 0 or 1 evenly; without one, always 0
    overwritten.cx(0, 1)
    overwritten.measure([0, 1], [0, 1])
    deferred = defer_measurements(overwritten, 4)
    assert deferred is not None and measures_only_at_end(deferred)
    assert deferred.count_ops()["measure"] == 2
    counts = literal(deferred, 6)
    assert set(counts) == {"00", "11"}
    assert same_distribution(literal(overwritten, 5), counts) > 1e-4


def test_the_executor_samples_a_mid_measured_circuit_at_once_with_the_same_counts() -> None:
    executor = NodeExecutor(make_node("defer", 6).spec)
    compiled = executor.compile(measured_twice())
    assert executor.samples_at_once(compiled, SHOTS)
    sample = executor.sample(compiled, SHOTS, seed=3)
    assert sample.sampled  # Aer drew every shot from one simulation
    assert same_distribution(sample.counts, literal(compiled, 4)) > 1e-4


def test_circuits_whose_result_deferral_would_change_keep_their_form() -> None:
    assert defer_measurements(measured_twice(), max_qubits=5) is None  # too wide
    reset = QuantumCircuit(2, 2)
    reset.measure(0, 0)
    reset.reset(0)
    reset.measure([0, 1], [0, 1])
    assert defer_measurements(reset, 8) is None
    branching = QuantumCircuit(2, 2)
    branching.h(0)
    branching.measure(0, 0)
    with branching.if_test((branching.clbits[0], 1)):
        branching.x(1)
    branching.measure(1, 1)
    assert defer_measurements(branching, 8) is None
    final_only = QuantumCircuit(2, 2)
    final_only.measure([0, 1], [0, 1])
    assert defer_measurements(final_only, 8) is None  # nothing to defer
    noisy = NodeExecutor(make_node("noisy", 6, noise={"twoQubitError": 0.01}).spec)
    assert not noisy.samples_at_once(noisy.compile(measured_twice()), SHOTS)
