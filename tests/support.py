"""Builders shared by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qiskit import QuantumCircuit

from qorch.api import QuantumNode

if TYPE_CHECKING:
    import pytest

    from qorch.api import DistributedJob
    from qorch.pipeline.authorization import AuthorizationPolicy, Decision

REPO = Path(__file__).resolve().parent.parent


def make_node(name: str = "qpu", qubits: int = 8, **spec: object) -> QuantumNode:
    """A QuantumNode from its wire form, as a manifest would give it."""
    return QuantumNode.model_validate(
        {"metadata": {"name": name}, "spec": {"qubits": qubits, **spec}}
    )


def deep_circuit(width: int, layers: int) -> QuantumCircuit:
    """Layers of rx on every qubit and cx on alternate pairs, measured at the end: without
    gate noise one simulation, as long as `width` and `layers` make it."""
    qc = QuantumCircuit(width, width)
    for layer in range(layers):
        for q in range(width):
            qc.rx(0.1 * (q + layer + 1), q)
        for q in range(layer % 2, width - 1, 2):
            qc.cx(q, q + 1)
    qc.measure(range(width), range(width))
    return qc


def ghz(width: int) -> QuantumCircuit:
    """H on qubit 0, a CX chain, every qubit measured: ideally all zeros or all ones."""
    qc = QuantumCircuit(width, width)
    qc.h(0)
    for q in range(width - 1):
        qc.cx(q, q + 1)
    qc.measure(range(width), range(width))
    return qc


def qorch_run(folder: Path, timeout: float = 600) -> tuple[int, dict[str, dict]]:
    """`qorch run FOLDER -o json` in a fresh process: its exit code and the final
    DistributedJobs by name."""
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", str(folder), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, {j["metadata"]["name"]: j for j in json.loads(proc.stdout)}


def fail_the_steps_of(job_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every step of the job named `job_name` raise, as a bug in qorch would (its
    authorization, the first step that reads the job's own fields)."""
    from qorch.pipeline import job as job_module

    real = job_module.authorize

    async def authorize(job: DistributedJob, policy: AuthorizationPolicy) -> Decision:
        if job.metadata.name == job_name:
            raise RuntimeError("injected")
        return await real(job, policy)

    monkeypatch.setattr(job_module, "authorize", authorize)
