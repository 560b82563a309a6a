"""Verification's exact simulation starts beside the programs: in a thread for narrow
circuits, in a simulation process from EXACT_IN_PROCESS_QUBITS (Aer holds the interpreter
lock while it runs), and verification then reads it instead of simulating again. Where the
plan's prediction already simulated the circuit's exact output, verification reads that."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit

import qorch.pipeline.job as job_module
import qorch.pipeline.verification as verification
import qorch.planner.strategies as strategies_module
from qorch.api.distributed_job import DistributedJob
from qorch.memory_limit import HeldMemory, simulating
from qorch.pipeline.job import ExactOutputs, JobPipeline, PipelineSettings, job_key
from qorch.pipeline.reservations import Reservations, node_resource
from qorch.pipeline.verification import (
    EXACT_IN_PROCESS_QUBITS,
    MAX_STATEVECTOR_QUBITS,
    exact_beside,
    exact_outcome_probabilities,
    exact_output_bytes,
    exact_probabilities,
    from_ideal,
    verify_counts,
)
from qorch.planner.prediction import ideal_output
from qorch.qpu.simulation_process import SimulationInterrupted, SimulationProcess
from qorch.telemetry.metrics import METRICS
from tests.support import deep_circuit, ghz

from .fake_world import FakeWorld, result
from .test_job_transitions import BELL, BELL_COUNTS, running, step


def simulate_again(*_: object) -> None:
    """In place of a simulation that must not run again."""
    raise AssertionError("simulated again")


async def test_a_narrow_circuit_is_simulated_in_a_thread() -> None:
    process = SimulationProcess()
    exact = await exact_beside(ghz(4), process)
    assert exact is not None and process._pool is None
    assert np.allclose(exact.probabilities, exact_probabilities(ghz(4)).probabilities)


async def test_a_wide_circuit_is_simulated_in_the_process_and_the_loop_keeps_running() -> None:
    process = SimulationProcess()
    await process.call(int, 0)  # started: its start-up is not what is measured
    # Deep enough that the simulation, not the transfer of its 2^23 probabilities, is most
    # of the time: a loaded machine's stalls (0.35 s seen) stay well under half of it.
    circuit = deep_circuit(EXACT_IN_PROCESS_QUBITS, 6)
    began = time.perf_counter()
    task = asyncio.ensure_future(exact_beside(circuit, process))
    worst = 0.0
    while not task.done():
        tick = time.perf_counter()
        await asyncio.sleep(0.02)
        worst = max(worst, time.perf_counter() - tick - 0.02)
    elapsed = time.perf_counter() - began
    exact = task.result()
    try:
        assert exact is not None
        assert exact.probabilities.sum() == pytest.approx(1.0)
        assert elapsed > 1.0, "too quick to tell; deepen the circuit"
        assert worst < 0.5 * elapsed, (worst, elapsed)  # a thread would hold the loop
    finally:
        process.close()


async def test_a_circuit_without_final_measurements_only_is_left_to_verification() -> None:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(0)
    qc.measure(0, 1)
    assert await exact_beside(qc, SimulationProcess()) is None


async def test_a_circuit_too_wide_to_verify_neither_simulates_nor_waits_its_turn() -> None:
    """Past MAX_STATEVECTOR_QUBITS there is nothing to simulate: the wide-simulation slot,
    held here by another simulation, is not waited for."""
    qc = QuantumCircuit(MAX_STATEVECTOR_QUBITS + 1)
    qc.h(0)
    qc.measure_all()
    with simulating(1 << 62):
        assert await asyncio.wait_for(exact_beside(qc, SimulationProcess()), 10) is None


def test_verification_reads_the_exact_simulation_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuit = ghz(5)
    exact = exact_probabilities(circuit)
    counts = {"00000": 480, "11111": 500, "00001": 20}
    expected = verify_counts(circuit, counts, 0.9)

    monkeypatch.setattr(verification, "exact_probabilities", simulate_again)
    assert verify_counts(circuit, counts, 0.9, exact) == expected


def scrambled(seed: int) -> QuantumCircuit:
    """Random rotations and CNOTs on 5 qubits, measured into a shuffled subset of 7 clbits:
    clbit order and qubit order differ, and two clbits are never written."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(5, 7)
    for layer in range(3):
        for q in range(5):
            qc.ry(rng.uniform(0, np.pi), q)
            qc.rz(rng.uniform(0, np.pi), q)
        for q in range(layer % 2, 4, 2):
            qc.cx(q, q + 1)
    clbits = rng.permutation(7)[:5]
    for q in rng.permutation(5):
        qc.measure(int(q), int(clbits[q]))
    return qc


@pytest.mark.parametrize("seed", range(6))
def test_the_planners_exact_output_reads_as_verifications_own(seed: int) -> None:
    circuit = scrambled(seed)
    ideal = ideal_output(circuit)
    assert ideal is not None
    planned = from_ideal(circuit, ideal.bits, ideal.probabilities)
    own = exact_probabilities(circuit)
    assert planned is not None and own is not None
    keys = [format(i, "07b") for i in range(1 << 7)]
    assert np.allclose(planned.of(keys), own.of(keys), atol=1e-12)
    assert planned.support == own.support
    # Marginals read the array by qubit order: the same for both.
    outcomes = np.arange(4)
    a = exact_outcome_probabilities(circuit, [1, 3], outcomes, planned)
    b = exact_outcome_probabilities(circuit, [1, 3], outcomes, own)
    assert a is not None and b is not None and np.allclose(a[0], b[0], atol=1e-12)


def test_circuits_the_two_read_differently_are_simulated_again() -> None:
    twice = QuantumCircuit(2, 3)
    twice.h(0)
    twice.cx(0, 1)
    twice.measure([0, 1], [0, 1])
    twice.measure(0, 2)  # one qubit into two clbits: the planner does not predict this
    assert ideal_output(twice) is None
    probabilities = np.full(8, 1 / 8)
    assert from_ideal(twice, (0, 1, 2), probabilities) is None
    mid = QuantumCircuit(2, 2)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)
    mid.measure(1, 1)
    assert from_ideal(mid, (0, 1), np.full(4, 0.25)) is None
    # An output of other clbits than the circuit measures is not this circuit's.
    assert from_ideal(ghz(3), (0, 1), np.full(4, 0.25)) is None


async def test_a_job_whose_plan_predicted_its_output_is_verified_without_simulating_again(
    pipeline: JobPipeline, world: FakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)

    # Neither beside the programs nor in verification itself.
    monkeypatch.setattr(job_module, "exact_beside", simulate_again)
    monkeypatch.setattr(verification, "exact_probabilities", simulate_again)
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    verified = job.status.result.verification
    assert verified.method == "statevector" and verified.hellinger_fidelity > 0.99


async def test_past_the_memory_kept_for_exact_outputs_verification_simulates_again(
    pipeline: JobPipeline, world: FakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_module, "IDEAL_KEPT_BYTES", 16)  # less than 4 probabilities
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)
    started = []
    real = job_module.exact_beside

    async def beside(circuit: QuantumCircuit, process: SimulationProcess):
        started.append(circuit)
        return await real(circuit, process)

    monkeypatch.setattr(job_module, "exact_beside", beside)
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    assert len(started) == 1
    assert job.status.result.verification.hellinger_fidelity > 0.99


async def test_an_exact_simulation_that_dies_is_not_repeated_in_the_operator(
    pipeline: JobPipeline, world: FakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its process most likely ran out of memory: the same simulation in the operator's
    own process would hold its event loop, and could take the operator down with it. This
    Bell circuit is Clifford: its tableau verifies it all the same."""
    monkeypatch.setattr(job_module, "IDEAL_KEPT_BYTES", 16)  # not kept from the plan
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)

    async def killed(circuit: QuantumCircuit, process: SimulationProcess) -> None:
        raise SimulationInterrupted("the simulation process stopped mid-run")

    monkeypatch.setattr(job_module, "exact_beside", killed)
    monkeypatch.setattr(verification, "exact_probabilities", simulate_again)
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    assert sum(job.status.result.counts.values()) == sum(BELL_COUNTS.values())
    verified = job.status.result.verification
    assert verified.method == "stabilizer" and verified.hellinger_fidelity > 0.99


def test_without_its_exact_simulation_a_non_clifford_circuit_says_why_it_is_unverified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verification, "exact_probabilities", simulate_again)
    circuit = deep_circuit(4, 2)
    failure = "the exact simulation failed (SimulationInterrupted: stopped mid-run)"
    check = verify_counts(circuit, {"0000": 10}, 0.9, failure)
    assert check.method == f"none; {failure}" and check.threshold is None


async def test_a_later_estimate_of_the_same_circuit_reads_the_kept_exact_output(
    pipeline: JobPipeline, world: FakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add_node("a", 4)
    job = await running(pipeline)

    monkeypatch.setattr(strategies_module, "ideal_output", simulate_again)
    # Other free capacity (3 of the node's 4 qubits): a new estimate, which predicts again.
    circuit = await pipeline._circuit(job)
    free = {node_resource(job.metadata.namespace, "a"): 3}
    estimate = await pipeline._estimate(job, circuit, pipeline._candidates(job), free)
    assert not isinstance(estimate.choice, str) and estimate.choice.estimated_fidelity > 0.99


#: One Bell output's bytes: the room the tests below share between two jobs.
BELL_OUTPUT = 8 << 2
NOT_CLIFFORD = BELL.replace("h q[0];", "h q[0];\nt q[0];")


def gated_node(world: FakeWorld, name: str, *gated: str) -> asyncio.Event:
    """Node `name`'s agent answers the `gated` jobs once the returned event is set, others
    at once."""
    world.add_node(name, 4)
    replies = asyncio.Event()

    async def run(payload: dict[str, Any]) -> dict[str, Any]:
        if any(f"/{job}/" in payload["programId"] for job in gated):
            await replies.wait()
        return result(payload, name, BELL_COUNTS)

    world.runs[name] = run
    return replies


async def holding_room(shared: ExactOutputs, pipeline: JobPipeline, job: DistributedJob):
    """`job`'s step, started, once its exact output holds room."""
    stepping = asyncio.ensure_future(step(pipeline, job))
    while shared.held.used == 0:
        await asyncio.sleep(0.01)
    return stepping


async def test_running_jobs_exact_outputs_wait_for_room_in_the_memory_kept_for_them(
    world: FakeWorld,
    book: Reservations,
    settings: PipelineSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One Bell output's bytes of room, shared by two jobs' pipelines as the operator drives
    each job with its own: the second job's exact output waits until the first job's
    programs returned and its output was read, then it is simulated and verified."""
    monkeypatch.setattr(job_module, "IDEAL_KEPT_BYTES", 16)  # not kept from the plan
    assert exact_output_bytes(ghz(2)) == BELL_OUTPUT
    shared = ExactOutputs(held=HeldMemory(BELL_OUTPUT))
    pipelines = [JobPipeline(world, book, settings, exact_outputs=shared) for _ in range(2)]
    first_replies = gated_node(world, "a", "first")
    first = await running(pipelines[0], "first")
    second = await running(pipelines[1], "second")
    first_step = await holding_room(shared, pipelines[0], first)
    second_step = asyncio.ensure_future(step(pipelines[1], second))
    await asyncio.sleep(0.3)
    assert not second_step.done(), "the second exact output did not wait for room"
    first_replies.set()
    await asyncio.wait_for(asyncio.gather(first_step, second_step), 60)
    for job in (first, second):
        assert job.status.phase == "Succeeded", job.status.message
        verified = job.status.result.verification
        assert verified.method == "statevector" and verified.hellinger_fidelity > 0.99
    assert shared.held.used == 0


async def test_a_step_stopped_while_its_output_waits_for_room_leaves_none_held(
    world: FakeWorld, book: Reservations, settings: PipelineSettings
) -> None:
    """As when a running job is deleted and kopf cancels its daemon mid-step: while its
    programs run, its exact output waiting for room."""
    shared = ExactOutputs(held=HeldMemory(BELL_OUTPUT))
    pipelines = [JobPipeline(world, book, settings, exact_outputs=shared) for _ in range(2)]
    replies = gated_node(world, "a", "first", "second")
    first = await running(pipelines[0], "first")
    second = await running(pipelines[1], "second")
    first_step = await holding_room(shared, pipelines[0], first)
    second_step = asyncio.ensure_future(step(pipelines[1], second))
    await asyncio.sleep(0.3)
    second_step.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await second_step
    # The rest of a deletion, as the operator's handler does it.
    await pipelines[1].cancel(second)
    METRICS.track_job_phase(job_key(second), None)
    replies.set()
    await asyncio.wait_for(first_step, 60)
    await asyncio.sleep(0.3)  # an orphaned wait for room would take it now
    assert first.status.phase == "Succeeded", first.status.message
    assert shared.held.used == 0


async def test_an_output_without_room_within_the_jobs_time_leaves_the_job_unverified(
    world: FakeWorld, book: Reservations, settings: PipelineSettings
) -> None:
    shared = ExactOutputs(held=HeldMemory(BELL_OUTPUT))
    pipelines = [JobPipeline(world, book, settings, exact_outputs=shared) for _ in range(2)]
    replies = gated_node(world, "a", "first")
    first = await running(pipelines[0], "first")
    # Not Clifford: its stabilizer tableau cannot verify it in the statevector's place.
    hurried = await running(pipelines[1], "hurried", NOT_CLIFFORD, timeoutSeconds=5)
    first_step = await holding_room(shared, pipelines[0], first)
    await asyncio.wait_for(step(pipelines[1], hurried), 30)
    assert hurried.status.phase == "Succeeded", hurried.status.message
    assert sum(hurried.status.result.counts.values()) == sum(BELL_COUNTS.values())
    verified = hurried.status.result.verification
    assert verified.method.startswith("none; no room for its 3.05e-05 MiB exact output")
    assert "running jobs' outputs hold 3.05e-05 of 3.05e-05 MiB" in verified.method
    replies.set()
    await asyncio.wait_for(first_step, 60)
    assert shared.held.used == 0


def test_only_an_output_the_statevector_gives_takes_room() -> None:
    wide = QuantumCircuit(MAX_STATEVECTOR_QUBITS + 1, MAX_STATEVECTOR_QUBITS + 1)
    wide.h(0)
    wide.measure(range(wide.num_qubits), range(wide.num_qubits))
    assert exact_output_bytes(wide) == 0  # verified by its tableau, or not at all
    mid = QuantumCircuit(2, 2)
    mid.measure(0, 0)
    mid.x(0)
    mid.measure(0, 1)
    assert exact_output_bytes(mid) == 0  # deferred measurement, not a held output
    three_of_five = QuantumCircuit(5, 3)
    three_of_five.measure([0, 2, 4], [0, 1, 2])
    assert exact_output_bytes(three_of_five) == 8 << 3
