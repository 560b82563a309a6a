"""Speed row 1: a single-node QFT-20 job of 2000 shots against `AerSimulator.run` itself.

Each pair runs, interleaved, (a) `qorch run` of one noiseless 20-qubit node and the job,
timed from the job's Admitted line to its Succeeded line (verification included), and (b) a
warm `AerSimulator().run(circuit, shots=2000)` in this process. Prints each pair and the
median ratio; `--write` records them in benchmarks/results/speed_single_node.md.

    PYTHONPATH=src python benchmarks/speed_single_node.py [--pairs 5] [--qubits 20] [--write]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from qiskit import QuantumCircuit, qasm2
from qiskit_aer import AerSimulator

LINE = re.compile(r"^\[\s*([0-9.]+)s\] djob/\S+\s+(\w+)")


def qft_source(n: int) -> str:
    """H on every qubit, then the QFT written with cp and swap, all qubits measured."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{j}];" for j in range(n)]
    for j in reversed(range(n)):
        lines.append(f"h q[{j}];")
        lines += [f"cp(pi/{2 ** (j - k)}) q[{j}], q[{k}];" for k in reversed(range(j))]
    lines += [f"swap q[{j}], q[{n - 1 - j}];" for j in range(n // 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def manifests(n: int, shots: int) -> list[dict]:
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "wide"},
        "spec": {"qubits": n, "noise": {}},
    }
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": f"qft{n}"},
        "spec": {"shots": shots, "strategy": "single", "circuit": {"qasm": qft_source(n)}},
    }
    return [node, job]


def qorch_job_seconds(folder: Path) -> float:
    """Admitted to Succeeded, from the run's progress lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    seen = {}
    for line in proc.stdout.splitlines():
        if match := LINE.match(line):
            seen.setdefault(match.group(2), float(match.group(1)))
    if proc.returncode != 0 or "Succeeded" not in seen:
        output = proc.stdout[-2000:] + proc.stderr[-2000:]
        raise RuntimeError(f"qorch run failed ({proc.returncode}):\n{output}")
    return seen["Succeeded"] - seen["Admitted"]


def aer_seconds(simulator: AerSimulator, circuit: QuantumCircuit, shots: int) -> float:
    start = time.perf_counter()
    result = simulator.run(circuit, shots=shots).result()
    assert result.success
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--qubits", type=int, default=20)
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    circuit = qasm2.loads(
        qft_source(args.qubits), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    )
    simulator = AerSimulator()
    aer_seconds(simulator, circuit, args.shots)  # warm
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "job.yaml").write_text(yaml.safe_dump_all(manifests(args.qubits, args.shots)))
        for i in range(args.pairs):
            ours = qorch_job_seconds(folder)
            theirs = aer_seconds(simulator, circuit, args.shots)
            rows.append((ours, theirs))
            print(f"pair {i + 1}: qorch {ours:.2f} s, aer {theirs:.2f} s: {ours / theirs:.1f}x")
    report(
        f"QFT-{args.qubits}, {args.shots} shots, one noiseless node, Admitted to Succeeded"
        " (verified)",
        rows,
        "# Speed: a single-node job against Aer itself",
        "speed_single_node" if args.write else None,
    )


def report(what: str, rows: list[tuple[float, float]], title: str, name: str | None) -> None:
    """Print the median ratio of (qorch, Aer) pairs; with `name`, write results/NAME.md."""
    ratio = statistics.median(o / t for o, t in rows)
    summary = (
        f"{what}: median ratio **{ratio:.1f}x** over {len(rows)} interleaved pairs"
        f" (qorch median {statistics.median(o for o, _ in rows):.2f} s,"
        f" warm Aer median {statistics.median(t for _, t in rows):.2f} s)"
    )
    print(summary)
    if name is None:
        return
    lines = [
        title,
        "",
        summary + ".",
        "",
        "| pair | qorch (s) | warm Aer (s) | ratio |",
        "|---|---|---|---|",
        *(f"| {i + 1} | {o:.2f} | {t:.2f} | {o / t:.1f} |" for i, (o, t) in enumerate(rows)),
        "",
        f"Reproduce: `PYTHONPATH=src python benchmarks/{name}.py --write`.",
    ]
    out = Path(__file__).parent / "results" / f"{name}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
