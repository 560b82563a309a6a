"""Builders shared by the planner tests: nodes, links and the circuits the specs talk about."""

from __future__ import annotations

import math

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector
from qiskit.synthesis.qft import synth_qft_full

from qorch.api import NoiseSpec
from qorch.api.quantum_node import DEFAULT_BASIS_GATES
from qorch.pipeline import strategies
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.strategies import Candidate, Demand
from qorch.planner.teleport import TeleportProgram
from qorch.qpu.composite_noise import defer_feed_forward

BASIS = tuple(DEFAULT_BASIS_GATES)
NOISY = NoiseSpec(
    t1_microseconds=100,
    t2_microseconds=80,
    single_qubit_error=1e-3,
    two_qubit_error=1e-2,
    readout_error=0.02,
    single_qubit_gate_nanoseconds=35,
    two_qubit_gate_nanoseconds=300,
    measure_nanoseconds=1500,
)


def node(name: str, free: int, noise: NoiseSpec | None = None) -> NodeSlot:
    return NodeSlot(name, free, noise or NoiseSpec(), BASIS)


def link(
    a: str,
    b: str,
    fidelity: float = 1.0,
    *,
    rate_hz: float = 1e5,
    success: float = 0.5,
    latency_us: float = 0.0,
    name: str | None = None,
) -> LinkSlot:
    return LinkSlot(name or f"{a}-{b}", a, b, fidelity, rate_hz, success, latency_us)


def qft_adder(width: int = 8, addend: int = 77) -> QuantumCircuit:
    """|x> -> |x + addend mod 2^n> in Fourier space, on a superposition of four inputs."""
    qc = QuantumCircuit(width, width)
    qc.x(0)
    qc.h(3)
    qc.h(width - 2)
    qft = synth_qft_full(width, do_swaps=False)
    qc.compose(qft, inplace=True)
    for k in range(width):
        qc.p(2 * math.pi * addend * 2**k / 2**width, width - 1 - k)
    qc.compose(qft.inverse(), inplace=True)
    qc.measure(range(width), range(width))
    return qc


def ansatz(width: int = 8, layers: int = 2, seed: int = 7) -> QuantumCircuit:
    """Hardware-efficient ansatz: RY/RZ layers and a CNOT chain; no measurements."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(width)
    for _ in range(layers):
        for q in range(width):
            qc.ry(rng.uniform(0, math.pi), q)
            qc.rz(rng.uniform(0, math.pi), q)
        for q in range(width - 1):
            qc.cx(q, q + 1)
    return qc


def ideal_distribution(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact outcome probabilities of a circuit measuring qubit i into clbit i at the end."""
    state = Statevector(circuit.remove_final_measurements(inplace=False))
    return {k: float(v) for k, v in state.probabilities_dict().items() if v > 1e-12}


def program_distribution(program: TeleportProgram) -> dict[str, float]:
    """Exact outcome probabilities of a noiseless co-simulated program over the original
    circuit's clbits, keyed like `ideal_distribution`.

    The feed-forward is deferred as `simulate_composite` does for an ideal model, which leaves
    a unitary followed by the original circuit's measurements; a gadget measurement that could
    not be deferred fails the check.
    """
    deferred = defer_feed_forward(program.circuit, keep_resets=False)
    measured: dict[int, int] = {}
    body = deferred.copy_empty_like()
    for inst in deferred.data:
        qubits = [deferred.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "measure":
            clbit = deferred.find_bit(inst.clbits[0]).index
            assert clbit < program.original_num_clbits, "a gadget measurement was not deferred"
            measured[clbit] = qubits[0]
        else:
            assert not set(qubits) & set(measured.values()), "a measured qubit is used again"
            body.append(inst)
    order = [measured[c] for c in range(program.original_num_clbits)]
    probabilities = Statevector(body).probabilities_dict(qargs=order)
    return {k: float(v) for k, v in probabilities.items() if v > 1e-12}


def estimate_candidates(
    circuit: QuantumCircuit,
    observables: list[str] | None,
    nodes: list[NodeSlot],
    links: list[LinkSlot],
    *,
    shots: int,
    timeout_seconds: float,
    max_sampling_overhead: float,
    strategy: str = "auto",
) -> list[Candidate]:
    """Every registered strategy's candidate, as the pipeline estimates them."""
    demand = Demand(
        circuit, observables, nodes, links, shots, timeout_seconds, max_sampling_overhead
    )
    return strategies.estimate_candidates(demand, strategy)
