"""The duration estimate agrees with Qiskit's own critical-path estimate."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from qiskit import QuantumCircuit
from qiskit.circuit import Measure, Parameter
from qiskit.circuit.library import standard_gates as std
from qiskit.converters import circuit_to_dag
from qiskit.transpiler import InstructionProperties, Target

from qorch.sanitizer import TargetTiming, run_passes
from qorch.sanitizer.analysis import DURATION, EstimateDuration

from .test_properties import circuits

TIMING = TargetTiming(single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500)


def _target(width: int) -> Target:
    """Every one- and two-qubit gate the generator uses, on every qubit and pair."""
    target = Target(num_qubits=width)
    theta = Parameter("t")
    one = {(q,): InstructionProperties(duration=35e-9) for q in range(width)}
    two = {
        pair: InstructionProperties(duration=300e-9)
        for pair in itertools.permutations(range(width), 2)
    }
    fixed = [std.HGate(), std.XGate(), std.YGate(), std.ZGate(), std.SGate(), std.SdgGate()]
    fixed += [std.TGate(), std.TdgGate(), std.SXGate()]
    turns = [std.RXGate(theta), std.RYGate(theta), std.RZGate(theta), std.PhaseGate(theta)]
    for gate in [*fixed, *turns, std.UGate(theta, theta, theta)]:
        target.add_instruction(gate, dict(one))
    pairs = [std.CXGate(), std.CYGate(), std.CZGate(), std.CHGate(), std.SwapGate()]
    pairs += [std.CRXGate(theta), std.CRYGate(theta), std.CRZGate(theta), std.CPhaseGate(theta)]
    for gate in pairs if width >= 2 else []:
        target.add_instruction(gate, dict(two))
    target.add_instruction(
        Measure(), {(q,): InstructionProperties(duration=1500e-9) for q in range(width)}
    )
    return target


@settings(max_examples=40, deadline=None)
@given(circuits())
def test_estimate_matches_qiskits_longest_duration_path(circuit: QuantumCircuit) -> None:
    if any(len(i.qubits) > 2 for i in circuit.data):
        return  # three-qubit gates count as their decomposition here, as a whole in Qiskit
    properties = run_passes(circuit_to_dag(circuit), [EstimateDuration(timing=TIMING)])

    expected = circuit.estimate_duration(_target(circuit.num_qubits))

    assert abs(properties[DURATION] - expected) < 1e-12
