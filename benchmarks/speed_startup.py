"""Speed row 5: `qorch run examples/quickstart/`, whole process, against a fresh Python that
imports qiskit-aer and runs the same circuit.

Each pair runs, interleaved, (a) `qorch run examples/quickstart/` from process start to
exit (agents started, calibrated, the job verified) and (b) `python -c` importing qiskit and
qiskit-aer and running the quickstart's GHZ-4 circuit with 2000 shots. Prints each pair and
the median ratio; `--write` records them in benchmarks/results/speed_startup.md.

    make setup  # qorch's bytecode, as a pip install writes it
    PYTHONPATH=src python benchmarks/speed_startup.py [--pairs 5] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = """
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
qc = QuantumCircuit(4, 4)
qc.h(0)
for q in range(3):
    qc.cx(q, q + 1)
qc.measure(range(4), range(4))
AerSimulator().run(qc, shots=2000).result().get_counts()
"""


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    ours_command = [sys.executable, "-m", "qorch", "run", "examples/quickstart/"]
    theirs_command = [sys.executable, "-c", BASELINE]
    seconds(theirs_command)  # warm the page cache for both
    seconds(ours_command)
    rows = []
    for i in range(args.pairs):
        ours, theirs = seconds(ours_command), seconds(theirs_command)
        rows.append((ours, theirs))
        print(f"pair {i + 1}: qorch run {ours:.2f} s, python + Aer {theirs:.2f} s")
    ratio = statistics.median(o / t for o, t in rows)
    summary = (
        f"`qorch run examples/quickstart/`, process start to exit, against a fresh Python"
        f" importing qiskit-aer and running the same circuit: median ratio **{ratio:.1f}x** over"
        f" {args.pairs} interleaved pairs"
    )
    print(summary)
    if args.write:
        lines = [
            "# Speed: start-up against a fresh Python with Aer",
            "",
            summary + ".",
            "",
            "| pair | qorch run (s) | python + Aer (s) | ratio |",
            "|---|---|---|---|",
            *(f"| {i + 1} | {o:.2f} | {t:.2f} | {o / t:.1f} |" for i, (o, t) in enumerate(rows)),
            "",
            "Reproduce, after `make setup` (which writes qorch's bytecode, as a pip install"
            " does): `PYTHONPATH=src python benchmarks/speed_startup.py --write`.",
        ]
        out = Path(__file__).parent / "results" / "speed_startup.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
