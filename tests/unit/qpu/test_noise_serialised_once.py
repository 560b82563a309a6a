"""A node's noise model is serialised for Aer once, not on every run, and a change to the
model (Aer adds a circuit's own error instructions to a copy of it) is serialised again."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, pauli_error

from qorch.api.quantum_node import NoiseSpec
from qorch.qpu.noise import SerialisedOnce, build_noise_model
from tests.support import ghz

NOISE = NoiseSpec(
    t1_microseconds=120,
    t2_microseconds=90,
    single_qubit_error=0.001,
    two_qubit_error=0.01,
    readout_error=0.02,
    single_qubit_gate_nanoseconds=35,
    two_qubit_gate_nanoseconds=300,
    measure_nanoseconds=1200,
)
GATES = ["rz", "sx", "x", "cx"]


def counts(model: NoiseModel, circuit: QuantumCircuit) -> dict[str, int]:
    simulator = AerSimulator(noise_model=model)
    return simulator.run(circuit, shots=2000, seed_simulator=5).result().get_counts()


def test_runs_serialise_the_model_once_and_count_as_with_a_plain_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build_noise_model(NOISE, GATES)
    assert isinstance(model, SerialisedOnce)
    serialised: list[bool] = []
    real = NoiseModel.to_dict

    def counted(self: NoiseModel, serializable: bool = False) -> dict:
        serialised.append(serializable)
        return real(self, serializable)

    monkeypatch.setattr(NoiseModel, "to_dict", counted)
    circuit = ghz(3)
    first = counts(model, circuit)
    assert counts(model, circuit) == first
    assert serialised == [True]  # two runs, one serialisation

    # The same errors, serialised on every run.
    plain = build_noise_model(NOISE, GATES, serialised_once=False)
    assert type(plain) is NoiseModel
    assert counts(plain, circuit) == first


def test_a_change_to_the_model_is_serialised_again() -> None:
    model = build_noise_model(NoiseSpec(readout_error=0.01), GATES)
    assert model is not None
    circuit = QuantumCircuit(1, 1)
    circuit.x(0)
    circuit.measure(0, 0)
    assert counts(model, circuit).get("1", 0) > 1900
    model.add_all_qubit_quantum_error(pauli_error([("X", 1.0)]), ["x"])  # x undone
    assert counts(model, circuit).get("0", 0) > 1900


def test_a_circuits_own_error_reaches_its_run_only() -> None:
    """Aer moves an error instruction of the circuit into a deep copy of the model."""
    model = build_noise_model(NoiseSpec(readout_error=0.01), GATES)
    assert model is not None
    plain = QuantumCircuit(1, 1)
    plain.measure(0, 0)
    assert counts(model, plain).get("0", 0) > 1900  # serialised before the copy
    flipped = QuantumCircuit(1, 1)
    flipped.append(pauli_error([("X", 1.0)]).to_instruction(), [0])
    flipped.measure(0, 0)
    assert counts(model, flipped).get("1", 0) > 1900
    assert counts(model, plain).get("0", 0) > 1900
