"""Aer's thread limit follows OMP_NUM_THREADS even when it is set after Aer loaded, as in an
agent forked from a process that had imported Aer."""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit

from qorch.qpu.aer import bounded_simulator


def test_omp_num_threads_set_after_aer_loaded_still_limits_its_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    simulator = bounded_simulator()
    assert simulator.options.max_parallel_threads == 1
    qc = QuantumCircuit(16)
    qc.h(range(16))
    qc.measure_all()
    result = simulator.run(qc, shots=10, seed_simulator=1).result()
    assert result.results[0].metadata["parallel_state_update"] == 1


@pytest.mark.parametrize(
    ("value", "threads"), [("3,1", 3), ("", None), ("lots", None), ("0", None)]
)
def test_an_unset_or_unusable_value_leaves_aers_default(monkeypatch, value, threads):
    # None: Aer then takes as many as OpenMP gives it
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert bounded_simulator().options.max_parallel_threads == threads
