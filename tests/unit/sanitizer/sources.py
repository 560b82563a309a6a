"""OpenQASM snippets the sanitizer tests share."""

from __future__ import annotations

from qorch.sanitizer import SanitizerResult

QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'

BELL2 = QASM2 + "qreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n"
BELL3 = QASM3 + "qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"


def qasm2(body: str, qubits: int = 2, clbits: int = 2) -> str:
    """An OpenQASM 2 program with registers q and c around ``body``."""
    return QASM2 + f"qreg q[{qubits}];\ncreg c[{clbits}];\n" + body


def qasm3(body: str, qubits: int = 2, clbits: int = 2) -> str:
    """An OpenQASM 3 program with registers q and c around ``body``."""
    return QASM3 + f"qubit[{qubits}] q;\nbit[{clbits}] c;\n" + body


def doubling_chain(levels: int) -> str:
    """Gates that each call the previous twice: 2**levels operations once expanded."""
    gates = "gate g0 a, b { cx a, b; }\n" + "".join(
        f"gate g{i} a, b {{ g{i - 1} a, b; g{i - 1} b, a; }}\n" for i in range(1, levels + 1)
    )
    return QASM2 + "qreg q[2];\n" + gates + f"g{levels} q[0], q[1];\n"


def rules(result: SanitizerResult) -> list[str]:
    """Rule ids of the violations, in report order."""
    return [v.rule for v in result.report.violations]


def denied_by(result: SanitizerResult) -> set[str]:
    """Rule ids of the denying violations."""
    return {v.rule for v in result.report.violations if v.severity == "deny"}
