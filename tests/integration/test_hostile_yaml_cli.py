"""Every command that reads YAML from a user ends with exit 2 on hostile input, fast, and
names the file: `qorch run` (manifests and --policy), `sign`, `verify`, `sanitize --policy`
and `qpu-agent --node-file`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import hostile_yaml as hostile
from tests.support import REPO

TIME_BOUND = 5.0  # seconds, interpreter start included; each case takes well under one
QUICKSTART = REPO / "examples" / "quickstart"


def qorch(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    return proc, time.perf_counter() - start


def hostile_file(tmp_path: Path, case: str) -> Path:
    """One file per class of hostile input, named after it."""
    kind, _, detail = case.partition(":")
    path = tmp_path / f"{kind}-{detail}.yaml"
    if kind == "bomb":
        path.write_text(hostile.alias_bomb(detail))
    elif kind == "deep":
        path.write_text(hostile.deep_nesting(detail, 100_000))
    elif kind == "utf8":
        path.write_bytes(hostile.with_bad_utf8(detail, hostile.BAD_UTF8["invalid-start"])[0])
    elif kind == "oversize":
        hostile.oversize(path, 50 * 1024 * 1024)
    return path


CASES = [
    *(f"bomb:{shape}" for shape in hostile.BOMB_SHAPES),
    *(f"deep:{style}" for style in hostile.NESTING_STYLES),
    *(f"utf8:{position}" for position in hostile.UTF8_POSITIONS),
    "oversize:50MB",
]
# One case a class for the commands that share the loader with `qorch run`.
ONE_A_CLASS = ["bomb:sequences", "deep:flow-mappings", "utf8:in-value", "oversize:50MB"]


def assert_refused(proc: subprocess.CompletedProcess[str], elapsed: float, path: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert str(path) in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert elapsed < TIME_BOUND, f"{path.name}: {elapsed:.1f} s"


@pytest.mark.parametrize("case", CASES)
def test_qorch_run_refuses_hostile_manifests(tmp_path, case):
    path = hostile_file(tmp_path, case)
    proc, elapsed = qorch("run", str(path))
    assert_refused(proc, elapsed, path)
    assert proc.stderr.startswith("error: unusable manifests:\n"), proc.stderr
    assert proc.stdout == ""
    if case.startswith(("bomb", "deep")):  # the object and the field path are named too
        assert f"{path} (document 1): ConfigMap/" in proc.stderr and ": data." in proc.stderr


def test_qorch_run_refuses_a_hostile_file_in_a_folder_of_good_ones(tmp_path):
    for name in ("nodes.yaml", "ghz-job.yaml"):
        (tmp_path / name).write_text((QUICKSTART / name).read_text())
    bad = hostile_file(tmp_path, "bomb:doubling")
    proc, elapsed = qorch("run", str(tmp_path))
    assert_refused(proc, elapsed, bad)


@pytest.mark.parametrize("case", ONE_A_CLASS)
def test_qorch_run_refuses_a_hostile_policy(tmp_path, case):
    path = hostile_file(tmp_path, case)
    proc, elapsed = qorch("run", str(QUICKSTART), "--policy", str(path))
    assert_refused(proc, elapsed, path)


@pytest.mark.parametrize("case", ONE_A_CLASS)
def test_qorch_sanitize_refuses_a_hostile_policy(tmp_path, case):
    circuit = tmp_path / "bell.qasm"
    circuit.write_text('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\n')
    path = hostile_file(tmp_path, case)
    proc, elapsed = qorch("sanitize", str(circuit), "--policy", str(path))
    assert_refused(proc, elapsed, path)


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("keys") / "alice"
    proc, _ = qorch("keygen", str(prefix))
    assert proc.returncode == 0, proc.stderr
    return prefix


@pytest.mark.parametrize("case", ONE_A_CLASS)
def test_qorch_sign_and_verify_refuse_hostile_manifests(tmp_path, alice, case):
    path = hostile_file(tmp_path, case)
    proc, elapsed = qorch("sign", str(path), "--key", f"{alice}.key")
    assert_refused(proc, elapsed, path)
    assert proc.stdout == ""
    proc, elapsed = qorch("verify", str(path), "--trusted", f"{alice}.pub")
    assert_refused(proc, elapsed, path)


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_sign_and_verify_name_the_field_of_an_invalid_job(tmp_path, alice, command):
    path = tmp_path / "job.yaml"
    path.write_text((QUICKSTART / "ghz-job.yaml").read_text().replace("shots: 2000", "shots: -1"))
    key = ["--key", f"{alice}.key"] if command == "sign" else ["--trusted", f"{alice}.pub"]
    proc, elapsed = qorch(command, str(path), *key)
    assert_refused(proc, elapsed, path)
    assert f"{command}: {path} (document 1): DistributedJob/ghz: spec.shots: " in proc.stderr


@pytest.mark.parametrize("case", ONE_A_CLASS)
def test_qpu_agent_refuses_a_hostile_node_file(tmp_path, alice, case):
    path = hostile_file(tmp_path, case)
    proc, elapsed = qorch(
        "qpu-agent",
        "--node-file",
        str(path),
        "--identity-key",
        f"{alice}.key",
        "--trusted-client-key",
        f"{alice}.pub",
        "--port",
        "0",
    )
    assert_refused(proc, elapsed, path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# nothing yet\n", "empty, not a QuantumNode manifest"),
        ("[1, 2]\n", "not a YAML mapping, not a QuantumNode manifest"),
        (
            "apiVersion: qorch.dev/v1alpha1\nkind: QuantumNode\nmetadata: {name: a}\n"
            "spec: {qubits: 0, colour: red}\n",
            "invalid QuantumNode manifest: spec.qubits: Input should be greater than or equal"
            " to 1; spec.colour: unknown field",
        ),
    ],
    ids=["empty", "a list", "two bad fields"],
)
def test_qpu_agent_names_what_is_wrong_with_its_node_file_in_one_line(tmp_path, text, problem):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    proc, _ = qorch("qpu-agent", "--node-file", str(path), "--port", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"qpu-agent: {path}: {problem}"


def test_tpm_enroll_refuses_a_node_file_in_its_own_name(tmp_path):
    """Before the TPM is touched, and as `tpm enroll`, not as the agent it prepares."""
    path = tmp_path / "nodes.yaml"
    path.write_text((REPO / "examples" / "quickstart" / "nodes.yaml").read_text())
    proc, _ = qorch(
        "tpm",
        "enroll",
        "--tpm",
        "device:/nonexistent",
        "--node-file",
        str(path),
        "--out",
        str(tmp_path / "node.sealed"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tpm enroll: {path}: expected one YAML document, found 3"
