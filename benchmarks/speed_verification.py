"""Speed row 2: verifying a QFT job's counts against `AerSimulator.run` of the same circuit.

Each pair times, interleaved in this process, (a) `verify_counts` of 2000 sampled counts
against the exact distribution it simulates itself, (b) the same given the exact output the
plan's prediction simulated (`from_ideal`, what the pipeline does after a single-node job up
to the planner's MAX_PREDICTED_QUBITS) and (c) a warm `AerSimulator().run(circuit,
shots=2000)`, for each width in `--qubits`. Prints the ratios per width; `--write` records
them in benchmarks/results/speed_verification.md.

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

from qorch.pipeline.verification import from_ideal, verify_counts
from qorch.planner.prediction import ideal_output

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
        ideal = ideal_output(circuit)  # the planner's, simulated before the job runs
        pairs, given_ratios = [], []
        for _ in range(args.pairs):
            start = time.perf_counter()
            verification = verify_counts(circuit, counts, None)
            ours = time.perf_counter() - start
            planned = 0.0
            if ideal is not None:
                start = time.perf_counter()
                exact = from_ideal(circuit, ideal.bits, ideal.probabilities)
                again = verify_counts(circuit, counts, None, exact).hellinger_fidelity
                assert abs((again or 0) - (verification.hellinger_fidelity or 0)) < 1e-5
                planned = time.perf_counter() - start
            start = time.perf_counter()
            simulator.run(circuit, shots=SHOTS).result()
            aer_seconds = time.perf_counter() - start
            pairs.append((ours, aer_seconds))
            if ideal is not None:
                given_ratios.append(planned / aer_seconds)
        ratio = statistics.median(o / t for o, t in pairs)
        verify = statistics.median(o for o, _ in pairs)
        aer = statistics.median(t for _, t in pairs)
        given = statistics.median(given_ratios) if given_ratios else None
        rows.append((n, verify, aer, ratio, given, verification.method))
        shown = "-" if given is None else f"{given:.3f}x"
        print(
            f"QFT-{n}: verify {verify:.3f} s, aer {aer:.3f} s: {ratio:.2f}x;"
            f" given the plan's {shown}"
        )
    if args.write:
        lines = [
            "# Speed: verification against Aer itself",
            "",
            f"`verify_counts` of {SHOTS} counts against a warm `AerSimulator.run` of the same",
            f"QFT circuit, {SHOTS} shots; medians of {args.pairs} interleaved pairs per width.",
            "Alone, verification simulates the exact distribution itself. Given the plan's, it",
            "reads the exact output the planner's prediction simulated before the job ran",
            "(one exact simulation per job, not two); the planner predicts up to 24 qubits.",
            "",
            "| qubits | verification alone (s) | warm Aer run (s) | alone / Aer"
            " | given the plan's / Aer | method |",
            "|---|---|---|---|---|---|",
            *(
                f"| {n} | {v:.3f} | {a:.3f} | {r:.2f} | {'-' if g is None else f'{g:.3f}'} | {m} |"
                for n, v, a, r, g, m in rows
            ),
            "",
            "Reproduce: `PYTHONPATH=src python benchmarks/speed_verification.py --write`.",
        ]
        out = Path(__file__).parent / "results" / "speed_verification.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
