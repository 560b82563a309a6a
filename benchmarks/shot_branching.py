"""When Aer's shot branching pays, and whether the agent's choice (`branching_pays`) picks it.

A noiseless circuit whose qubits are measured mid-circuit cannot be measure-sampled. Aer
either simulates every shot on its own (plain) or splits the state at each measurement
and simulates each branch once (shot branching). Branching shares the work before the
splits, but each branch has an overhead of its own. The grid: layers of RX and CX on
`n` qubits, `k` of the first layers ending in a measurement, all measured at the end.
Each row times plain, branching and the executor's own `sample` (which chooses, and defers
the measurements to ancillas where that adds few qubits), in turn.

    PYTHONPATH=src python benchmarks/shot_branching.py [--repeats 1] \
        [--output benchmarks/results/shot_branching.md]

Target: the executor within 1.3x of the faster of plain and branching in every row.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path

from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from qorch.api.quantum_node import QuantumNodeSpec
from qorch.qpu.circuits import branching_pays
from qorch.qpu.executor import NodeExecutor

GRID = ((4, 2000), (8, 2000), (12, 1000), (16, 200), (20, 20))  # qubits, shots
MEASURED_LAYERS = (1, 3, 6, 10, 16)
LAYERS = 30


def layered(width: int, measured_layers: int, seed: int = 1) -> QuantumCircuit:
    rng = random.Random(seed)
    circuit = QuantumCircuit(width, width)
    for layer in range(LAYERS):
        for q in range(width):
            circuit.rx(rng.random() * 3, q)
        for q in range(0, width - 1, 2):
            circuit.cx(q, (q + 1 + layer % max(1, width - 1)) % width)
        if layer < measured_layers:
            circuit.measure(layer % width, layer % width)
    circuit.measure(range(width), range(width))
    return circuit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    simulators = {b: AerSimulator(seed_simulator=1, shot_branching_enable=b) for b in (0, 1)}
    rows, ratios = [], []
    for width, shots in GRID:
        spec = QuantumNodeSpec.model_validate({"qubits": width})
        executor = NodeExecutor(spec)
        for k in MEASURED_LAYERS:
            compiled = executor.compile(layered(width, k), seed=1)
            times: dict[str, list[float]] = {"plain": [], "branching": [], "qorch": []}
            for _ in range(args.repeats):
                for branch in (0, 1):
                    begun = time.perf_counter()
                    simulators[branch].run(compiled, shots=shots).result()
                    times["branching" if branch else "plain"].append(time.perf_counter() - begun)
                begun = time.perf_counter()
                sampled = executor.sample(compiled, shots, seed=1).sampled
                times["qorch"].append(time.perf_counter() - begun)
            plain, branching, qorch = (statistics.median(times[n]) for n in times)
            ratio = qorch / min(plain, branching)
            ratios.append(ratio)
            # Measurements deferred to ancillas make every shot one sample of one simulation.
            choice = "deferred" if sampled else "plain"
            choice = "branching" if not sampled and branching_pays(compiled, shots) else choice
            rows.append(
                f"| {width} | {shots} | {k} | {plain:.3f} | {branching:.3f} | {choice}"
                f" | {qorch:.3f} | {ratio:.2f}x |"
            )
            print(rows[-1], flush=True)
    table = [
        "# Shot branching: plain shots, branching, and the agent's choice",
        "",
        f"`PYTHONPATH=src python benchmarks/shot_branching.py --repeats {args.repeats}`"
        f" on {platform.machine()}, Python {platform.python_version()}. Seconds, median of"
        f" {args.repeats}; each row's three runs interleaved.",
        "",
        "| qubits | shots | measured layers | plain s | branching s | qorch picks | qorch s"
        " | qorch / faster |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Worst row: {max(ratios):.2f}x the faster mode; target 1.3x.",
    ]
    text = "\n".join(table) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
