"""Predictions are kept across jobs by everything they depend on: a batch of jobs running
one circuit on the same node simulates it once, however many threads plan them at once,
and anything that changes the prediction's inputs simulates again."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, qasm2, qasm3

import qorch.planner.prediction as prediction
from qorch.api.quantum_node import NoiseSpec
from qorch.planner.prediction import ideal_output, predict_on_node, predict_program
from qorch.planner.strategies import Demand, estimate_teleport
from qorch.planner.teleport import TeleportProgram
from tests.support import ghz

from .support import BASIS, link, node

NOISE = NoiseSpec(single_qubit_error=0.001, two_qubit_error=0.01, readout_error=0.02)


@pytest.fixture
def simulations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The width of every noisy simulation a prediction runs."""
    widths: list[int] = []
    real = prediction._noisy_probabilities

    def counted(body, *args):  # type: ignore[no-untyped-def]
        widths.append(body.num_qubits)
        return real(body, *args)

    monkeypatch.setattr(prediction, "_noisy_probabilities", counted)
    return widths


def predicted(circuit: QuantumCircuit, noise: NoiseSpec = NOISE, shots: int = 1000) -> float:
    ideal = ideal_output(circuit)
    assert ideal is not None
    value = predict_on_node(circuit, noise, BASIS, ideal, shots)
    assert value is not None
    return value


def flipped(width: int) -> QuantumCircuit:
    """GHZ with its first qubit flipped before it is measured."""
    qc = ghz(width).remove_final_measurements(inplace=False)
    qc.x(0)
    qc.measure_all()
    return qc


def test_a_circuit_built_again_is_not_simulated_again(simulations: list[int]) -> None:
    first = predicted(ghz(5))
    assert predicted(ghz(5)) == first  # another circuit object, built alike
    assert simulations == [5]


def test_anything_the_prediction_reads_simulates_again(simulations: list[int]) -> None:
    predicted(ghz(5))
    predicted(flipped(5))  # another circuit: one more gate
    predicted(ghz(5), noise=NOISE.model_copy(update={"two_qubit_error": 0.02}))
    predicted(ghz(5), shots=2000)
    assert len(simulations) == 4


def test_threads_planning_one_circuit_at_once_simulate_it_once(simulations: list[int]) -> None:
    circuit = ghz(7)
    start = threading.Barrier(8)

    def plan(_: int) -> float:
        start.wait()
        return predicted(circuit.copy())

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(plan, range(8)))
    assert len(set(values)) == 1
    assert simulations == [7]


def test_a_teleport_program_planned_again_is_not_simulated_again(
    simulations: list[int],
) -> None:
    nodes = [node("a", 3, NOISE), node("b", 3, NOISE)]

    def plan() -> float:
        demand = Demand(ghz(4), None, nodes, [link("a", "b", 0.95)], 1000, 600, 100)
        candidate = estimate_teleport(demand)
        assert candidate.feasible and isinstance(candidate.plan, TeleportProgram)
        return candidate.estimated_fidelity

    assert plan() == plan()
    assert len(simulations) == 1
    # The same program against another circuit's exact output is another prediction.
    program = estimate_teleport(
        Demand(ghz(4), None, nodes, [link("a", "b", 0.95)], 1000, 600, 100)
    ).plan
    assert isinstance(program, TeleportProgram)
    other = ideal_output(flipped(4))
    assert other is not None
    predict_program(program.circuit, program.noise, other, 1000)
    assert len(simulations) == 2


GROVER = Path(__file__).resolve().parents[3] / "examples" / "circuits" / "grover.qasm"


def parsed(source: str) -> QuantumCircuit:
    return qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


def test_circuits_with_their_own_gates_parsed_again_are_not_simulated_again(
    simulations: list[int],
) -> None:
    """QPY names each custom gate with a random UUID; the fingerprint reads what it does."""
    source = GROVER.read_text()
    assert predicted(parsed(source)) == predicted(parsed(source))
    assert len(simulations) == 1
    # The same gate names doing something else: another prediction.
    predicted(parsed(source.replace("{ x b; ccz a, b, c; x b; }", "{ x a; ccz a, b, c; x a; }")))
    assert len(simulations) == 2


QASM3_GATE = """OPENQASM 3.0;
include "stdgates.inc";
gate g a { BODY a; }
qubit[1] q;
bit[1] c;
g q[0];
c[0] = measure q[0];
"""


def test_gates_of_an_openqasm_3_program_are_read_by_what_they_do(
    simulations: list[int],
) -> None:
    """Its importer makes each a plain Gate, as Qiskit's own library gates are: two programs
    alike but for a gate's body are two circuits, with two predictions."""
    flips, spreads = (qasm3.loads(QASM3_GATE.replace("BODY", body)) for body in ("x", "h"))
    assert predicted(flips) != predicted(spreads)
    assert len(simulations) == 2
