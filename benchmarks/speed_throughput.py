"""Speed row 3: 50 small jobs on the quickstart's nodes against the same circuits in warm Aer.

Each pair runs, interleaved, (a) `qorch run` of the quickstart's nodes and link with 50
GHZ-3 jobs of 1000 shots, timed from the first job's Admitted line to the last job's
Succeeded line, with p50 and p99 of each job's Admitted-to-Succeeded time; and (b) the same
50 circuits, transpiled to the first node's gates, run one after another on a warm
`AerSimulator` with that node's noise model. It does so twice: for 50 jobs of one circuit
(a batch of repeats, whose estimates the planner keeps across jobs) and for 50 distinct
circuits (GHZ-3 turned by a different angle each, so that no estimate is shared). Prints
the ratio per pair and the median; `--write` records them in
benchmarks/results/speed_throughput.md.

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


def qasm(i: int, distinct: bool) -> str:
    """GHZ-3, or for distinct circuits GHZ-3 with its first qubit turned by i millirad."""
    return GHZ3.replace("measure", f"rz({(i + 1) / 1000}) q[0];\nmeasure") if distinct else GHZ3


def job(i: int, distinct: bool = False) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": f"ghz-{i:03d}"},
        "spec": {"shots": SHOTS, "strategy": "single", "circuit": {"qasm": qasm(i, distinct)}},
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
    plain = build_noise_model(node.spec.noise, node.spec.basis_gates, serialised_once=False)
    simulator = AerSimulator(noise_model=plain)
    basis = node.spec.basis_gates
    kinds = {"one circuit": False, "distinct circuits": True}
    circuits = {
        kind: [
            transpile(QuantumCircuit.from_qasm_str(qasm(i, distinct)), basis_gates=basis)
            for i in range(args.jobs)
        ]
        for kind, distinct in kinds.items()
    }
    aer_seconds(simulator, circuits["one circuit"][:2])  # warm
    rows: dict[str, list[tuple[float, float, float, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, distinct in kinds.items():
            folder = Path(tmp) / kind.replace(" ", "-")
            folder.mkdir()
            shutil.copy(QUICKSTART / "nodes.yaml", folder / "nodes.yaml")
            jobs = [job(i, distinct) for i in range(args.jobs)]
            (folder / "jobs.yaml").write_text(yaml.safe_dump_all(jobs))
        for i in range(args.pairs):
            for kind in kinds:
                folder = Path(tmp) / kind.replace(" ", "-")
                ours, each = qorch_seconds(folder, args.jobs)
                theirs = aer_seconds(simulator, circuits[kind])
                row = (ours, theirs, percentile(each, 0.5), percentile(each, 0.99))
                rows[kind].append(row)
                print(
                    f"pair {i + 1}, {kind}: qorch {ours:.2f} s (job p50 {row[2]:.2f} s,"
                    f" p99 {row[3]:.2f} s), aer {theirs:.2f} s: {ours / theirs:.1f}x",
                    flush=True,
                )
    summaries = []
    for kind in kinds:
        ratio = statistics.median(o / t for o, t, _, _ in rows[kind])
        summaries.append(
            f"{args.jobs} GHZ-3 jobs of {SHOTS} shots, {kind}, on the quickstart's nodes, first"
            f" Admitted to last Succeeded: median ratio **{ratio:.1f}x** over {args.pairs}"
            f" interleaved pairs (per job, Admitted to Succeeded: p50"
            f" {statistics.median(r[2] for r in rows[kind]):.2f} s, p99"
            f" {statistics.median(r[3] for r in rows[kind]):.2f} s)"
        )
        print(summaries[-1])
    if args.write:
        lines = ["# Speed: throughput of small jobs against Aer itself", ""]
        for kind, summary in zip(kinds, summaries, strict=True):
            lines += [
                summary + ".",
                "",
                "| pair | qorch (s) | job p50 (s) | job p99 (s) | warm Aer (s) | ratio |",
                "|---|---|---|---|---|---|",
                *(
                    f"| {i + 1} | {o:.2f} | {p50:.2f} | {p99:.2f} | {t:.2f} | {o / t:.1f} |"
                    for i, (o, t, p50, p99) in enumerate(rows[kind])
                ),
                "",
            ]
        lines.append("Reproduce: `PYTHONPATH=src python benchmarks/speed_throughput.py --write`.")
        out = Path(__file__).parent / "results" / "speed_throughput.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
