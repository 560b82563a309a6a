"""Output distributions of cut circuits: fidelity against the exact distribution, and width.

Two measurements:

- fidelity: circuits (MQT Bench at the target-independent level, and hand-written ones) of
  8 qubits cut over two 4-qubit nodes by qorch's partitioner; every subexperiment runs on a
  noiseless Aer with SHOTS shots; the knitted quasi-distribution's nearest probability
  distribution is compared with the exact distribution (Hellinger fidelity), beside the
  uncut circuit sampled with SHOTS shots (monolithic) and with the shots the cut is worth,
  T x SHOTS / overhead. Seeded: the table is reproducible.
- width: a distribution-returning cut job through `qorch run` (embedded control plane, two
  noiseless nodes of n/2 qubits, 1000 shots per subexperiment) on an n-qubit circuit whose
  outcomes spread over all 2^n bitstrings (RY layers, a CX chain in each half, one CX across);
  the full distribution up to the 24-bit limit, marginals and the top 10 outcomes beyond.
  Wall time of the whole `qorch run` process, with a 600 s limit.

Run::

    PYTHONPATH=src python benchmarks/cut_distributions.py --write
    PYTHONPATH=src python benchmarks/cut_distributions.py --widths 12 16 20 24 28 --write
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import qiskit
import yaml
from qiskit import QuantumCircuit, qasm2, transpile
from qiskit_aer import AerSimulator

from qorch.api import NoiseSpec
from qorch.api.quantum_node import DEFAULT_BASIS_GATES
from qorch.pipeline.cut_distribution import normalised
from qorch.pipeline.verification import exact_outcome_probabilities
from qorch.planner.cut_distribution import (
    OutputRequest,
    knit,
    nearest_probabilities,
    plan_cut_distribution,
    reduce_results,
)
from qorch.planner.cutting import CutInfeasible
from qorch.planner.model import NodeSlot
from qorch.planner.partition import partition

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "cut_distributions.md"
SHOTS = 4000
WIDTH = 8
MAX_OVERHEAD = 1000
MQT = ["bv", "ghz", "graphstate", "qnn", "vqe_real_amp", "vqe_su2", "wstate", "qaoa"]


def qaoa_ring(width: int, gamma: float = 0.4, beta: float = 0.7) -> QuantumCircuit:
    qc = QuantumCircuit(width, width)
    qc.h(range(width))
    for q in range(width):
        qc.rzz(2 * gamma, q, (q + 1) % width)
    qc.rx(2 * beta, range(width))
    qc.measure(range(width), range(width))
    return qc


def spread(width: int, crossing: int = 1, seed: int = 7) -> QuantumCircuit:
    """RY layers and a CX chain in each half, `crossing` CX across: wide support."""
    rng = np.random.default_rng(seed)
    half = width // 2
    qc = QuantumCircuit(width, width)
    for layer in range(crossing + 1):
        for q in range(width):
            qc.ry(rng.uniform(0.3, math.pi - 0.3), q)
        for lo, hi in ((0, half), (half, width)):
            for q in range(lo, hi - 1):
                qc.cx(q, q + 1)
        if layer < crossing:
            qc.cx(int(rng.integers(0, half)), int(rng.integers(half, width)))
    for q in range(width):
        qc.ry(rng.uniform(0.3, math.pi - 0.3), q)
    qc.measure(range(width), range(width))
    return qc


def circuits() -> dict[str, QuantumCircuit]:
    from mqt.bench import BenchmarkLevel, get_benchmark

    out: dict[str, QuantumCircuit] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in MQT:
            qc = get_benchmark(name, BenchmarkLevel.INDEP, WIDTH)
            if not any(i.operation.name == "measure" for i in qc.data):
                qc.measure_all()  # MQT's QAOA comes without measurements
            out[f"mqt:{name}"] = qc
    out["qaoa-ring"] = qaoa_ring(WIDTH)
    out["spread-1x"] = spread(WIDTH, crossing=1)
    out["spread-2x"] = spread(WIDTH, crossing=2, seed=11)
    return out


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(p / p.sum() * q / q.sum()).sum() ** 2)


def sampled(circuit: QuantumCircuit, shots: int, seed: int) -> np.ndarray:
    """Empirical distribution of `shots` noiseless shots, over the measured qubits' index."""
    simulator = AerSimulator(seed_simulator=seed)
    counts = simulator.run(transpile(circuit, simulator), shots=shots).result().get_counts()
    measured = sorted(
        {circuit.find_bit(i.qubits[0]).index for i in circuit.data if i.operation.name == "measure"}
    )
    clbit_of = {
        circuit.find_bit(i.qubits[0]).index: circuit.find_bit(i.clbits[0]).index
        for i in circuit.data
        if i.operation.name == "measure"
    }
    out = np.zeros(1 << len(measured))
    for key, n in counts.items():
        flat = key.replace(" ", "")
        index = sum(
            1 << j for j, q in enumerate(measured) if flat[len(flat) - 1 - clbit_of[q]] == "1"
        )
        out[index] += n
    return out / shots


def run_subexperiments(plan, seed: int) -> dict[str, list[dict[str, int]]]:
    simulator = AerSimulator()
    out = {}
    for n, (node, subs) in enumerate(sorted(plan.knitting.subexperiments.items())):
        out[node] = [
            simulator.run(c, shots=SHOTS, seed_simulator=seed + (n * 10_000 + k + 1) * 1_000_003)
            .result()
            .get_counts()
            for k, c in enumerate(subs)
        ]
    return out


def fidelity_rows() -> list[list[str]]:
    nodes = [NodeSlot(n, WIDTH // 2, NoiseSpec(), tuple(DEFAULT_BASIS_GATES)) for n in "ab"]
    rows = []
    for name, circuit in circuits().items():
        placed = partition(circuit, nodes, [], require_links=False, min_nodes=2)
        assert placed is not None, name
        started = time.perf_counter()
        try:
            plan = plan_cut_distribution(circuit, placed, MAX_OVERHEAD, OutputRequest())
        except CutInfeasible as exc:
            rows.append([name, str(circuit.num_clbits), f"not cut: {exc}", *["-"] * 7])
            print(" | ".join(rows[-1]), flush=True)
            continue
        results = run_subexperiments(plan, seed=17)
        knitted = time.perf_counter()
        terms = reduce_results(plan, results)
        quasi = knit(terms, [c for c, _ in plan.knitting.coefficients], plan.qubits)
        probabilities = np.zeros(1 << len(plan.qubits))
        probabilities[quasi.outcomes] = nearest_probabilities(normalised(quasi.values))
        knit_seconds = time.perf_counter() - knitted
        total = time.perf_counter() - started
        exact = exact_outcome_probabilities(circuit, plan.qubits, np.arange(len(probabilities)))
        assert exact is not None
        truth = exact[0]
        worth = max(
            1, math.floor(len(plan.knitting.coefficients) * SHOTS / plan.knitting.sampling_overhead)
        )
        rows.append(
            [
                name,
                str(len(plan.qubits)),
                str(plan.knitting.num_cuts),
                f"{plan.knitting.sampling_overhead:.4g}",
                str(plan.knitting.num_subexperiments),
                f"{hellinger(probabilities, truth):.4f}",
                f"{hellinger(sampled(circuit, SHOTS, 5), truth):.4f}",
                f"{hellinger(sampled(circuit, worth, 5), truth):.4f} ({worth})",
                f"{float(quasi.standard_errors.max()):.4f}",
                f"{total:.1f} ({knit_seconds:.2f})",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    return rows


def _job_manifests(width: int) -> tuple[str, str]:
    half = width // 2
    nodes = [
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": f"qpu-{side}"},
            "spec": {"qubits": half},
        }
        for side in ("east", "west")
    ]
    spec: dict[str, object] = {
        "circuit": {"qasm": qasm2.dumps(spread(width))},
        "strategy": "cut",
        "shots": 1000,
        "timeoutSeconds": 600,
    }
    if width > 24:
        spec["output"] = {"marginals": [list(range(8))], "topK": 10}
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": f"spread-{width}"},
        "spec": spec,
    }
    return yaml.safe_dump_all(nodes), yaml.safe_dump(job)


def width_row(width: int) -> list[str]:
    nodes, job = _job_manifests(width)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "nodes.yaml").write_text(nodes)
        Path(folder, "job.yaml").write_text(job)
        started = time.perf_counter()
        # A session of its own: on timeout the agents it started go with it.
        proc = subprocess.Popen(
            [sys.executable, "-m", "qorch", "run", folder, "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            stdout, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return [str(width), "-", "-", "-", "timed out (600 s)", "-", "-"]
        seconds = time.perf_counter() - started
    status = json.loads(stdout)[0]["status"] if stdout else {}
    result = status.get("result") or {}
    shown = result.get("distribution") or result.get("topOutcomes") or {}
    verification = result.get("verification") or {}
    method = verification.get("method", "-")
    check = method.split(";")[0]
    threshold = verification.get("threshold", 0.0)
    if verification.get("hellingerFidelity") is not None:
        check = f"Hellinger {verification['hellingerFidelity']:.4f} >= {threshold:.4f}"
    elif verification.get("absoluteError") is not None:
        check = f"max error {verification['absoluteError']:.4f} <= {threshold:.4f}"
    what = "full" if "distribution" in result else "marginal (8 bits) + top 10"
    timings = status.get("timings", {})
    return [
        str(width),
        what,
        status.get("phase", f"exit {proc.returncode}"),
        str(shown.get("outcomes", "-")),
        f"{seconds:.1f}",
        f"{timings.get('planSeconds', 0):.1f} / {timings.get('executeSeconds', 0):.1f}",
        check + ("; weak: threshold 0" if "weak check" in method else ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="*", default=[])
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = [
        "# Cut distributions: knitted output distributions against exact ones",
        "",
        f"`benchmarks/cut_distributions.py` on {platform.machine()}, Python"
        f" {platform.python_version()}, Qiskit {qiskit.__version__}.",
        "",
    ]
    if not args.skip_fidelity:
        rows = fidelity_rows()
        lines += [
            f"## Fidelity: {WIDTH} qubits over two {WIDTH // 2}-qubit nodes, {SHOTS} shots per"
            " subexperiment, noiseless",
            "",
            "Hellinger fidelity to the exact distribution of: the nearest probability"
            " distribution of the knitted quasi-distribution (cut); the uncut circuit sampled"
            f" with {SHOTS} shots (monolithic); the uncut circuit sampled with the shots the cut"
            " is worth, T x shots / overhead (in brackets). Largest standard error of a"
            " quasi-probability; seconds for planning, simulating every subexperiment on one"
            " core and knitting (knitting alone in brackets).",
            "",
            "| circuit | bits | cuts | overhead | subexperiments | cut | monolithic |"
            " monolithic at the cut's worth | max s.e. | seconds (knit) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *("| " + " | ".join(r) + " |" for r in rows),
            "",
        ]
    if args.widths:
        rows = []
        for width in args.widths:
            rows.append(width_row(width))
            print(" | ".join(rows[-1]), flush=True)
            if rows[-1][2] != "Succeeded":
                break
        lines += [
            "## Width: a distribution-returning cut job through `qorch run`",
            "",
            "Two noiseless nodes of n/2 qubits, one CX across, 1000 shots per subexperiment;"
            " wall time of the whole `qorch run` process (start-up, planning, agents, knitting,"
            " verification).",
            "",
            "| width | output | phase | outcomes | seconds | plan / execute s | verification |",
            "|---|---|---|---|---|---|---|",
            *("| " + " | ".join(r) + " |" for r in rows),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
