"""Circuits and a seeded runner for the distribution-knitting tests."""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qorch.planner.cut_distribution import DistributionPlan
from qorch.planner.partition import Partition


def ghz(width: int) -> QuantumCircuit:
    qc = QuantumCircuit(width, width)
    qc.h(0)
    for q in range(width - 1):
        qc.cx(q, q + 1)
    qc.measure(range(width), range(width))
    return qc


def qaoa_ring(width: int, gamma: float = 0.4, beta: float = 0.7) -> QuantumCircuit:
    """One QAOA layer for MaxCut on a ring: H, RZZ on every edge, RX mixer."""
    qc = QuantumCircuit(width, width)
    qc.h(range(width))
    for q in range(width):
        qc.rzz(2 * gamma, q, (q + 1) % width)
    qc.rx(2 * beta, range(width))
    qc.measure(range(width), range(width))
    return qc


def random_circuit(width: int, crossing: int, seed: int) -> QuantumCircuit:
    """Random rotations and CX within each half, `crossing` CX between the halves."""
    rng = np.random.default_rng(seed)
    half = width // 2
    qc = QuantumCircuit(width, width)
    for layer in range(crossing + 1):
        for q in range(width):
            qc.u(*rng.uniform(0, 2 * np.pi, 3), q)
        for lo, hi in ((0, half), (half, width)):
            for q in range(lo, hi - 1):
                qc.cx(q, q + 1)
        if layer < crossing:
            qc.cx(int(rng.integers(0, half)), int(rng.integers(half, width)))
    for q in range(width):
        qc.u(*rng.uniform(0, 2 * np.pi, 3), q)
    qc.measure(range(width), range(width))
    return qc


def halves(width: int) -> Partition:
    half = width // 2
    return Partition({q: "a" if q < half else "b" for q in range(width)}, 0, {}, ("a", "b"))


def run(plan: DistributionPlan, shots: int, seed: int) -> dict[str, list[dict[str, int]]]:
    """Every subexperiment on Aer; seeds far apart (Aer seeds shot i with seed + i)."""
    simulator = AerSimulator()
    out: dict[str, list[dict[str, int]]] = {}
    for n, (name, circuits) in enumerate(sorted(plan.knitting.subexperiments.items())):
        out[name] = [
            simulator.run(c, shots=shots, seed_simulator=seed + (n * 1000 + k + 1) * 1_000_003)
            .result()
            .get_counts()
            for k, c in enumerate(circuits)
        ]
    return out
