"""qorch's processes leave out transpiler plugins they never use (the IBM client's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST_TRANSPILE = """
import sys
{prepare}
from qiskit import QuantumCircuit, transpile
qc = QuantumCircuit(2)
qc.h(0)
qc.cx(0, 1)
qc.measure_all()
out = transpile(qc, basis_gates=["rz", "sx", "x", "cx"], optimization_level=1)
print(sorted(out.count_ops()), "qiskit_ibm_runtime" in sys.modules)
"""


def first_transpile(prepare: str) -> str:
    code = FIRST_TRANSPILE.format(prepare=prepare)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_the_first_transpile_imports_no_ibm_client() -> None:
    pytest.importorskip("qiskit_ibm_runtime")  # installed with qiskit-addon-cutting
    left_out = "from qorch.transpiler_plugins import leave_out_unused; leave_out_unused()"
    gates = "['barrier', 'cx', 'measure', 'rz', 'sx']"
    assert first_transpile("") == f"{gates} True"  # what qiskit alone does
    assert first_transpile(left_out) == f"{gates} False"
    # Once is enough: a second call does not wrap the listing again.
    assert first_transpile(f"{left_out}; leave_out_unused()") == f"{gates} False"
