"""The composite noise description: validated like network input, applied to the right qubits."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.library import IGate
from qiskit.quantum_info import SuperOp
from qiskit_aer import AerSimulator

from qorch.qpu.composite_noise import (
    DEFERRED_MEASURE_LABEL,
    MemoryFactors,
    build_composite_noise_model,
    memory_error,
    parse_description,
    simulate_composite,
)


def _description(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "basisGates": ["cx", "rz", "sx", "x"],
        "nodes": {"a": {}, "b": {"readoutError": 0.5}},
        "qubitOwner": ["a", "a", "b"],
        "bellPairs": [{"label": "qorch_bell_0", "link": "ab", "fidelity": 0.4, "qubits": [1]}],
        "idle": [],
    }
    base.update(overrides)
    return base


def test_readout_error_stays_on_the_qubits_of_its_node() -> None:
    qc = QuantumCircuit(3, 3)
    qc.measure(range(3), range(3))
    counts = simulate_composite(qc, _description(bellPairs=[]), 2000, seed=1)
    flips = {i: sum(n for k, n in counts.items() if k[2 - i] == "1") for i in range(3)}
    assert flips[0] == flips[1] == 0
    assert 800 < flips[2] < 1200


def test_a_bell_marker_applies_the_werner_channel_only_where_it_is_placed() -> None:
    qc = QuantumCircuit(3, 3)
    qc.append(IGate(label="qorch_bell_0"), [1])
    qc.append(IGate(label="qorch_bell_0"), [0])  # no noise registered for qubit 0
    qc.measure(range(3), range(3))
    description = _description(nodes={"a": {}, "b": {}})
    counts = simulate_composite(qc, description, 4000, seed=2)
    flipped_1 = sum(n for k, n in counts.items() if k[1] == "1") / 4000
    # F = 0.4: X and Y each (1 - F) / 3 = 0.2 flip the bit.
    assert flipped_1 == pytest.approx(0.4, abs=0.04)
    assert all(k[2] == "0" for k in counts)


def test_idle_marker_relaxes_with_the_owner_t1() -> None:
    qc = QuantumCircuit(2, 2)
    qc.x([0, 1])
    for q in (0, 1):
        qc.append(IGate(label="qorch_idle_0"), [q])
    qc.measure([0, 1], [0, 1])
    description = _description(
        nodes={"a": {"t1Microseconds": 10}, "b": {}},
        qubitOwner=["a", "b"],
        bellPairs=[],
        idle=[{"label": "qorch_idle_0", "link": "ab", "microseconds": 10, "qubits": [0, 1]}],
    )
    counts = simulate_composite(qc, description, 4000, seed=3)
    decayed_0 = sum(n for k, n in counts.items() if k[1] == "0") / 4000
    assert decayed_0 == pytest.approx(1 - 2.718281828**-1, abs=0.04)  # 1 - e^(-t/T1)
    assert all(k[0] == "1" for k in counts)  # b has no T1: its qubit does not decay


PAIR = {"label": "qorch_bell_0", "link": "ab", "fidelity": 0.9, "qubits": [0]}


def test_purified_and_aged_pairs_round_trip_through_json() -> None:
    description = _description(
        bellPairs=[
            {**PAIR, "paulis": [0.01, 0.02, 0.07]},
            {
                **PAIR,
                "label": "qorch_bell_1",
                "qubits": [1],
                "memory": {"populationDecay": 0.9, "coherenceDecay": 0.8},
            },
        ]
    )
    parsed = parse_description(json.loads(json.dumps(description)))
    assert parsed.model_dump(mode="json", by_alias=True, exclude_none=True) == description
    model = build_composite_noise_model(description)
    assert {"qorch_bell_0", "qorch_bell_1"} <= set(model.noise_instructions)


def test_description_round_trips_through_json() -> None:
    description = _description()
    parsed = parse_description(json.loads(json.dumps(description)))
    assert parsed.model_dump(mode="json", by_alias=True, exclude_none=True) == description
    assert not build_composite_noise_model(description).is_ideal()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"qubitOwner": ["a", "c"]}, "missing from nodes"),
        ({"bellPairs": [{"label": "qorch_bell_0", "link": "ab", "fidelity": 2, "qubits": [0]}]},
         "fidelity"),
        ({"bellPairs": [{"label": "evil", "link": "ab", "fidelity": 0.9, "qubits": [0]}]},
         "label"),
        ({"bellPairs": [{"label": "qorch_bell_0", "link": "ab", "fidelity": 0.9, "qubits": [9]}]},
         "outside"),
        ({"idle": [{"label": "qorch_bell_1", "link": "ab", "microseconds": 1, "qubits": [0]}]},
         "qorch_idle_"),
        ({"idle": [{"label": "qorch_idle_0", "link": "ab", "microseconds": -1, "qubits": [0]}]},
         "microseconds"),
        ({"qubitOwner": ["a"] * 65}, "qubitOwner"),
        ({"nodes": {"a": {"t1Microseconds": 10, "t2Microseconds": 50}}, "qubitOwner": ["a"],
          "bellPairs": []}, "t2Microseconds"),
        ({"basisGates": ["cx; drop"]}, "basisGates"),
        ({"bellPairs": [{**PAIR, "paulis": [0.5, 0.4, 0.3]}]}, "paulis"),
        ({"bellPairs": [{**PAIR, "paulis": [-0.1, 0.1, 0.1]}]}, "paulis"),
        ({"bellPairs": [{**PAIR, "paulis": [0.1, 0.1]}]}, "paulis"),
        ({"bellPairs": [{**PAIR, "memory": {"populationDecay": 0.5, "coherenceDecay": 0.9}}]},
         "coherenceDecay"),
        ({"bellPairs": [{**PAIR, "memory": {"populationDecay": 1.5, "coherenceDecay": 0.9}}]},
         "populationDecay"),
        ({"surprise": 1}, "surprise"),
        ({"version": 2}, "version"),
    ],
)  # fmt: skip
def test_bad_descriptions_raise_value_error_saying_what_is_wrong(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_composite_noise_model(_description(**overrides))


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        parse_description(["not", "a", "dict"])  # type: ignore[arg-type]


def test_program_and_description_must_agree_on_width() -> None:
    with pytest.raises(ValueError, match="qubits"):
        simulate_composite(QuantumCircuit(2), _description(), 10)


@pytest.mark.parametrize(
    ("population", "coherence"),
    [(0.98, 0.97), (0.9, 0.9), (1.0, 0.95), (0.5, 0.1), (0.0, 0.0), (0.9, 0.94), (0.25, 0.5)],
)
def test_a_waiting_half_relaxes_by_the_same_channel_in_either_form(
    population: float, coherence: float
) -> None:
    memory = MemoryFactors(population_decay=population, coherence_decay=coherence)
    error = memory_error(memory)
    assert error is not None
    rho = SuperOp(error.to_quantumchannel()).data
    # The channel these factors name: |1> population times e1 (the rest decays to |0>),
    # coherence times e2; SuperOp acts on column-stacked density matrices.
    e1, e2 = population, coherence
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[3, 3] = 1.0
    expected[0, 3], expected[3, 3] = 1.0 - e1, e1
    expected[1, 1] = expected[2, 2] = e2
    np.testing.assert_allclose(rho, expected, atol=1e-12)
    # T2 <= T1: a mixture Aer samples term by term, no Kraus map.
    names = {inst.operation.name for circuit in error.circuits for inst in circuit.data}
    assert ("kraus" not in names) == (coherence <= population)


def test_a_composite_model_as_channels_is_the_same_map() -> None:
    noisy = {
        "t1Microseconds": 80,
        "t2Microseconds": 60,
        "singleQubitError": 0.002,
        "twoQubitError": 0.03,
        "readoutError": 0.05,
        "singleQubitGateNanoseconds": 35,
        "twoQubitGateNanoseconds": 300,
        "measureNanoseconds": 1200,
    }
    description = _description(
        nodes={"a": noisy, "b": noisy},
        bellPairs=[
            {
                "label": "qorch_bell_0",
                "link": "ab",
                "fidelity": 0.93,
                "qubits": [2],
                "memory": {"populationDecay": 0.98, "coherenceDecay": 0.97},
            }
        ],
        idle=[{"label": "qorch_idle_0", "link": "ab", "microseconds": 4.0, "qubits": [0, 1, 2]}],
    )
    qc = QuantumCircuit(3)
    qc.sx(0)
    qc.cx(0, 1)
    qc.append(IGate(label="qorch_bell_0"), [2])
    for q in range(3):
        qc.append(IGate(label="qorch_idle_0"), [q])
    qc.cx(1, 2)
    qc.cx(2, 1)
    qc.append(IGate(label=DEFERRED_MEASURE_LABEL), [1])
    qc.save_probabilities()
    out = []
    for channels in (False, True):
        model = build_composite_noise_model(description, channels=channels)
        result = AerSimulator(method="density_matrix", noise_model=model).run(qc).result()
        out.append(np.asarray(result.data()["probabilities"]))
    np.testing.assert_allclose(out[1], out[0], atol=1e-9)
    assert abs(out[0] - np.eye(8)[0]).max() > 0.01  # the noise did act
