"""Speed: a job on one noisy node, with more shots than 2^n, against `AerSimulator.run`.

Under gate noise Aer evolves one density matrix and samples every shot from it once the
shots outnumber 2^n; in fewer shots per run it simulates each shot on its own. Each pair
runs, interleaved, (a) `qorch run` of one noisy node and a QFT job on it, timed from the
job's Admitted line to its Succeeded line (prediction and verification included), and (b)
the same circuit, compiled to the node's gates, on a warm `AerSimulator` with the node's
noise model. Prints each pair and the median ratio; `--write` records them in
benchmarks/results/speed_noisy_node.md.

    PYTHONPATH=src python benchmarks/speed_noisy_node.py [--pairs 3] [--qubits 10] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from qiskit import qasm2
from qiskit_aer import AerSimulator
from speed_single_node import aer_seconds, manifests, qft_source, qorch_job_seconds, report

from qorch.api import QuantumNode
from qorch.qpu.executor import NodeExecutor
from qorch.qpu.noise import build_noise_model

NOISE = {"singleQubitError": 0.001, "twoQubitError": 0.01, "readoutError": 0.02}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--qubits", type=int, default=10)
    parser.add_argument("--shots", type=int, default=20000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    node, job = manifests(args.qubits, args.shots)
    node["spec"]["noise"] = NOISE
    executor = NodeExecutor(QuantumNode.model_validate(node).spec)
    circuit = qasm2.loads(
        qft_source(args.qubits), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    )
    compiled = executor.compile(circuit, seed=1)
    spec = executor.spec
    simulator = AerSimulator(
        noise_model=build_noise_model(spec.noise, spec.basis_gates, serialised_once=False)
    )
    aer_seconds(simulator, compiled, args.shots)  # warm
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "job.yaml").write_text(yaml.safe_dump_all([node, job]))
        for i in range(args.pairs):
            ours = qorch_job_seconds(folder)
            theirs = aer_seconds(simulator, compiled, args.shots)
            rows.append((ours, theirs))
            print(f"pair {i + 1}: qorch {ours:.2f} s, aer {theirs:.2f} s: {ours / theirs:.1f}x")
    noise = ", ".join(f"{k} {v}" for k, v in NOISE.items())
    report(
        f"QFT-{args.qubits}, {args.shots} shots, one node with gate and readout noise"
        f" ({noise}), Admitted to Succeeded (predicted and verified)",
        rows,
        "# Speed: a job on a noisy node against Aer itself",
        "speed_noisy_node" if args.write else None,
    )


if __name__ == "__main__":
    main()
