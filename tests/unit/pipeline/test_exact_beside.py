"""Verification's exact simulation starts beside the programs: in a thread for narrow
circuits, in a simulation process from EXACT_IN_PROCESS_QUBITS (Aer holds the interpreter
lock while it runs), and verification then reads it instead of simulating again."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit

import qorch.pipeline.verification as verification
from qorch.pipeline.verification import (
    EXACT_IN_PROCESS_QUBITS,
    exact_beside,
    exact_probabilities,
    verify_counts,
)
from qorch.qpu.simulation_process import SimulationProcess
from tests.support import ghz


async def test_a_narrow_circuit_is_simulated_in_a_thread() -> None:
    process = SimulationProcess()
    exact = await exact_beside(ghz(4), process)
    assert exact is not None and process._pool is None
    assert np.allclose(exact.probabilities, exact_probabilities(ghz(4)).probabilities)


async def test_a_wide_circuit_is_simulated_in_the_process_and_the_loop_keeps_running() -> None:
    process = SimulationProcess()
    await process.call(int, 0)  # started: its start-up is not what is measured
    circuit = ghz(EXACT_IN_PROCESS_QUBITS)
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
        assert exact.probabilities[0] == pytest.approx(0.5)
        assert exact.probabilities[-1] == pytest.approx(0.5)
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


def test_verification_reads_the_exact_simulation_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    circuit = ghz(5)
    exact = exact_probabilities(circuit)
    counts = {"00000": 480, "11111": 500, "00001": 20}
    expected = verify_counts(circuit, counts, 0.9)

    def simulate_again(_: QuantumCircuit) -> None:
        raise AssertionError("simulated again")

    monkeypatch.setattr(verification, "exact_probabilities", simulate_again)
    assert verify_counts(circuit, counts, 0.9, exact) == expected
