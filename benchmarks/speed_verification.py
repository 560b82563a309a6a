"""Speed row 2: verifying a QFT job's counts against `AerSimulator.run` of the same circuit.

Each pair times, interleaved in this process, (a) `verify_counts` of 2000 sampled counts
against the exact distribution (what the pipeline does after a single-node job) and (b) a
warm `AerSimulator().run(circuit, shots=2000)`, for each width in `--qubits`. Prints the
ratio per width; `--write` records them in benchmarks/results/speed_verification.md.

    PYTHONPATH=src python benchmarks/speed_verification.py [--qubits 12 16 20 24 26] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from qiskit import qasm2
from qiskit_aer import AerSimulator
from speed_single_node import qft_source  # a sibling: the script's folder is on sys.path

from qorch.pipeline.verification import verify_counts

SHOTS = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[12, 16, 20, 24, 26])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    simulator = AerSimulator()
    rows = []
    for n in args.qubits:
        circuit = qasm2.loads(qft_source(n), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        counts = simulator.run(circuit, shots=SHOTS, seed_simulator=1).result().get_counts()
        pairs = []
        for _ in range(args.pairs):
            start = time.perf_counter()
            verification = verify_counts(circuit, counts, None)
            ours = time.perf_counter() - start
            start = time.perf_counter()
            simulator.run(circuit, shots=SHOTS).result()
            pairs.append((ours, time.perf_counter() - start))
        ratio = statistics.median(o / t for o, t in pairs)
        verify = statistics.median(o for o, _ in pairs)
        aer = statistics.median(t for _, t in pairs)
        rows.append((n, verify, aer, ratio, verification.method))
        method = verification.method
        print(f"QFT-{n}: verify {verify:.3f} s, aer {aer:.3f} s: {ratio:.2f}x ({method})")
    if args.write:
        lines = [
            "# Speed: verification against Aer itself",
            "",
            f"`verify_counts` of {SHOTS} counts against a warm `AerSimulator.run` of the same",
            f"QFT circuit, {SHOTS} shots; medians of {args.pairs} interleaved pairs per width.",
            "",
            "| qubits | verification (s) | warm Aer run (s) | ratio | method |",
            "|---|---|---|---|---|",
            *(f"| {n} | {v:.3f} | {a:.3f} | {r:.2f} | {m} |" for n, v, a, r, m in rows),
            "",
            "Reproduce: `PYTHONPATH=src python benchmarks/speed_verification.py --write`.",
        ]
        out = Path(__file__).parent / "results" / "speed_verification.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
