"""The sanitizer (parsing included) side by side with parsing + transpiling the same source.

Random 20-qubit circuits of about 1000 gates (one per seed) are written as OpenQASM 2, then
timed in interleaved rounds so that load on the machine hits every contender alike:

- ``sanitize``: ``qorch.sanitizer.sanitize(source)`` with the default policy, and again with
  target timing (which adds the critical-path duration estimate);
- ``parse``: ``qasm2.loads`` alone, with the arguments the sanitizer gives it;
- ``parse (sanitizer)``: the sanitizer's own loading step (the same parser, a faster circuit
  builder for sources without gate definitions), part of ``sanitize``;
- ``parse + transpile``: ``loads`` then ``transpile(optimization_level=2)`` to the default
  QuantumNode basis, the work every admitted job goes on to need (the reference);
- the same without a basis (``transpile`` only optimises);
- ``transpile`` alone on the parsed circuit;
- the rule passes alone on the parsed circuit, run the way ``sanitize`` runs them (DAG
  conversion included, passes reused per policy) and through a Qiskit ``PassManager`` (passes
  built each time).

Two families of circuits: a mix of standard gates (qelib1.inc only, 40% two-qubit), and
Qiskit's ``random_circuit`` (every standard-library gate, so the source carries custom gate
definitions such as ``rzx`` and ``ecr``, which the sanitizer analyses and Qiskit has to
translate). Every contender times the same sources, warmed up once, in rounds that interleave
them. The verdict is the ratio of medians, sanitize / reference; for comparison it also gives
sanitize / transpile alone, as if the reference's parse were free. Run::

    PYTHONPATH=src python benchmarks/sanitizer_vs_transpile.py --write

With ``--write`` the tables go to benchmarks/results/sanitizer.md as well.
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
from qiskit.circuit.random import random_circuit
from qiskit.converters import circuit_to_dag

from qorch.api.quantum_node import DEFAULT_BASIS_GATES
from qorch.sanitizer import (
    SanitizerPolicy,
    TargetTiming,
    run_passes,
    sanitize,
    sanitizer_pass_manager,
)
from qorch.sanitizer.parsing import load
from qorch.sanitizer.passes import cached_passes
from qorch.sanitizer.source.scan import SourceScan

QUBITS = 20
GATES = 1000
#: The default basis of a QuantumNode.
NODE_BASIS = list(DEFAULT_BASIS_GATES)
TIMING = TargetTiming(
    single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=150
)
RESULTS = Path(__file__).parent / "results" / "sanitizer.md"
REFERENCE = "parse + transpile (node basis)"
TRANSPILE = "transpile (node basis)"
SANITIZER_PARSE = "parse (sanitizer)"


def standard_mix(seed: int) -> str:
    """Standard gates (40% two-qubit), measured at the end, as OpenQASM 2."""
    rng = random.Random(seed)
    qc = QuantumCircuit(QUBITS, QUBITS)
    fixed = ["h", "x", "s", "t", "sdg", "sx"]
    rotations = ["rz", "rx", "ry", "p"]
    entangling = ["cx", "cz", "swap"]
    for _ in range(GATES - QUBITS):
        pick = rng.random()
        if pick < 0.4:
            a, b = rng.sample(range(QUBITS), 2)
            getattr(qc, rng.choice(entangling))(a, b)
        elif pick < 0.7:
            angle = rng.uniform(-math.pi, math.pi)
            getattr(qc, rng.choice(rotations))(angle, rng.randrange(QUBITS))
        else:
            getattr(qc, rng.choice(fixed))(rng.randrange(QUBITS))
    qc.measure(range(QUBITS), range(QUBITS))
    return qasm2.dumps(qc)


def qiskit_random(seed: int) -> str:
    """Qiskit's random_circuit (one- and two-qubit gates, ~1000 of them), as OpenQASM 2."""
    return qasm2.dumps(random_circuit(QUBITS, 70, max_operands=2, measure=True, seed=seed))


FAMILIES: dict[str, Callable[[int], str]] = {
    "standard-gate mix": standard_mix,
    "qiskit random_circuit": qiskit_random,
}


def _parse(source: str) -> QuantumCircuit:
    """Qiskit's loader, called as the sanitizer calls it (no include path, legacy gates)."""
    return qasm2.loads(
        source, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    )


def contenders(source: str) -> dict[str, Callable[[], object]]:
    """What is timed, by name."""
    policy = SanitizerPolicy()
    parsed = _parse(source)
    scan = SourceScan(source)  # made by the pre-checks in sanitize, not part of its parse
    return {
        "sanitize": lambda: sanitize(source, policy),
        "sanitize + timing": lambda: sanitize(source, policy, timing=TIMING),
        "parse": lambda: _parse(source),
        SANITIZER_PARSE: lambda: load(scan),
        REFERENCE: lambda: transpile(
            _parse(source), basis_gates=NODE_BASIS, optimization_level=2, seed_transpiler=1
        ),
        "parse + transpile (no basis)": lambda: transpile(
            _parse(source), optimization_level=2, seed_transpiler=1
        ),
        TRANSPILE: lambda: transpile(
            parsed, basis_gates=NODE_BASIS, optimization_level=2, seed_transpiler=1
        ),
        "rule passes, run directly": lambda: run_passes(
            circuit_to_dag(parsed, copy_operations=False), cached_passes(policy)
        ),
        "rule passes, in a PassManager": lambda: sanitizer_pass_manager(policy).run(parsed),
    }


def measure(sources: list[str], rounds: int) -> dict[str, list[float]]:
    """Median seconds per contender and source, rounds interleaved."""
    medians: dict[str, list[float]] = {}
    for source in sources:
        assert sanitize(source).report.accepted, "the benchmark circuits must be accepted"
        assert load(SourceScan(source)) == _parse(source), "both parses build the same circuit"
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


def table(medians: dict[str, list[float]]) -> str:
    """Markdown table of medians (over seeds), each as a share of the reference."""
    overall = {name: statistics.median(values) for name, values in medians.items()}
    lines = [f"| contender | median ms | share of {REFERENCE} |", "|---|---:|---:|"]
    for name, seconds in overall.items():
        lines.append(f"| {name} | {seconds * 1e3:.2f} | {seconds / overall[REFERENCE]:.0%} |")
    return "\n".join(lines)


def _shares(medians: dict[str, list[float]], name: str, reference: str) -> list[float]:
    return [s / t for s, t in zip(medians[name], medians[reference], strict=True)]


def verdict(medians: dict[str, list[float]]) -> str:
    """The headline: sanitize as a share of parse + transpile, per seed and overall."""
    shares = _shares(medians, "sanitize", REFERENCE)
    timed = _shares(medians, "sanitize + timing", REFERENCE)
    cheap = _shares(medians, "sanitize", "parse + transpile (no basis)")
    unparsed = _shares(medians, "sanitize", TRANSPILE)
    own = statistics.median(
        s - p for s, p in zip(medians["sanitize"], medians[SANITIZER_PARSE], strict=True)
    )
    return (
        f"sanitize / (parse + transpile, node basis): median {statistics.median(shares):.0%} "
        f"(per seed {', '.join(f'{r:.0%}' for r in shares)}); with timing "
        f"{statistics.median(timed):.0%}; against transpile without a basis "
        f"{statistics.median(cheap):.0%}; against transpile alone (node basis, parse not "
        f"counted) {statistics.median(unparsed):.0%}. Target: at most 25%. Beyond its parse, "
        f"the sanitizer's own work takes {own * 1e3:.2f} ms."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="circuits per family (default 5)")
    parser.add_argument("--rounds", type=int, default=11, help="timed rounds per circuit")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args(argv)
    seeds = list(range(1, args.seeds + 1))
    sections = []
    for family, generate in FAMILIES.items():
        sources = [generate(seed) for seed in seeds]
        gates = [len(_parse(s).data) for s in sources]
        medians = measure(sources, args.rounds)
        section = (
            f"## {family}\n\n{len(sources)} circuits, {min(gates)}-{max(gates)} operations on "
            f"{QUBITS} qubits, {min(map(len, sources))}-{max(map(len, sources))} bytes of "
            f"OpenQASM 2.\n\n{table(medians)}\n\n**{verdict(medians)}**\n"
        )
        print(section)
        sections.append(section)
    if args.write:
        command = (
            "PYTHONPATH=src python benchmarks/sanitizer_vs_transpile.py "
            f"--seeds {args.seeds} --rounds {args.rounds} --write"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# Sanitizer vs. parse + transpile\n\n"
            f"Command: `{command}`\n\n"
            f"{args.rounds} interleaved rounds per circuit; medians per circuit, then the median "
            f"over circuits. Python {platform.python_version()}, qiskit {qiskit.__version__}, "
            f"{os.cpu_count()} cores shared with other work, so absolute times are noisy; the "
            "rounds are interleaved so that the ratios are not.\n\n" + "\n".join(sections),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
