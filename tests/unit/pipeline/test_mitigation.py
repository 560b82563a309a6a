"""Readout mitigation on real Aer runs: the corrected result beats the raw one against the
exact answer, by the figures each node's own calibration measured."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from qorch.agent_protocol import RunResult
from qorch.api import QuantumNode
from qorch.api.distributed_job import (
    DistributedJobSpec,
    JobResult,
    MitigatedResult,
    Placement,
    Plan,
    Program,
)
from qorch.api.quantum_node import Calibration
from qorch.pipeline import verification
from qorch.pipeline.mitigation import MAX_DISTINCT_OUTCOMES
from qorch.pipeline.resources import calibrate_node
from qorch.pipeline.strategies import Returned, Work
from qorch.pipeline.strategies.cut import CutWork
from qorch.pipeline.strategies.sampled import measurement_bases_of
from qorch.pipeline.strategies.single import SingleWork
from qorch.pipeline.strategies.teleport import TeleportWork
from qorch.pipeline.verification import exact_probabilities
from qorch.planner.cutting import ReadoutErrors, exact_expectation_values, plan_cut
from qorch.planner.model import NodeSlot
from qorch.planner.partition import Partition, partition
from qorch.planner.teleport import compile_teleport
from qorch.qpu.agent import QpuAgent
from qorch.qpu.circuits import encode_circuit
from tests.support import ghz

from ..planner.support import ansatz, link
from ..qpu.support import RELAXING, InProcess

SHOTS = 4000
FIDELITY = 0.7  # the plans' estimate; it only sets the verification threshold
READOUT = DistributedJobSpec.model_validate({"circuit": {"qasm": "-"}, "mitigation": "readout"})
NO_MITIGATION = DistributedJobSpec.model_validate({"circuit": {"qasm": "-"}})
CUT_OBSERVABLES = ["ZZZZ", "IIZZ", "ZZII", "XXXX", "IZZI"]


async def calibrated(name: str, qubits: int, noise: dict[str, Any]) -> tuple[QuantumNode, QpuAgent]:
    qn = QuantumNode.model_validate(
        {"metadata": {"name": name}, "spec": {"qubits": qubits, "noise": noise}}
    )
    agent = QpuAgent(qn)
    qn.status = await calibrate_node(qn, InProcess(agent))
    return qn, agent


def plan(strategy: str, programs: dict[str, str], placement: dict[str, list[int]]) -> Plan:
    return Plan(
        strategy=strategy,  # type: ignore[arg-type]
        placement=[Placement(node=n, qubits=q) for n, q in placement.items()],
        programs=[Program(id=i, node=n, shots=SHOTS) for i, n in programs.items()],
        estimated_fidelity=FIDELITY,
    )


@dataclass
class Run:
    work: Work
    plan: Plan
    replies: dict[str, RunResult]
    nodes: dict[str, QuantumNode]
    raw: JobResult

    def mitigate(
        self, spec: DistributedJobSpec = READOUT, nodes: dict[str, QuantumNode] | None = None
    ) -> MitigatedResult | None:
        if spec.mitigation == "none":
            return None
        returned = Returned(self.plan, self.replies, nodes or self.nodes, spec.observables)
        return self.work.mitigate(returned, self.raw)


async def run_single(circuit: QuantumCircuit, noise: dict[str, Any]) -> Run:
    qn, agent = await calibrated("qpu-a", 4, noise)
    payload = {"programId": "p0", "circuit": encode_circuit(circuit), "shots": SHOTS, "seed": 7}
    replies = {"p0": RunResult.model_validate(await agent.handle("run", payload))}
    work = SingleWork(circuit, "qpu-a")
    placed = plan("single", {"p0": "qpu-a"}, {"qpu-a": list(range(circuit.num_qubits))})
    raw = work.aggregate(Returned(placed, replies, {"qpu-a": qn}, None))
    return Run(work, placed, replies, {"qpu-a": qn}, raw)


@pytest.fixture(scope="module")
def single() -> Run:
    return asyncio.run(run_single(ghz(3), RELAXING))


def test_single_node_ghz_mitigated_is_clearly_closer_to_the_ideal(single: Run) -> None:
    mitigated = single.mitigate()
    assert mitigated is not None and mitigated.verification is not None
    raw = single.raw.verification
    assert raw is not None and raw.hellinger_fidelity is not None
    fidelity = mitigated.verification.hellinger_fidelity
    assert fidelity is not None
    # Measured: raw 0.653, mitigated 0.998 to 1.000 (p(1|0) = 0.1, p(0|1) = 0.18).
    assert raw.hellinger_fidelity < 0.75
    assert fidelity > 0.97
    assert mitigated.verification.threshold == raw.threshold
    assert mitigated.method.startswith("readout: M3")
    assert mitigated.calibrations == [
        f"qpu-a@{single.nodes['qpu-a'].status.calibration.measured_at}"
    ]  # type: ignore[union-attr]
    quasi = mitigated.quasi_probabilities
    assert quasi is not None
    assert sum(quasi.values()) == pytest.approx(1, abs=1e-3)
    assert quasi["000"] == pytest.approx(0.5, abs=0.05)
    assert quasi["111"] == pytest.approx(0.5, abs=0.05)


def test_the_mitigated_counts_are_verified_against_the_exact_output_already_simulated(
    single: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = exact_probabilities(single.work.circuit)
    simulated = single.mitigate()
    returned = Returned(single.plan, single.replies, single.nodes, None, exact)

    def simulated_again(_: QuantumCircuit) -> None:
        raise AssertionError("the exact output was simulated a second time")

    monkeypatch.setattr(verification, "exact_probabilities", simulated_again)
    mitigated = single.work.mitigate(returned, single.raw)
    assert mitigated.verification is not None
    assert mitigated.verification.method == "statevector"
    assert simulated is not None and mitigated.verification == simulated.verification


def test_no_mitigation_asked_gives_none(single: Run) -> None:
    assert single.mitigate(NO_MITIGATION) is None


def test_a_node_without_calibration_makes_mitigation_unavailable(single: Run) -> None:
    bare = single.nodes["qpu-a"].model_copy(deep=True)
    bare.status.calibration = None
    mitigated = single.mitigate(nodes={"qpu-a": bare})
    assert mitigated is not None
    assert mitigated.method == "unavailable: qpu-a has no calibration"
    assert mitigated.quasi_probabilities is None and mitigated.verification is None


def test_a_calibration_with_the_symmetric_figure_only_is_used_and_said(single: Run) -> None:
    older = single.nodes["qpu-a"].model_copy(deep=True)
    cal = older.status.calibration
    assert cal is not None
    older.status.calibration = Calibration(readout_error=cal.readout_error, measured_at="t")
    mitigated = single.mitigate(nodes={"qpu-a": older})
    assert mitigated is not None and mitigated.verification is not None
    assert "symmetric readoutError only" in mitigated.method
    assert mitigated.calibrations == ["qpu-a@t"]
    full = single.mitigate()
    assert full is not None and full.verification is not None
    # The asymmetric figures fit the asymmetric readout better than their mean does.
    assert (full.verification.hellinger_fidelity or 0) > (
        mitigated.verification.hellinger_fidelity or 0
    )


def test_keys_keep_the_raw_counts_registers_and_unmeasured_bits_stay_zero() -> None:
    q = QuantumRegister(2)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(q, a, b)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(q[0], a[0])
    qc.measure(q[1], b[0])  # b[1] is never measured: it reads 0, and must stay 0
    run = asyncio.run(run_single(qc, {"readoutError": 0.1}))
    mitigated = run.mitigate()
    assert mitigated is not None and mitigated.quasi_probabilities is not None
    assert set(mitigated.quasi_probabilities) <= set(run.raw.counts or {})
    assert all(key.startswith("0") for key in mitigated.quasi_probabilities)  # b[1]
    assert mitigated.quasi_probabilities["00 0"] == pytest.approx(0.5, abs=0.04)
    assert mitigated.quasi_probabilities["01 1"] == pytest.approx(0.5, abs=0.04)


@pytest.fixture(scope="module")
def teleport() -> Run:
    async def go() -> Run:
        # Readout errors on node a only: a clbit's correction must come from its own node.
        a, agent = await calibrated("a", 3, {**RELAXING, "readoutError": 0.15})
        b, _ = await calibrated("b", 3, {})
        circuit = ghz(4)
        slots, links = [NodeSlot.of(a), NodeSlot.of(b)], [link("a", "b")]
        placed = partition(circuit, slots, links, min_nodes=2)
        assert placed is not None and placed.qubits_on("a") == [0, 1]
        program = compile_teleport(circuit, placed, slots, links)
        payload = {
            "programId": "p0",
            "circuit": encode_circuit(program.circuit),
            "shots": SHOTS,
            "seed": 5,
            "noise": program.noise,
        }
        replies = {"p0": RunResult.model_validate(await agent.handle("run", payload))}
        work = TeleportWork(circuit, program)
        layout = {n: placed.qubits_on(n) for n in placed.nodes}
        recorded = plan("teleport", {"p0": "a"}, layout)
        raw = work.aggregate(Returned(recorded, replies, {"a": a, "b": b}, None))
        return Run(work, recorded, replies, {"a": a, "b": b}, raw)

    return asyncio.run(go())


def test_teleport_corrects_each_clbit_with_the_node_that_measured_it(teleport: Run) -> None:
    mitigated = teleport.mitigate()
    assert mitigated is not None and mitigated.verification is not None
    raw = teleport.raw.verification
    assert raw is not None and raw.hellinger_fidelity is not None
    fidelity = mitigated.verification.hellinger_fidelity or 0
    # Measured: raw 0.544, mitigated 0.79 to 0.81, swapped 0.565. What remains is the
    # feed-forward gadgets' misread bits, which steer the state: no correction of the
    # reported bits undoes them.
    assert fidelity > raw.hellinger_fidelity + 0.15
    assert [c.split("@")[0] for c in mitigated.calibrations] == ["a", "b"]
    # The same figures on the wrong clbits: b's clean bits "corrected", a's left as read.
    swapped = {n: teleport.nodes[n].model_copy(deep=True) for n in ("a", "b")}
    swapped["a"].status.calibration = teleport.nodes["b"].status.calibration
    swapped["b"].status.calibration = teleport.nodes["a"].status.calibration
    wrong = teleport.mitigate(nodes=swapped)
    assert wrong is not None and wrong.verification is not None
    assert fidelity > (wrong.verification.hellinger_fidelity or 0) + 0.15


async def run_cut(noise: dict[str, Any]) -> Run:
    # Four qubits each: the calibration reads all four, and its own sampling error (in the
    # standard errors) shrinks with the readings.
    a, agent_a = await calibrated("a", 4, noise)
    b, agent_b = await calibrated("b", 4, noise)
    circuit = ansatz(4, layers=1)
    placed = Partition({0: "a", 1: "a", 2: "b", 3: "b"}, 0, {}, ("a", "b"))
    cut = plan_cut(circuit, CUT_OBSERVABLES, placed, 100)
    replies: dict[str, RunResult] = {}
    for name, agent in (("a", agent_a), ("b", agent_b)):
        payload = {
            "programId": f"cut-{name}",
            "circuits": [encode_circuit(c) for c in cut.subexperiments[name]],
            "shots": SHOTS,
            "seed": 3,
        }
        replies[f"cut-{name}"] = RunResult.model_validate(await agent.handle("run", payload))
    work = CutWork(circuit, cut)
    layout = {"a": [0, 1], "b": [2, 3]}
    recorded = plan("cut", {"cut-a": "a", "cut-b": "b"}, layout)
    raw = work.aggregate(Returned(recorded, replies, {"a": a, "b": b}, CUT_OBSERVABLES))
    return Run(work, recorded, replies, {"a": a, "b": b}, raw)


@pytest.fixture(scope="module")
def cut() -> Run:
    """Assignment errors only: what the correction models exactly."""
    return asyncio.run(run_cut({"readoutError": 0.1}))


def largest_errors(run: Run, mitigated: MitigatedResult) -> tuple[float, float]:
    exact = exact_expectation_values(run.work.circuit, CUT_OBSERVABLES)
    raw, values = run.raw.expectation_values or [], mitigated.expectation_values or []
    return (
        max(abs(v - e) for v, e in zip(raw, exact, strict=True)),
        max(abs(v - e) for v, e in zip(values, exact, strict=True)),
    )


def test_cut_expectation_values_mitigated_agree_with_exact(cut: Run) -> None:
    mitigated = cut.mitigate()
    assert mitigated is not None
    values, errors = mitigated.expectation_values, mitigated.standard_errors
    assert values is not None and errors is not None
    raw_error, mitigated_error = largest_errors(cut, mitigated)
    # Measured: largest error raw 0.59, mitigated 0.03 to 0.10 (standard errors 0.017 to
    # 0.035; raw ones 0.016 at most).
    assert raw_error > 0.4
    assert mitigated_error < 0.12
    exact = exact_expectation_values(cut.work.circuit, CUT_OBSERVABLES)
    for value, error, truth in zip(values, errors, exact, strict=True):
        # The standard errors include the calibration's own sampling error: 4.5 of them miss
        # less than 1 in 10^5.
        assert abs(value - truth) < 4.5 * error
    assert mitigated.verification is not None
    assert mitigated.verification.absolute_error == pytest.approx(mitigated_error, abs=1e-5)
    # The correction spreads the estimates: its standard errors are larger than the raw ones.
    assert all(m > r for m, r in zip(errors, cut.raw.standard_errors or [], strict=True))
    assert "QPD" in mitigated.method


def test_cut_with_relaxation_while_measuring_is_mostly_corrected() -> None:
    """Asymmetric readout from T1 during measurement: exact for the final measurements, an
    approximation for the QPD's mid-circuit ones, whose qubit goes on relaxed."""
    run = asyncio.run(run_cut(RELAXING))
    mitigated = run.mitigate()
    assert mitigated is not None
    raw_error, mitigated_error = largest_errors(run, mitigated)
    # Measured: raw 0.69, mitigated 0.13 to 0.21 (the calibration varies between runs).
    assert raw_error > 0.5
    assert mitigated_error < min(0.3, raw_error / 2)


def test_cut_reconstruction_with_zero_readout_errors_is_the_raw_one(cut: Run) -> None:
    assert isinstance(cut.work, CutWork)
    results = {k.removeprefix("cut-"): r.runs for k, r in cut.replies.items()}
    perfect = {n: ReadoutErrors(0.0, 0.0) for n in ("a", "b")}
    knitting = cut.work.knitting
    assert knitting.reconstruct(results, readout=perfect) == knitting.reconstruct(results)


def test_cut_without_a_calibrated_node_is_unavailable(cut: Run) -> None:
    nodes = dict(cut.nodes)
    del nodes["b"]
    mitigated = cut.mitigate(nodes=nodes)
    assert mitigated is not None
    assert mitigated.method == "unavailable: b no longer exists"
    assert mitigated.expectation_values is None


def test_too_many_distinct_outcomes_for_m3_is_unavailable(single: Run) -> None:
    circuit = QuantumCircuit(14, 14)
    circuit.h(range(14))
    circuit.measure(range(14), range(14))
    counts = {format(k, "014b"): 1 for k in range(MAX_DISTINCT_OUTCOMES + 1)}
    work = SingleWork(circuit, "qpu-a")
    returned = Returned(single.plan, {}, single.nodes, None)
    mitigated = work.mitigate(returned, JobResult(counts=counts))
    assert mitigated is not None
    assert mitigated.method.startswith(f"unavailable: {MAX_DISTINCT_OUTCOMES + 1} distinct")
    assert mitigated.quasi_probabilities is None


def test_calibration_sampling_error_enters_the_standard_errors() -> None:
    """The delta method against the spread of the corrected value when the figures are
    drawn again from their binomial: same size, to the resampling's own 10%."""
    from qorch.pipeline.mitigation import _calibration_spread

    figures = {"a": ReadoutErrors(0.08, 0.1)}

    def corrected(errors: Mapping[str, ReadoutErrors]) -> list[float]:
        up, down = errors["a"].factors()
        return [0.6 * up**4 + 0.4 * down**4]  # a parity of four bits read by a

    [spread] = _calibration_spread(corrected, figures, {"a": 8000})
    rng = np.random.default_rng(5)
    draws = [
        corrected({"a": ReadoutErrors(rng.binomial(8000, 0.08) / 8000, up)})[0]
        for up in rng.binomial(8000, 0.1, size=2000) / 8000
    ]
    # 2000 draws: the sample standard deviation is within 10% of the truth but for 1 in 10^5.
    assert float(np.std(draws)) == pytest.approx(spread, rel=0.1)


def test_values_beyond_the_bound_are_projected_and_listed() -> None:
    from qorch.pipeline.mitigation import _projected

    assert _projected([1.065, -0.3, -1.2]) == ([1.0, -0.3, -1.0], [0, 2])


async def run_single_observables(observables: list[str]) -> Run:
    qn, agent = await calibrated("qpu-a", 4, {"readoutError": 0.08})
    circuit = ghz(3)
    work = SingleWork(circuit, "qpu-a", measurement_bases_of(circuit, observables))
    circuits = [encode_circuit(c) for c in work.program_circuits()]
    payload = {"programId": "p0", "circuits": circuits, "shots": SHOTS, "seed": 7}
    replies = {"p0": RunResult.model_validate(await agent.handle("run", payload))}
    placed = plan("single", {"p0": "qpu-a"}, {"qpu-a": list(range(circuit.num_qubits))})
    raw = work.aggregate(Returned(placed, replies, {"qpu-a": qn}, observables))
    return Run(work, placed, replies, {"qpu-a": qn}, raw)


def test_single_job_expectation_values_carry_the_calibration_error() -> None:
    observables = ["ZZI", "IZZ", "XXX"]  # all 1 on GHZ
    run = asyncio.run(run_single_observables(observables))
    spec = READOUT.model_copy(update={"observables": observables})
    mitigated = run.mitigate(spec)
    assert mitigated is not None
    values, errors = mitigated.expectation_values, mitigated.standard_errors
    assert values is not None and errors is not None
    raw_errors = run.raw.standard_errors or []
    assert len(values) == len(errors) == len(raw_errors) == 3
    for value, error, raw_error in zip(values, errors, raw_errors, strict=True):
        assert -1 <= value <= 1
        # Within 5 standard errors of the truth but for 1 in 10^6.
        assert abs(value - 1) < 5 * error
        # The correction spreads the shot noise and adds the calibration's error.
        assert error > raw_error
    assert "calibration's own sampling error" in mitigated.method
