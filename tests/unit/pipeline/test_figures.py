"""Where the planner's figures come from: the link's physical latency alone is physics; a
measured figure replaces a declared one only when the measurement contradicts it; the plan
says which it used; the same manifests and figures give the same plan every time."""

from __future__ import annotations

import pytest

import qorch.qpu.calibration as calibration
import qorch.qpu.executor as executor_module
from qorch.api.entanglement_link import LinkProbe
from qorch.api.quantum_node import Calibration, QuantumNodeSpec
from qorch.pipeline.figures import link_slot, node_slot
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.qpu.calibration import calibration_circuits, expected_figures, figures
from qorch.qpu.executor import NodeExecutor
from qorch.single_flight import SingleFlight

from .fake_world import FakeWorld, make_job

# T2 = 1 ms, as in the report: a link declared at 1 us cost nothing; 5524 us "measured"
# between Python agents took the estimate to 0.
NOISE = {
    "t1Microseconds": 1000,
    "t2Microseconds": 1000,
    "twoQubitError": 0.005,
    "singleQubitGateNanoseconds": 30,
    "twoQubitGateNanoseconds": 200,
    "measureNanoseconds": 500,
}


def ghz(width: int) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{width}];", f"creg c[{width}];"]
    lines += ["h q[0];", *(f"cx q[{i}], q[{i + 1}];" for i in range(width - 1))]
    return "\n".join([*lines, "measure q -> c;"])


def two_nodes() -> FakeWorld:
    world = FakeWorld()
    world.add_node("a", 4, **NOISE)
    world.add_node("b", 4, **NOISE)
    world.add_link("a-b", "a", "b", fidelity=0.97, classicalLatencyMicroseconds=1)
    return world


async def planned(world: FakeWorld, **spec: object):
    pipeline = JobPipeline(world, Reservations(), PipelineSettings())
    job = make_job("j", ghz(6), shots=1000, strategy="teleport", suspend=True, **spec)
    for _ in range(5):
        job.status = (await pipeline.step(job)).status
        if job.status.phase == "Planned":
            return job.status.plan
    raise AssertionError(f"not planned: {job.status.phase} {job.status.message}")


def probe(fidelity: float, lower: float, upper: float, **kw: object) -> LinkProbe:
    figures = {
        "pairs": 1000,
        "attempts": 2000,
        "fidelity": fidelity,
        "fidelityLower": lower,
        "fidelityUpper": upper,
        "confidence": 0.9973,
        "successRate": 0.5,
        "pairRateHz": 5e5,
        "source": "linkState",
        "time": "2026-01-01T00:00:00Z",
        **kw,
    }
    return LinkProbe.model_validate(figures)


async def test_a_measured_classical_path_moves_neither_plan_nor_estimate():
    plans = []
    for measured in (None, 5524.0, 3.0):
        world = two_nodes()
        world._links["a-b"].status.feedforward_latency_microseconds = measured
        plans.append(await planned(world))
    first = plans[0]
    assert first.strategy == "teleport" and first.estimated_fidelity > 0.8
    for plan in plans[1:]:
        assert plan == first  # placement, estimate, every candidate and its device time
    assert first.figures == {"qn/a": "declared", "qn/b": "declared", "qlink/a-b": "declared"}


async def test_the_same_manifests_and_figures_plan_alike_twice():
    world = two_nodes()
    world._links["a-b"].status.probe = probe(0.80, 0.77, 0.83)
    first, second = await planned(world), await planned(world)
    assert first == second
    assert first.figures["qlink/a-b"] == "measured"


def test_a_probe_that_agrees_with_the_declaration_leaves_it():
    link = two_nodes()._links["a-b"]
    link.status.probe = probe(0.96, 0.94, 0.98)
    slot = link_slot(link)
    assert (slot.fidelity, slot.figures) == (0.97, "declared")


def test_a_probe_that_contradicts_the_declaration_replaces_it():
    link = two_nodes()._links["a-b"]
    link.status.probe = probe(0.80, 0.77, 0.83, successRate=0.2, attempts=5000, pairRateHz=2e5)
    link.status.feedforward_latency_microseconds = 900.0
    slot = link_slot(link)
    assert slot.figures == "measured"
    assert slot.fidelity == 0.80
    assert slot.success_probability == 0.2
    assert slot.generation_rate_hz == pytest.approx(1e6)  # 2e5 pairs/s at 5000 / 1000
    # the measured path is a time, never physics
    assert slot.classical_latency_us == 1 and slot.measured_latency_us == 900.0


def test_a_probe_of_the_declared_figures_measured_nothing():
    link = two_nodes()._links["a-b"]
    link.status.probe = probe(0.80, 0.77, 0.83, source="request")
    assert link_slot(link).figures == "declared"


def test_a_calibration_the_declared_noise_explains_leaves_it():
    node = two_nodes().node("a")
    expected = expected_figures(node.spec)
    node.status.calibration = Calibration(
        readout_error=expected.readout_error,
        single_qubit_error=expected.single_qubit_error,
        two_qubit_error=expected.two_qubit_error,
        fidelity=expected.fidelity,
    )
    slot = node_slot(node)
    assert (slot.noise, slot.figures) == (node.spec.noise, "declared")


def test_a_calibration_beyond_the_declared_noise_moves_it_by_the_excess():
    node = two_nodes().node("a")
    expected = expected_figures(node.spec)
    assert expected.two_qubit_error is not None
    node.status.calibration = Calibration(
        readout_error=expected.readout_error,
        single_qubit_error=expected.single_qubit_error,
        two_qubit_error=expected.two_qubit_error + 0.04,
        fidelity=expected.fidelity,
    )
    slot = node_slot(node)
    assert slot.figures == "calibrated"
    assert slot.noise.two_qubit_error == pytest.approx(0.045, abs=1e-6)
    assert slot.noise.single_qubit_error == node.spec.noise.single_qubit_error


async def test_a_drifted_node_plans_worse_and_says_so():
    world = two_nodes()
    declared = await planned(world)
    node = world.node("a")
    expected = expected_figures(node.spec)
    assert expected.two_qubit_error is not None
    node.status.calibration = Calibration(
        readout_error=expected.readout_error,
        single_qubit_error=expected.single_qubit_error,
        two_qubit_error=expected.two_qubit_error + 0.04,
        fidelity=expected.fidelity,
    )
    drifted = await planned(world)
    assert drifted.figures["qn/a"] == "calibrated"
    assert drifted.estimated_fidelity < declared.estimated_fidelity


def test_a_noiseless_nodes_expected_figures_need_no_compiling(monkeypatch):
    spec = QuantumNodeSpec.model_validate({"qubits": 4})
    executor = NodeExecutor(spec)
    compiled = figures(
        {
            name: executor.run(circuit, calibration.SHOTS, 7919, 0).counts
            for name, circuit in calibration_circuits(2, (0, 1)).items()
        },
        2,
    )

    def compile_again(*_: object, **__: object) -> None:
        raise AssertionError("compiled")

    monkeypatch.setattr(calibration, "_EXPECTED", SingleFlight(256))
    monkeypatch.setattr(executor_module, "transpile", compile_again)
    assert expected_figures(spec) == compiled
    assert (compiled.readout_error, compiled.two_qubit_error, compiled.fidelity) == (0, 0, 1)
