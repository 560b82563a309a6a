"""Bell pairs per shot: the planner's partition against a contiguous fill of the same nodes.

Circuits of 16, 24 and 32 qubits over 2, 3 and 4 fully linked nodes (equal links), three
families:

- QFT: Qiskit's full QFT with its final swaps (every pair of qubits interacts);
- QAOA: two layers of RZZ over a random 3-regular graph, RX mixers;
- random: ``qiskit.circuit.random.random_circuit`` of depth 10 with one- and two-qubit gates.

Every node gets ceil(1.25 * width / nodes) + 1 free qubits: one is kept for the Bell-pair
halves, and the 25% slack lets a plan choose part sizes. Both contenders see the same nodes
and keep the same communication qubit; the baseline (``naive_partition``) fills the nodes in
order with the qubits in circuit order. The first table prices one Bell pair per nonlocal CX/CZ
once the circuit is decomposed, the partition's objective.

A second table compiles each partition into its teleport program (``compile_teleport``) and
counts the Bell pairs the program really consumes per shot: with cat sharing alone (a mirror
of a control serves all its later remote gates towards one node until an operation that is not
diagonal on it), then with teledata as well (a qubit moved to the other node for a run of
remote gates, when that needs fewer pairs), against one pair per nonlocal gate. Run::

    PYTHONPATH=src python benchmarks/planner_bell_pairs.py --write

With ``--write`` the tables go to benchmarks/results/planner.md as well.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import qiskit
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.synthesis.qft import synth_qft_full

from qorch.api import NoiseSpec
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import naive_partition, partition
from qorch.planner.teleport import compile_teleport

WIDTHS = (16, 24, 32)
NODE_COUNTS = (2, 3, 4)
BASIS = ("id", "rz", "sx", "x", "cx", "measure", "reset", "delay")
RESULTS = Path(__file__).parent / "results" / "planner.md"
TARGET = 0.30


def qft(width: int, seed: int) -> QuantumCircuit:
    return synth_qft_full(width)


def qaoa(width: int, seed: int) -> QuantumCircuit:
    graph = nx.random_regular_graph(3, width, seed=seed)
    qc = QuantumCircuit(width)
    qc.h(range(width))
    for layer in range(2):
        for a, b in graph.edges:
            qc.rzz(0.4 + 0.1 * layer, a, b)
        qc.rx(0.3 + 0.1 * layer, range(width))
    return qc


def random(width: int, seed: int) -> QuantumCircuit:
    return random_circuit(width, 10, max_operands=2, seed=seed)


FAMILIES: dict[str, tuple[Callable[[int, int], QuantumCircuit], int]] = {
    "QFT": (qft, 1),  # deterministic: one circuit per size
    "QAOA": (qaoa, 3),
    "random": (random, 3),
}


def network(width: int, count: int) -> tuple[list[NodeSlot], list[LinkSlot]]:
    free = math.ceil(1.25 * width / count) + 1
    nodes = [NodeSlot(f"n{i}", free, NoiseSpec(), BASIS) for i in range(count)]
    links = [
        LinkSlot(f"n{i}-n{j}", f"n{i}", f"n{j}", 0.95, 1e5, 0.5, 10.0)
        for i in range(count)
        for j in range(i + 1, count)
    ]
    return nodes, links


def measure() -> list[dict[str, object]]:
    warm_nodes, warm_links = network(16, 2)
    partition(qaoa(16, 0), warm_nodes, warm_links)  # imports and caches out of the timings
    rows = []
    for family, (generate, seeds) in FAMILIES.items():
        for width in WIDTHS:
            for count in NODE_COUNTS:
                nodes, links = network(width, count)
                for seed in range(1, seeds + 1):
                    circuit = generate(width, seed)
                    start = time.perf_counter()
                    ours = partition(circuit, nodes, links)
                    seconds = time.perf_counter() - start
                    naive = naive_partition(circuit, nodes, links)
                    assert ours is not None and naive is not None
                    shared = compile_teleport(circuit, ours, nodes, links, teledata=False)
                    start = time.perf_counter()
                    program = compile_teleport(circuit, ours, nodes, links)
                    compile_seconds = time.perf_counter() - start
                    rows.append(
                        {
                            "family": family,
                            "width": width,
                            "nodes": count,
                            "seed": seed,
                            "naive": naive.nonlocal_gates,
                            "ours": ours.nonlocal_gates,
                            "used": len(ours.nodes),
                            "seconds": seconds,
                            "gadgets": program.nonlocal_gates,
                            "shared": sum(shared.bell_pairs.values()),
                            "program": sum(program.bell_pairs.values()),
                            "moves": program.teledata,
                            "compile_seconds": compile_seconds,
                        }
                    )
    return rows


def _reduction(row: dict[str, object]) -> float:
    naive, ours = int(row["naive"]), int(row["ours"])  # type: ignore[call-overload]
    return (naive - ours) / naive if naive else 0.0


def _saving(row: dict[str, object], key: str) -> float:
    gadgets, pairs = int(row["gadgets"]), int(row[key])  # type: ignore[call-overload]
    return (gadgets - pairs) / gadgets if gadgets else 0.0


def program_report(rows: list[dict[str, object]]) -> str:
    """Bell pairs the compiled programs consume against one pair per nonlocal gate."""
    lines = [
        "| family | qubits | nodes | one per nonlocal gate | cat sharing | + teledata |"
        " reduction | moves | compile ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[object, object, object], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["width"], row["nodes"]), []).append(row)

    def mean(members: list[dict[str, object]], key: str) -> float:
        return statistics.mean(int(r[key]) for r in members)  # type: ignore[call-overload]

    for (family, width, count), members in groups.items():
        reduction = statistics.mean(_saving(r, "program") for r in members)
        ms = statistics.median(float(r["compile_seconds"]) for r in members) * 1e3  # type: ignore[arg-type]
        lines.append(
            f"| {family} | {width} | {count} | {mean(members, 'gadgets'):.0f} |"
            f" {mean(members, 'shared'):.0f} | {mean(members, 'program'):.0f} |"
            f" {reduction:.0%} | {mean(members, 'moves'):.1f} | {ms:.0f} |"
        )
    totals = {k: sum(int(r[k]) for r in rows) for k in ("gadgets", "shared", "program")}  # type: ignore[call-overload]
    families = {
        family: statistics.mean(_saving(r, "program") for r in rows if r["family"] == family)
        for family in FAMILIES
    }
    summary = ", ".join(f"{family} {value:.0%}" for family, value in families.items())
    return (
        "\n".join(lines) + f"\n\nOver all {len(rows)} programs: {totals['gadgets']} nonlocal gates,"
        f" {totals['shared']} Bell pairs with cat sharing, {totals['program']} with teledata as"
        f" well ({1 - totals['program'] / totals['gadgets']:.0%} fewer pairs than one per gate;"
        f" mean reduction per family: {summary}).\n"
    )


def report(rows: list[dict[str, object]]) -> str:
    lines = [
        "| family | qubits | nodes | naive Bell pairs | partition | reduction | plan ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[object, object, object], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["width"], row["nodes"]), []).append(row)
    for (family, width, count), members in groups.items():
        naive = statistics.mean(int(r["naive"]) for r in members)  # type: ignore[call-overload]
        ours = statistics.mean(int(r["ours"]) for r in members)  # type: ignore[call-overload]
        reduction = statistics.mean(_reduction(r) for r in members)
        ms = statistics.median(float(r["seconds"]) for r in members) * 1e3  # type: ignore[arg-type]
        lines.append(
            f"| {family} | {width} | {count} | {naive:.0f} | {ours:.0f} | {reduction:.0%} |"
            f" {ms:.0f} |"
        )
    per_family = {
        family: statistics.mean(_reduction(r) for r in rows if r["family"] == family)
        for family in FAMILIES
    }
    overall = statistics.mean(_reduction(r) for r in rows)
    balanced = statistics.mean(per_family.values())
    verdict = "meets" if min(overall, balanced) >= TARGET else "misses"
    summary = ", ".join(f"{f} {v:.0%}" for f, v in per_family.items())
    return (
        "\n".join(lines)
        + f"\n\nAverage reduction: **{balanced:.0%}** as the mean of the family means"
        f" ({summary}); {overall:.0%} over all {len(rows)} circuits. Target >= {TARGET:.0%}:"
        f" **{verdict} target**.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args(argv)
    rows = measure()
    body = report(rows) + "\n## Bell pairs the teleport programs consume\n\n" + program_report(rows)
    print(body)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Planner: Bell pairs of the partition vs. a contiguous fill, and of the programs\n\n"
            "Command: `PYTHONPATH=src python benchmarks/planner_bell_pairs.py --write`\n\n"
            "Bell pairs per shot at one per nonlocal CX/CZ after decomposition (QAOA and random"
            " rows average three seeds). Nodes are fully linked with equal links and get"
            " ceil(1.25 * qubits / nodes) + 1 free qubits each, one kept for communication."
            " Naive: qubits in circuit order fill the nodes in order. Partition: the fewest"
            " nodes that hold the circuit, multi-start (circuit order, spectral order, Louvain"
            " communities) with Kernighan-Lin and move refinement."
            f" Python {platform.python_version()}, qiskit {qiskit.__version__}, networkx"
            f" {nx.__version__}, {os.cpu_count()} cores shared with other work (times are"
            " indicative). The second table compiles each partition into its teleport program"
            " and counts the pairs it consumes per shot (what the plan now records and reserves)."
            "\n\n" + body + "\n" + NOTES,
            encoding="utf-8",
        )
    return 0


NOTES = """## Reading the numbers

- QFT: every pair of qubits shares two CX (one controlled phase), so for fixed part sizes
  every split costs the same; a contiguous fill is already optimal and the partition can only
  choose the sizes (fill the first node fully), hence the small gain.
- QAOA on 3-regular graphs has real community structure: the partition cuts few edges where
  the circuit's numbering cuts about half of them.
- Random circuits of depth 10 are between the two: the interaction graph is sparse, but with
  little structure to find.

Programs:

- One per nonlocal gate is what every program consumed before cat sharing: one gadget, one
  Bell pair, per CX/CZ that spans two nodes.
- QFT: each controlled phase is `CX P CX`, diagonal on both qubits, so it runs as one unit
  through a mirror of either qubit and never closes a cat; a qubit's mirror serves its phases
  with the qubits of the other node until its Hadamard. What still costs pairs is the single
  communication qubit per node: mirrors of different qubits towards one node evict each other.
- QAOA: each RZZ is such a block too (two nonlocal CX, one pair); on 3-regular graphs a qubit
  rarely has two neighbours across the cut within a layer, and the RX mixer closes every cat,
  hence about half.
- Random circuits mix CX targets, swaps and non-diagonal gates: cats share less, and teledata
  pays where a qubit is a target of, or alternates roles with, several qubits of one node.
- Teledata lands on a node's free qubits only, and never makes a program that one agent could
  co-simulate (26 qubits) wider than that: 24 qubits on 2 nodes (26 with the communication
  qubits) make no moves.
"""


if __name__ == "__main__":
    sys.exit(main())
