"""Long prediction simulations run in the simulation process: planning runs in a worker
thread of the operator, where Aer would hold the interpreter lock for as long. The same
inputs give the same numbers either way."""

from __future__ import annotations

import functools
import math
import threading
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit

import qorch.planner.prediction as prediction
from qorch.api import NoiseSpec
from qorch.planner.prediction import ideal_output, predict_on_node
from qorch.qpu.noise import build_noise_model
from qorch.single_flight import SingleFlight
from tests.support import ghz

NOISE = NoiseSpec(single_qubit_error=0.001, two_qubit_error=0.01, readout_error=0.02)
GATES = ["rz", "sx", "x", "cx"]


def predicted(width: int) -> tuple[np.ndarray, float]:
    circuit = ghz(width)
    ideal = ideal_output(circuit)
    assert ideal is not None
    value = predict_on_node(circuit, NOISE, GATES, ideal, 4000)
    assert value is not None
    return ideal.probabilities, value


def test_a_long_prediction_runs_aside_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = predicted(12)
    calls: list[object] = []
    real = prediction._ASIDE.call_blocking

    def counted(function, *args):  # type: ignore[no-untyped-def]
        calls.append(function)
        return real(function, *args)

    monkeypatch.setattr(prediction._ASIDE, "call_blocking", counted)
    monkeypatch.setattr(prediction, "ASIDE_SECONDS", 0.0)
    monkeypatch.setattr(prediction, "_PREDICTIONS", SingleFlight(8, keep_none=False))  # not kept
    aside = predicted(12)
    assert len(calls) == 2  # the ideal output and the noisy trajectories
    assert np.array_equal(here[0], aside[0])
    assert here[1] == pytest.approx(aside[1], abs=1e-6)  # seeded: single precision aside


def deep(width: int = 16, layers: int = 120) -> QuantumCircuit:
    qc = QuantumCircuit(width)
    for layer in range(layers):
        for q in range(width):
            qc.rx(0.1 * (q + layer + 1), q)
        for q in range(layer % 2, width - 1, 2):
            qc.cx(q, q + 1)
    qc.save_probabilities(list(range(width)))
    return qc


def test_a_thread_waiting_for_the_process_leaves_the_interpreter_to_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prediction, "ASIDE_SECONDS", 0.0)
    model = build_noise_model(NOISE, GATES)
    simulate = functools.partial(
        prediction._aside_if_long, prediction._simulate, deep(), model, 8, "automatic"
    )
    prediction._ASIDE.call_blocking(int, 0)  # started: its start-up is not what is measured
    ticks: list[float] = []
    worker = threading.Thread(target=simulate)
    began = time.perf_counter()
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.01)
    elapsed = time.perf_counter() - began
    gaps = np.diff([began, *ticks])
    assert elapsed > 1.0, "too quick to tell; deepen the circuit"
    # In this thread Aer would hold the lock all along: one gap of about all of it. Half
    # leaves room for a loaded machine's stalls (0.35 s of 1.1 s seen in CI).
    assert gaps.max() < 0.5 * elapsed, (gaps.max(), elapsed)


def test_a_small_simulation_teaches_no_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small simulation's time is mostly Aer's cost per call: learnt as a rate per unit,
    it sent the next small density matrix (milliseconds of work) to the simulation process,
    whose cold start took most of a second."""
    monkeypatch.setattr(prediction, "ASIDE_SECONDS", math.inf)  # all in this thread
    monkeypatch.setattr(prediction, "MAX_SECONDS", math.inf)  # none skipped as too long
    monkeypatch.setattr(prediction, "_rate", 1.0)  # a rate no simulation has
    small = ghz(4)
    small.save_probabilities()
    prediction._aside_if_long(prediction._simulate, small, None, 1, "statevector")
    assert prediction._rate == 1.0
    # A large one does: its time is its work.
    model = build_noise_model(NOISE, GATES)
    prediction._aside_if_long(prediction._simulate, deep(16, 40), model, 8, "automatic")
    assert prediction._rate < 1e-6
