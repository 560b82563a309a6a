"""Readout mitigation end to end: `qorch run` reports raw and mitigated results side by side."""

import json
import subprocess
import sys

import yaml

from tests.support import REPO

NODE = {
    "apiVersion": "qorch.dev/v1alpha1",
    "kind": "QuantumNode",
    "metadata": {"name": "noisy-readout"},
    "spec": {"qubits": 5, "noise": {"readoutError": 0.08}, "safety": {"maxErrorRate": 0.2}},
}
GHZ = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[4];
creg c[4];
h q[0];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
measure q -> c;
"""


def mitigated_job(name: str, **spec: object) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"mitigation": "readout", "circuit": {"qasm": GHZ}, **spec},
    }


def run_on_the_noisy_node(tmp_path, job: dict) -> dict:
    """`qorch run -o json` of NODE and `job`; the job's result."""
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all([NODE, job]))
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", str(tmp_path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    [result] = [j["status"]["result"] for j in json.loads(proc.stdout)]
    return result


def test_readout_mitigation_reports_raw_and_mitigated(tmp_path):
    job = mitigated_job("ghz", shots=4000)
    result = run_on_the_noisy_node(tmp_path, job)
    raw = result["verification"]["hellingerFidelity"]
    mitigated = result["mitigated"]
    assert sum(result["counts"].values()) == 4000  # the raw counts stay as measured
    assert mitigated["calibrations"] and mitigated["calibrations"][0].startswith("noisy-readout@")
    assert abs(sum(mitigated["quasiProbabilities"].values()) - 1) < 1e-4  # rounded to 1e-6
    # About 8% of each bit misread: raw GHZ fidelity ~0.72; the correction recovers most.
    assert raw < 0.85
    assert mitigated["verification"]["hellingerFidelity"] > raw + 0.1


def test_readout_mitigation_corrects_expectation_values_of_a_single_job(tmp_path):
    observables = ["ZZZZ", "XXXX", "IIZZ"]  # all 1 on a GHZ state
    job = mitigated_job("ghz-obs", shots=8000, strategy="single", observables=observables)
    result = run_on_the_noisy_node(tmp_path, job)
    raw, mitigated = result["expectationValues"], result["mitigated"]["expectationValues"]
    errors = result["mitigated"]["standardErrors"]
    raw_errors = result["standardErrors"]
    assert all(-1 <= m <= 1 for m in mitigated)  # projected onto the bound if beyond it
    for r, m, e, s in zip(raw, mitigated, errors, raw_errors, strict=True):
        # A misread bit flips a parity: (1 - 2 * 0.08)^k of it survives for k qubits read.
        assert r < 0.9
        # The correction spreads the shot noise and adds the calibration's own sampling error.
        assert e > s
        # Shots are not seeded through `qorch run`; the standard error counts the shots and
        # the calibration's sampling error, and 5 of them miss less than 1 in 10^5.
        assert abs(m - 1) < 5 * e and abs(m - 1) < abs(r - 1) / 2, (r, m, e)
