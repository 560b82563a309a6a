"""The API models accept the documented wire form and refuse what the API would refuse."""

import pytest
from pydantic import ValidationError

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.api.base import set_condition
from qorch.api.distributed_job import MAX_OBSERVABLE_QUBITS, MAX_OBSERVABLES
from qorch.api.yamlload import errors_in_a_line


def job(**spec):
    return {"metadata": {"name": "j"}, "spec": {"circuit": {"qasm": "OPENQASM 2.0;"}, **spec}}


def test_quantum_node_wire_names_round_trip():
    node = QuantumNode.model_validate(
        {
            "metadata": {"name": "qpu-a"},
            "spec": {
                "qubits": 5,
                "couplingMap": [[0, 1], [1, 2]],
                "noise": {"t1Microseconds": 100, "t2Microseconds": 80, "readoutError": 0.02},
                "backend": {"type": "aer"},
                "safety": {"maxErrorRate": 0.05},
            },
        }
    )
    wire = node.wire()
    assert wire["apiVersion"] == "qorch.dev/v1alpha1"
    assert wire["spec"]["noise"] == {
        "t1Microseconds": 100.0,
        "t2Microseconds": 80.0,
        "readoutError": 0.02,
    }
    assert "measure" in wire["spec"]["basisGates"]
    assert QuantumNode.model_validate(wire) == node


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"qubits": 0}, "qubits"),
        ({"qubits": 2, "noize": {}}, "noize"),
        ({"qubits": 2, "couplingMap": [[0, 5]]}, "couplingMap"),
        ({"qubits": 2, "noise": {"t1Microseconds": 10, "t2Microseconds": 30}}, "t2Microseconds"),
        ({"qubits": 2, "backend": {"type": "external"}}, "endpoint"),
    ],
)
def test_quantum_node_refuses_invalid_spec(spec, field):
    with pytest.raises(ValidationError, match=field):
        QuantumNode.model_validate({"metadata": {"name": "n"}, "spec": spec})


def test_link_needs_two_distinct_nodes_and_a_fidelity_above_a_quarter():
    base = {"generationRateHz": 1000, "successProbability": 0.5}
    with pytest.raises(ValidationError, match="two different"):
        EntanglementLink.model_validate(
            {"metadata": {"name": "l"}, "spec": {"nodes": ["a", "a"], "fidelity": 0.9, **base}}
        )
    with pytest.raises(ValidationError, match="fidelity"):
        EntanglementLink.model_validate(
            {"metadata": {"name": "l"}, "spec": {"nodes": ["a", "b"], "fidelity": 0.25, **base}}
        )


def test_job_defaults_and_contract_fields():
    parsed = DistributedJob.model_validate(job(shots=100, observables=["ZZI"], priority=3))
    assert parsed.spec.strategy == "auto"
    assert parsed.spec.timeout_seconds == 600
    assert parsed.status.phase == "Pending"


@pytest.mark.parametrize(
    "spec",
    [
        {"shots": 0},
        {"strategy": "magic"},
        {"observables": ["ZQ"]},
        {"fidelityBudget": 1.5},
        {"timeoutSeconds": 10**23},
        {"priority": 2**31},
        {"priority": -(2**31) - 1},
        {"circuit": {"qasm": "x", "configMapRef": {"name": "c", "key": "k"}}},
        {"circuit": {}},
    ],
)
def test_job_refuses_invalid_spec(spec):
    with pytest.raises(ValidationError):
        DistributedJob.model_validate(job(**spec))


@pytest.mark.parametrize(
    ("fine", "too_many", "said"),
    [
        (
            ["ZZ"] * MAX_OBSERVABLES,
            ["ZZ"] * (MAX_OBSERVABLES + 1),
            "spec.observables: List should have at most 1024 items",
        ),
        (
            ["Z" * MAX_OBSERVABLE_QUBITS],
            ["Z" * (MAX_OBSERVABLE_QUBITS + 1)],
            "spec.observables[0]: String should have at most 4096 characters",
        ),
    ],
)
def test_observables_are_bounded_before_anything_groups_them(fine, too_many, said):
    # 20,000 of them once took a run past the machine's 23 GiB while it grouped them.
    DistributedJob.model_validate(job(observables=fine))
    with pytest.raises(ValidationError) as refused:
        DistributedJob.model_validate(job(observables=too_many))
    assert said in errors_in_a_line(refused.value)


def test_condition_transition_time_moves_only_when_status_flips():
    conds = set_condition([], "Ready", "False", "Starting", "", 1)
    first = conds[0].last_transition_time
    conds[0] = conds[0].model_copy(update={"last_transition_time": "2000-01-01T00:00:00Z"})
    same = set_condition(conds, "Ready", "False", "StillStarting", "msg", 2)
    assert same[0].last_transition_time == "2000-01-01T00:00:00Z"
    assert same[0].reason == "StillStarting" and same[0].observed_generation == 2
    flipped = set_condition(same, "Ready", "True", "Up", "", 2)
    assert flipped[0].last_transition_time != "2000-01-01T00:00:00Z"
    assert first
