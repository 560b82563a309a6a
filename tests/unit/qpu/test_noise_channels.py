"""A node's noise as one Kraus channel per gate, for density-matrix runs: the same map as the
noise model's own terms, read by Aer without turning each term into a superoperator."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

import qorch.planner.prediction as prediction
from qorch.api import QuantumNodeSpec
from qorch.api.quantum_node import NoiseSpec
from qorch.planner.prediction import ideal_output, predict_on_node
from qorch.qpu.executor import NodeExecutor
from qorch.qpu.noise import build_noise_model
from tests.support import ghz

GATES = ["rz", "sx", "x", "cx"]
RELAXING = NoiseSpec(
    t1_microseconds=80,
    t2_microseconds=60,
    single_qubit_error=0.002,
    two_qubit_error=0.03,
    readout_error=0.05,
    single_qubit_gate_nanoseconds=35,
    two_qubit_gate_nanoseconds=300,
    measure_nanoseconds=1200,
)
DEPOLARIZING = NoiseSpec(single_qubit_error=0.01, two_qubit_error=0.05, readout_error=0.02)


def circuit() -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.rx(0.7, 1)
    qc.cx(0, 1)
    qc.ry(1.1, 2)
    qc.cx(1, 2)
    qc.measure(range(3), range(3))
    return transpile(qc, basis_gates=GATES, optimization_level=0)


def probabilities(model: NoiseModel) -> np.ndarray:
    body = circuit().remove_final_measurements(inplace=False)
    body.save_probabilities()
    result = AerSimulator(method="density_matrix", noise_model=model).run(body).result()
    return np.asarray(result.data()["probabilities"])


@pytest.mark.parametrize("noise", [RELAXING, DEPOLARIZING], ids=["relaxing", "depolarizing"])
def test_channels_are_the_same_map_as_the_models_terms(noise: NoiseSpec) -> None:
    terms = build_noise_model(noise, GATES)
    channels = build_noise_model(noise, GATES, channels=True)
    assert terms is not None and channels is not None
    np.testing.assert_allclose(probabilities(channels), probabilities(terms), atol=1e-9)
    for error in channels.to_dict()["errors"]:
        if error["type"] == "qerror":  # readout errors are the same either way
            assert len(error["probabilities"]) == 1  # one Kraus map


def test_a_one_matrix_run_reads_the_channels_and_draws_the_same_counts() -> None:
    spec = QuantumNodeSpec(qubits=3, noise=RELAXING, basis_gates=[*GATES, "measure"])
    executor = NodeExecutor(spec)
    compiled = executor.compile(ghz(3), seed=1)
    assert executor.samples_at_once(compiled, 4000)  # one density matrix
    ours = executor.sample(compiled, 4000, seed=9).counts
    plain = AerSimulator(noise_model=executor.noise_model, method="density_matrix")
    theirs = plain.run(compiled, shots=4000, seed_simulator=9).result().get_counts()
    assert ours == theirs
    channels = executor._matrix_simulator.options.noise_model
    assert all(
        len(e["probabilities"]) == 1 for e in channels.to_dict()["errors"] if e["type"] == "qerror"
    )


def test_an_exact_prediction_is_the_same_from_the_channels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ideal = ideal_output(ghz(4))
    assert ideal is not None
    with_channels = predict_on_node(ghz(4), RELAXING, GATES, ideal, 4000)
    monkeypatch.setattr(prediction, "build_noise_model", _terms_only)
    monkeypatch.setattr(prediction, "_MODELS", prediction.SingleFlight(8))
    monkeypatch.setattr(prediction, "_PREDICTIONS", prediction.SingleFlight(8, keep_none=False))
    with_terms = predict_on_node(ghz(4), RELAXING, GATES, ideal, 4000)
    assert with_channels is not None and with_terms is not None
    assert with_channels == pytest.approx(with_terms, abs=1e-6)


def _terms_only(noise: NoiseSpec, gates: list[str], channels: bool = False) -> NoiseModel | None:
    return build_noise_model(noise, gates)
