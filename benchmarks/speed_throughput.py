"""Speed row 3: 50 small jobs on the quickstart's nodes against the same circuits in warm Aer.

Each pair runs, interleaved, (a) `qorch run` of the quickstart's nodes and link with 50
GHZ-3 jobs of 1000 shots, timed from the first job's Admitted line to the last job's
Succeeded line, with p50 and p99 of each job's Admitted-to-Succeeded time; and (b) the same
50 circuits, transpiled to the first node's gates, run one after another on a warm
`AerSimulator` with that node's noise model. Prints the ratio per pair and the median;
`--write` records them in benchmarks/results/speed_throughput.md.

    PYTHONPATH=src python benchmarks/speed_throughput.py [--pairs 3] [--jobs 50] [--write]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

from qorch.api import QuantumNode
from qorch.api.yamlload import load_file_all
from qorch.qpu.noise import build_noise_model

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
LINE = re.compile(r"^\[\s*([0-9.]+)s\] djob/(\S+)\s+(\w+)")
SHOTS = 1000
GHZ3 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg c[3];
h q[0];
cx q[0], q[1];
cx q[1], q[2];
measure q -> c;
"""


def job(i: int) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": f"ghz-{i:03d}"},
        "spec": {"shots": SHOTS, "strategy": "single", "circuit": {"qasm": GHZ3}},
    }


def qorch_seconds(folder: Path, jobs: int) -> tuple[float, list[float]]:
    """First Admitted to last Succeeded, and each job's Admitted-to-Succeeded time."""
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", str(folder)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    admitted: dict[str, float] = {}
    succeeded: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if match := LINE.match(line):
            at, name, phase = float(match.group(1)), match.group(2), match.group(3)
            if phase == "Admitted":
                admitted.setdefault(name, at)
            elif phase == "Succeeded":
                succeeded[name] = at
    if proc.returncode != 0 or len(succeeded) != jobs:
        output = proc.stdout[-2000:] + proc.stderr[-2000:]
        raise RuntimeError(f"qorch run failed ({proc.returncode}):\n{output}")
    each = [succeeded[n] - admitted[n] for n in succeeded]
    return max(succeeded.values()) - min(admitted.values()), each


def aer_seconds(simulator: AerSimulator, circuits: list[QuantumCircuit]) -> float:
    start = time.perf_counter()
    for circuit in circuits:
        assert simulator.run(circuit, shots=SHOTS).result().success
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    docs = load_file_all(QUICKSTART / "nodes.yaml")
    node = QuantumNode.model_validate(next(d for d in docs if d["kind"] == "QuantumNode"))
    simulator = AerSimulator(noise_model=build_noise_model(node.spec.noise, node.spec.basis_gates))
    circuit = transpile(
        QuantumCircuit.from_qasm_str(GHZ3), basis_gates=node.spec.basis_gates, seed_transpiler=1
    )
    circuits = [circuit] * args.jobs
    aer_seconds(simulator, circuits[:2])  # warm
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(QUICKSTART / "nodes.yaml", folder / "nodes.yaml")
        (folder / "jobs.yaml").write_text(yaml.safe_dump_all([job(i) for i in range(args.jobs)]))
        for i in range(args.pairs):
            ours, each = qorch_seconds(folder, args.jobs)
            theirs = aer_seconds(simulator, circuits)
            rows.append((ours, theirs, percentile(each, 0.5), percentile(each, 0.99)))
            print(
                f"pair {i + 1}: qorch {ours:.2f} s (job p50 {rows[-1][2]:.2f} s,"
                f" p99 {rows[-1][3]:.2f} s), aer {theirs:.2f} s: {ours / theirs:.1f}x"
            )
    ratio = statistics.median(o / t for o, t, _, _ in rows)
    summary = (
        f"{args.jobs} GHZ-3 jobs of {SHOTS} shots on the quickstart's nodes, first Admitted to"
        f" last Succeeded: median ratio **{ratio:.1f}x** over {args.pairs} interleaved pairs"
        f" (per job, Admitted to Succeeded: p50 {statistics.median(r[2] for r in rows):.2f} s,"
        f" p99 {statistics.median(r[3] for r in rows):.2f} s)"
    )
    print(summary)
    if args.write:
        lines = [
            "# Speed: throughput of small jobs against Aer itself",
            "",
            summary + ".",
            "",
            "| pair | qorch (s) | job p50 (s) | job p99 (s) | warm Aer (s) | ratio |",
            "|---|---|---|---|---|---|",
            *(
                f"| {i + 1} | {o:.2f} | {p50:.2f} | {p99:.2f} | {t:.2f} | {o / t:.1f} |"
                for i, (o, t, p50, p99) in enumerate(rows)
            ),
            "",
            "Reproduce: `PYTHONPATH=src python benchmarks/speed_throughput.py --write`.",
        ]
        out = Path(__file__).parent / "results" / "speed_throughput.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
