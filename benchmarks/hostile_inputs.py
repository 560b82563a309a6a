"""Hostile circuits against ``qorch sanitize``: the worst CPU time and memory per input, per
class of attack.

Each class is a generated corpus: the same attack at several sizes and in both OpenQASM
versions where it applies. Every input runs in a fresh ``qorch sanitize FILE`` process, whose
CPU time and peak memory come from the kernel (``os.wait4``), so a parser that allocates
in Rust or recurses in C is measured as much as Python. A benign Bell circuit runs the same
way as the baseline: the process start (interpreter, Qiskit imports) is in every figure.

The bound we hold: every hostile input refused in under 1 s of CPU and 300 MB beyond the
baseline, exit code 1 (refused) and never a crash. Run::

    PYTHONPATH=src python benchmarks/hostile_inputs.py --write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
BELL = QASM2 + "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n"
BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]


def doubling_chain(levels: int, sep: str = "\n") -> str:
    gates = "gate g0 a, b { cx a, b; }" + sep
    gates += "".join(
        f"gate g{i} a, b {{ g{i - 1} a, b; g{i - 1} b, a; }}{sep}" for i in range(1, levels + 1)
    )
    return gates + f"g{levels} q[0], q[1];{sep}"


def line_break_bypass() -> Iterator[str]:
    hidden3 = ["qubit[1000000000] z;", "ctrl(39) @ x q[0], q[1];", "pow(0.5) @ x q[0];"]
    for brk in BREAKS:
        for opener in ("// x", '// "', "// /*"):
            for statement in hidden3:
                yield QASM3 + opener + brk + statement + "\n"
            yield QASM2 + opener + brk + "qreg z[1000000000];\n"
            yield QASM2 + opener + brk + doubling_chain(30, brk)


def unary_chains() -> Iterator[str]:
    for n in (1_000, 10_000, 30_000, 60_000):
        for op in ("-", "- ", "~", "!", "+"):
            yield QASM3 + "rz(" + op * n + "1) q[0];\n"
        yield QASM2 + "rz(" + "-" * n + "1) q[0];\n"


def binary_chains() -> Iterator[str]:
    for n in (200, 2_000, 20_000):
        for op in ("+", "*", "**", "-"):
            term = op.join(["1"] * n)
            yield QASM3 + f"rz({term}) q[0];\n"
            yield QASM2 + f"rz({term}) q[0];\n"
        yield QASM3 + "x q[" + "0+" * n + "0];\n"


def dense_arithmetic() -> Iterator[str]:
    """Statements just under the per-statement operator limit, filling the source limits."""
    statement = "rz(" + "+".join(["1"] * 64) + ") q[0];\n"
    for size in (16_000, 32_000, 64_000):
        yield QASM3 + statement * (size // len(statement))
    for size in (100_000, 900_000):
        yield QASM2 + statement * (size // len(statement))


def nesting() -> Iterator[str]:
    for n in (1_000, 100_000):
        yield QASM3 + "rz(" + "(" * n + "1" + ")" * n + ") q[0];\n"
        yield QASM2 + "U(" + "(" * n + "1" + ")" * n + ", 0, 0) q[0];\n"
        yield QASM3 + "if (c[0]) { " * (n // 2) + "x q[0];" + " }" * (n // 2)
        yield QASM3 + "rz(" + "-(" * (n // 2) + "1" + ")" * (n // 2) + ") q[0];\n"


def modifiers() -> Iterator[str]:
    for n in (3, 20, 100):
        qubits = ", ".join(f"q[{i % 2}]" for i in range(n + 1))
        yield QASM3 + "ctrl @ " * n + f"x {qubits};\n"
        yield QASM3 + f"ctrl({n}) @ x {qubits};\n"
        yield QASM3 + "negctrl @ inv @ " * n + f"x {qubits};\n"
    yield QASM3 + "pow(1000000) @ x q[0];\n"


def sizes_and_literals() -> Iterator[str]:
    yield QASM2 + "qreg z[1000000000];\n"
    yield QASM3 + "qubit[1000000000] z;\n"
    yield QASM3 + "h $1000000000;\n"
    yield QASM2 + "h q[" + "9" * 100_000 + "];\n"
    yield QASM2 + "U(1" + "0" * 400 + ", 0, 0) q[0];\n"
    yield QASM3 + "const int n = 1000;\nqubit[n] z;\n"
    yield QASM2 + "x " + "a" * 500_000 + ";\n"


def expansion() -> Iterator[str]:
    for levels in (20, 40, 64):
        yield QASM2 + doubling_chain(levels)
    yield QASM2.replace("q[2]", "q[128]") + "h q;\n" * 20_000
    yield QASM3 + "for int i in [0:1000000000] { h q[0]; }\n"
    yield QASM3 + "for int i in [0:1000] { for int j in [0:1000] { cx q[0], q[1]; } }\n"


def floods() -> Iterator[str]:
    yield QASM2 + "// x\n" * 200_000
    yield QASM3 + "/*" + " x" * 30_000 + "*/\n"
    yield QASM2 + "/* never closed\n" + "h q[0];\n" * 1_000
    yield 'OPENQASM 2.0;\ninclude "qelib1.inc;\nqreg q[1];\n'
    yield QASM2 + "h q[0];\x00\n"
    yield QASM2 + "\ud800"


CLASSES = {
    "line breaks hiding statements": line_break_bypass,
    "unary operator chains": unary_chains,
    "binary operator chains": binary_chains,
    "dense arithmetic up to the size limits": dense_arithmetic,
    "nesting": nesting,
    "ctrl/negctrl/pow modifiers": modifiers,
    "huge registers and literals": sizes_and_literals,
    "expansion (definitions, broadcast, loops)": expansion,
    "comment, string and character floods": floods,
}


@dataclass
class Measured:
    cpu_seconds: float
    peak_mb: float
    wall_seconds: float
    #: "refused QSnnn", "accepted", or "crashed (exit n)" when no report came out.
    outcome: str


def measure(source: str, workdir: Path) -> Measured:
    path = workdir / "circuit.qasm"
    path.write_bytes(source.encode("utf-8", "surrogatepass"))
    start = time.perf_counter()
    out = workdir / "report.json"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qorch", "sanitize", str(path), "-o", "json"],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    try:
        report = json.loads(out.read_text())
        denied = [v["rule"] for v in report["violations"] if v["severity"] == "deny"]
        outcome = f"refused {denied[0]}" if code == 1 and denied else "accepted"
        if code not in (0, 1):
            raise ValueError(code)
    except (ValueError, KeyError, TypeError):
        outcome = f"crashed (exit {code})"
    return Measured(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, wall, outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write benchmarks/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base = [measure(BELL, workdir) for _ in range(3)]
        baseline = min(base, key=lambda m: m.cpu_seconds)
        print(f"baseline (benign Bell): {baseline.cpu_seconds:.2f} s CPU, "
              f"{baseline.peak_mb:.0f} MB", flush=True)  # fmt: skip
        rows = []
        for name, corpus in CLASSES.items():
            runs = []
            for source in corpus():
                runs.append(measure(source, workdir))
            worst_cpu = max(r.cpu_seconds for r in runs)
            worst_mb = max(r.peak_mb for r in runs)
            worst_wall = max(r.wall_seconds for r in runs)
            codes = sorted({r.outcome.split(" (")[0] for r in runs})
            rows.append((name, len(runs), worst_cpu, worst_mb, worst_wall, codes))
            print(
                f"{name}: {len(runs)} inputs, worst {worst_cpu - baseline.cpu_seconds:+.2f} s "
                f"CPU and {worst_mb - baseline.peak_mb:+.0f} MB over the baseline; {codes}",
                flush=True,
            )
    lines = [
        "# Hostile circuits against `qorch sanitize`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Each input runs in a fresh `qorch sanitize` process; CPU (user + system) and peak "
        "resident memory are the kernel's figures for that process. The baseline is the same "
        f"command on a benign Bell circuit: {baseline.cpu_seconds:.2f} s CPU, "
        f"{baseline.peak_mb:.0f} MB (interpreter and Qiskit imports).",
        "",
        "| class | inputs | worst CPU over baseline (s) | worst peak over baseline (MB) "
        "| worst wall (s) | outcomes |",
        "|---|---|---|---|---|---|",
    ]
    for name, count, cpu, mb, wall, codes in rows:
        lines.append(
            f"| {name} | {count} | {cpu - baseline.cpu_seconds:+.2f} "
            f"| {mb - baseline.peak_mb:+.0f} | {wall:.2f} | {', '.join(map(str, codes))} |"
        )
    lines += [
        "",
        "An outcome is the first denying rule of the JSON report (exit code 1); a run that "
        "printed no report would show as crashed. Reproduce: "
        "`PYTHONPATH=src python benchmarks/hostile_inputs.py --write`.",
    ]
    if args.write:
        out = Path(__file__).parent / "results" / "hostile_inputs.md"
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
