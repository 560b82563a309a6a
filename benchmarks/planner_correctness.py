"""Noiseless distributed execution against the monolithic circuit, per strategy.

- teleport: the co-simulated program (`qorch.qpu.composite_noise.simulate_composite`) and the
  monolithic circuit on Aer, both compared with the exact distribution by Hellinger fidelity;
- cut: expectation values knitted from per-node subexperiments on Aer, compared with the
  exact values, in units of the reported standard error.

All noiseless, so any distance beyond sampling error is a planner bug. Run::

    PYTHONPATH=src python benchmarks/planner_correctness.py --write

With ``--write`` the tables go to benchmarks/results/planner_correctness.md as well.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import qiskit
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Statevector, hellinger_fidelity
from qiskit.synthesis.qft import synth_qft_full
from qiskit_aer import AerSimulator

from qorch.api import NoiseSpec
from qorch.planner.cutting import exact_expectation_values, plan_cut
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import partition
from qorch.planner.teleport import compile_teleport
from qorch.qpu.composite_noise import simulate_composite

BASIS = ("id", "rz", "sx", "x", "cx", "measure", "reset", "delay")
RESULTS = Path(__file__).parent / "results" / "planner_correctness.md"
SHOTS = 8000
CUT_SHOTS = 2000


def nodes(*sizes: int) -> list[NodeSlot]:
    return [NodeSlot(f"n{i}", s, NoiseSpec(), BASIS) for i, s in enumerate(sizes)]


def full_links(slots: list[NodeSlot]) -> list[LinkSlot]:
    return [
        LinkSlot(f"{a.name}-{b.name}", a.name, b.name, 1.0, 1e5, 0.5, 0.0)
        for i, a in enumerate(slots)
        for b in slots[i + 1 :]
    ]


def ghz(width: int) -> QuantumCircuit:
    qc = QuantumCircuit(width)
    qc.h(0)
    for q in range(width - 1):
        qc.cx(q, q + 1)
    qc.measure_all()
    return qc


def qft_adder(width: int, addend: int = 77) -> QuantumCircuit:
    qc = QuantumCircuit(width)
    qc.x(0)
    qc.h([3, width - 2])
    qft = synth_qft_full(width, do_swaps=False)
    qc.compose(qft, inplace=True)
    for k in range(width):
        qc.p(2 * math.pi * addend * 2**k / 2**width, width - 1 - k)
    qc.compose(qft.inverse(), inplace=True)
    qc.measure_all()
    return qc


def qaoa(width: int, seed: int = 1) -> QuantumCircuit:
    graph = nx.random_regular_graph(3, width, seed=seed)
    qc = QuantumCircuit(width)
    qc.h(range(width))
    for a, b in graph.edges:
        qc.rzz(0.8, a, b)
    qc.rx(0.6, range(width))
    return qc


def ansatz(width: int, layers: int = 2, seed: int = 7) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(width)
    for _ in range(layers):
        for q in range(width):
            qc.ry(rng.uniform(0, math.pi), q)
            qc.rz(rng.uniform(0, math.pi), q)
        for q in range(width - 1):
            qc.cx(q, q + 1)
    return qc


def exact(circuit: QuantumCircuit) -> dict[str, float]:
    state = Statevector(circuit.remove_final_measurements(inplace=False))
    return {k: float(p) for k, p in state.probabilities_dict().items() if p > 1e-12}


def teleport_rows() -> list[str]:
    random10 = random_circuit(10, 6, max_operands=2, seed=5)
    random10.measure_all()
    measured_qaoa = qaoa(10)
    measured_qaoa.measure_all()
    cases = [
        ("GHZ", ghz(10), nodes(6, 6)),
        ("QFT adder", qft_adder(8), nodes(5, 5)),
        ("QAOA", measured_qaoa, nodes(6, 6)),
        ("random depth 6", random10, nodes(6, 6)),
        ("GHZ, 3 nodes", ghz(12), nodes(5, 5, 5)),
    ]
    rows = [
        "| circuit | qubits | nodes | Bell pairs | program qubits | F monolithic | F teleport |"
        " monolithic s | teleport s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, circuit, slots in cases:
        links = full_links(slots)
        placed = partition(circuit, slots, links, min_nodes=2)
        assert placed is not None
        program = compile_teleport(circuit, placed, slots, links)
        ideal = exact(circuit)
        start = time.perf_counter()
        simulator = AerSimulator()
        native = transpile(circuit, simulator, optimization_level=0)
        mono = simulator.run(native, shots=SHOTS, seed_simulator=1).result().get_counts()
        mono_s = time.perf_counter() - start
        start = time.perf_counter()
        counts = simulate_composite(program.circuit, program.noise, SHOTS, seed=2)
        tele_s = time.perf_counter() - start
        teleported = program.original_counts(counts)
        rows.append(
            f"| {name} | {circuit.num_qubits} | {len(placed.nodes)} |"
            f" {sum(program.bell_pairs.values())} | {program.circuit.num_qubits} |"
            f" {hellinger_fidelity(mono, ideal):.4f} |"
            f" {hellinger_fidelity(teleported, ideal):.4f} | {mono_s:.2f} | {tele_s:.2f} |"
        )
    return rows


def cut_rows() -> list[str]:
    cases = [
        ("ansatz 2 layers", ansatz(8), ["ZZZZZZZZ", "ZIIIIIIZ", "XXXXXXXX"], nodes(4, 4)),
        ("ansatz 1 layer", ansatz(10, layers=1), ["Z" * 10, "X" * 10], nodes(5, 5)),
        ("QAOA", qaoa(8), ["ZZIIIIII", "IIIIIIZZ", "ZIIIIIIZ"], nodes(4, 4)),
    ]
    rows = [
        "| circuit | qubits | cuts | overhead | subexperiments | observable | exact | cut |"
        " SE | error / SE |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    simulator = AerSimulator()
    for name, circuit, observables, slots in cases:
        placed = partition(circuit, slots, [], require_links=False)
        assert placed is not None
        plan = plan_cut(circuit, observables, placed, max_sampling_overhead=1e4)
        results = {
            node: [
                simulator.run(c, shots=CUT_SHOTS, seed_simulator=(k + 1) * 1_000_003)
                .result()
                .get_counts()
                for k, c in enumerate(circuits)
            ]
            for node, circuits in plan.subexperiments.items()
        }
        values, errors = plan.reconstruct(results)
        truth = exact_expectation_values(circuit, observables)
        for obs, value, error, want in zip(observables, values, errors, truth, strict=True):
            rows.append(
                f"| {name} | {circuit.num_qubits} | {plan.num_cuts} |"
                f" {plan.sampling_overhead:.4g} | {plan.num_subexperiments} | {obs} |"
                f" {want:+.4f} | {value:+.4f} | {error:.4f} | {(value - want) / error:+.2f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args(argv)
    teleport = "\n".join(teleport_rows())
    print(teleport, end="\n\n")
    cut = "\n".join(cut_rows())
    print(cut)
    if args.write:
        RESULTS.write_text(
            "# Planner: noiseless distributed vs. monolithic\n\n"
            "Command: `PYTHONPATH=src python benchmarks/planner_correctness.py --write`\n\n"
            f"Python {platform.python_version()}, qiskit {qiskit.__version__}, 2 shared cores.\n\n"
            f"## teleport ({SHOTS} shots)\n\nHellinger fidelity to the exact distribution of the"
            " monolithic circuit; the teleported program runs co-simulated with deferred"
            " feed-forward (one statevector pass when noiseless).\n\n"
            + teleport
            + f"\n\n## cut ({CUT_SHOTS} shots per subexperiment)\n\nExact weights, shot noise"
            " only; SE is the propagated standard error the plan reports.\n\n" + cut + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
