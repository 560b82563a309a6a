"""Speed row 5: a cut job of a 2N-qubit circuit on two N-qubit nodes, through `qorch run`.

The circuit is planner_cut_scaling's two-layer RY/RZ + CNOT-chain ansatz (two CNOTs cross
the middle: two cuts, overhead 81); observables Z...Z and X...X; two noiseless N-qubit
nodes. Timed from the job's Admitted line to its Succeeded line. What a user would do
instead, one 2N-qubit `AerSimulator.run` per observable basis, is timed beside it where it
fits in memory (2N <= 28 here; 32 qubits need 64 GiB and Aer refuses them).

    PYTHONPATH=src python benchmarks/speed_cut_scale.py [--halves 12 16 20] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from qiskit import qasm2

sys.path.insert(0, str(Path(__file__).parent))
from planner_cut_scaling import SHOTS, ansatz, monolithic
from speed_single_node import LINE

MONOLITHIC_MAX = 28


def manifests(half: int) -> list[dict]:
    width = 2 * half
    nodes = [
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {"qubits": half, "noise": {}},
        }
        for name in ("left", "right")
    ]
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": f"cut{width}"},
        "spec": {
            "shots": SHOTS,
            "strategy": "cut",
            "observables": ["Z" * width, "X" * width],
            "circuit": {"qasm": qasm2.dumps(ansatz(width))},
        },
    }
    return [*nodes, job]


def qorch_cut(folder: Path) -> tuple[float, str]:
    """Admitted to Succeeded, and the job's result lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "qorch", "run", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, float] = {}
    out = []
    assert proc.stdout is not None
    for line in proc.stdout:  # progress as it comes: a long job shows it is alive
        out.append(line)
        print("   ", line.rstrip(), flush=True)
        if match := LINE.match(line):
            seen.setdefault(match.group(2), float(match.group(1)))
    if proc.wait(timeout=3600) != 0 or "Succeeded" not in seen:
        raise RuntimeError("qorch run failed:\n" + "".join(out[-40:]))
    return seen["Succeeded"] - seen["Admitted"], "".join(out)


def monolithic_seconds(half: int) -> float | None:
    return monolithic(half)["seconds"] if 2 * half <= MONOLITHIC_MAX else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halves", type=int, nargs="+", default=[12, 16, 20])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for half in args.halves:
            folder = Path(tmp) / f"n{half}"
            folder.mkdir()
            (folder / "job.yaml").write_text(yaml.safe_dump_all(manifests(half)))
            print(f"N = {half}: qorch run of the cut job ...", flush=True)
            ours, _ = qorch_cut(folder)
            theirs = monolithic_seconds(half)
            rows.append((half, ours, theirs))
            shown = "refused (memory)" if theirs is None else f"{theirs:.1f} s"
            print(f"N = {half}: qorch cut {ours:.1f} s, one {2 * half}-qubit Aer run {shown}")
    if args.write:
        lines = [
            "# Speed: cut jobs of 2N qubits on two N-qubit nodes",
            "",
            f"`qorch run` of a cut job ({SHOTS} shots per subexperiment, observables Z..Z and"
            " X..X, two noiseless N-qubit nodes), Admitted to Succeeded; beside it one"
            " 2N-qubit `AerSimulator.run` per basis where the statevector fits.",
            "",
            "| N | 2N qubits | qorch cut job (s) | 2N-qubit Aer runs (s) |",
            "|---|---|---|---|",
            *(
                f"| {h} | {2 * h} | {o:.1f} | {'refused: memory' if t is None else f'{t:.1f}'} |"
                for h, o, t in rows
            ),
            "",
            "Reproduce: `PYTHONPATH=src python benchmarks/speed_cut_scale.py --write`.",
        ]
        out = Path(__file__).parent / "results" / "speed_cut_scale.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
