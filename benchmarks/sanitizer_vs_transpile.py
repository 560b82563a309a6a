"""The sanitizer (parsing included) side by side with parsing + transpiling the same source.

Random 1000-gate, 20-qubit circuits (one per seed) are written as OpenQASM 2, then timed in
interleaved rounds so that load on the machine hits every contender alike:

- ``sanitize``: ``qorch.sanitizer.sanitize(source)`` with the default policy, and again with
  target timing (which adds the critical-path duration estimate);
- ``parse``: ``qiskit.qasm2.loads`` alone, the floor every contender pays;
- ``parse + transpile``: ``loads`` then ``transpile(optimization_level=2)`` to the default
  QuantumNode basis, the work every admitted job goes on to need;
- the same without a basis (``transpile`` only optimises), the cheaper reference;
- ``transpile`` alone on the parsed circuit;
- the rule passes alone on the parsed circuit, run the way ``sanitize`` runs them (DAG
  conversion included) and through a Qiskit ``PassManager``, to show what the pass manager
  would add.

The verdict is the ratio of medians, sanitize / (parse + transpile). Run::

    PYTHONPATH=src python benchmarks/sanitizer_vs_transpile.py --write

With ``--write`` the table goes to benchmarks/results/sanitizer.md as well.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import qiskit
from qiskit import QuantumCircuit, qasm2, transpile
from qiskit.converters import circuit_to_dag

from qorch.sanitizer import (
    SanitizerPolicy,
    TargetTiming,
    build_passes,
    run_passes,
    sanitize,
    sanitizer_pass_manager,
)

QUBITS = 20
GATES = 1000
#: The default basis of a QuantumNode (qorch.api.quantum_node.DEFAULT_BASIS_GATES).
NODE_BASIS = ["id", "rz", "sx", "x", "cx", "measure", "reset", "delay"]
TIMING = TargetTiming(
    single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=150
)
RESULTS = Path(__file__).parent / "results" / "sanitizer.md"


def random_source(seed: int, qubits: int = QUBITS, gates: int = GATES) -> str:
    """A random circuit of standard gates (40% two-qubit), measured at the end, as OpenQASM 2."""
    rng = random.Random(seed)
    qc = QuantumCircuit(qubits, qubits)
    fixed = ["h", "x", "s", "t", "sdg", "sx"]
    rotations = ["rz", "rx", "ry", "p"]
    entangling = ["cx", "cz", "swap"]
    for _ in range(gates - qubits):
        pick = rng.random()
        if pick < 0.4:
            a, b = rng.sample(range(qubits), 2)
            getattr(qc, rng.choice(entangling))(a, b)
        elif pick < 0.7:
            getattr(qc, rng.choice(rotations))(
                rng.uniform(-math.pi, math.pi), rng.randrange(qubits)
            )
        else:
            getattr(qc, rng.choice(fixed))(rng.randrange(qubits))
    qc.measure(range(qubits), range(qubits))
    return qasm2.dumps(qc)


def _parse(source: str) -> QuantumCircuit:
    return qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


def contenders(source: str) -> dict[str, Callable[[], object]]:
    """What is timed, by name."""
    policy = SanitizerPolicy()
    parsed = _parse(source)
    return {
        "sanitize": lambda: sanitize(source, policy),
        "sanitize + timing": lambda: sanitize(source, policy, timing=TIMING),
        "parse": lambda: _parse(source),
        "parse + transpile (node basis)": lambda: transpile(
            _parse(source), basis_gates=NODE_BASIS, optimization_level=2, seed_transpiler=1
        ),
        "parse + transpile (no basis)": lambda: transpile(
            _parse(source), optimization_level=2, seed_transpiler=1
        ),
        "transpile (node basis)": lambda: transpile(
            parsed, basis_gates=NODE_BASIS, optimization_level=2, seed_transpiler=1
        ),
        "rule passes, run directly": lambda: run_passes(
            circuit_to_dag(parsed, copy_operations=False), build_passes(policy)
        ),
        "rule passes, in a PassManager": lambda: sanitizer_pass_manager(policy).run(parsed),
    }


def measure(seeds: list[int], rounds: int) -> dict[str, list[float]]:
    """Median seconds per contender and seed, rounds interleaved."""
    medians: dict[str, list[float]] = {}
    for seed in seeds:
        source = random_source(seed)
        assert sanitize(source).report.accepted, "the benchmark circuits must be accepted"
        timed = contenders(source)
        samples: dict[str, list[float]] = {name: [] for name in timed}
        for fn in timed.values():  # warm-up
            fn()
        for _ in range(rounds):
            for name, fn in timed.items():
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
        for name, values in samples.items():
            medians.setdefault(name, []).append(statistics.median(values))
    return medians


REFERENCE = "parse + transpile (node basis)"


def table(medians: dict[str, list[float]]) -> str:
    """Markdown table of medians (over seeds), each as a share of the reference."""
    overall = {name: statistics.median(values) for name, values in medians.items()}
    lines = [
        f"| contender | median ms | share of {REFERENCE} |",
        "|---|---:|---:|",
    ]
    for name, seconds in overall.items():
        lines.append(f"| {name} | {seconds * 1e3:.2f} | {seconds / overall[REFERENCE]:.0%} |")
    return "\n".join(lines)


def verdict(medians: dict[str, list[float]]) -> str:
    """The headline: sanitize as a share of parse + transpile, per seed and overall."""
    shares = [
        s / t
        for s, t in zip(medians["sanitize"], medians["parse + transpile (node basis)"], strict=True)
    ]
    timed = [
        s / t
        for s, t in zip(
            medians["sanitize + timing"], medians["parse + transpile (node basis)"], strict=True
        )
    ]
    cheap = [
        s / t
        for s, t in zip(medians["sanitize"], medians["parse + transpile (no basis)"], strict=True)
    ]
    return (
        f"sanitize / (parse + transpile, node basis): median {statistics.median(shares):.0%} "
        f"(per seed {', '.join(f'{r:.0%}' for r in shares)}); with timing "
        f"{statistics.median(timed):.0%}; against transpile without a basis "
        f"{statistics.median(cheap):.0%}. Target: at most 25%."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="random circuits (default 5)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per circuit")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args(argv)
    seeds = list(range(1, args.seeds + 1))
    medians = measure(seeds, args.rounds)
    body = table(medians)
    headline = verdict(medians)
    print(body)
    print()
    print(headline)
    if args.write:
        command = (
            "PYTHONPATH=src python benchmarks/sanitizer_vs_transpile.py "
            f"--seeds {args.seeds} --rounds {args.rounds} --write"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Sanitizer vs. parse + transpile\n\n"
            f"Command: `{command}`\n\n"
            f"{len(seeds)} random circuits of {GATES} gates on {QUBITS} qubits (OpenQASM 2, "
            f"{len(random_source(1))} bytes each), {args.rounds} interleaved rounds each; "
            "medians per circuit, then the median over circuits.\n\n"
            f"Python {platform.python_version()}, qiskit {qiskit.__version__}, "
            f"{os.cpu_count()} cores shared with other work, so absolute times are noisy; the "
            "ratios are what the rounds were interleaved for.\n\n"
            f"{body}\n\n**{headline}**\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
