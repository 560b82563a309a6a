"""``qorch sanitize``: exit codes and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qorch.sanitizer.cli import sanitize_command

from .sources import BELL2, qasm2


@pytest.fixture
def circuit(tmp_path: Path) -> Path:
    path = tmp_path / "bell.qasm"
    path.write_text(BELL2)
    return path


def test_an_accepted_circuit_exits_0(circuit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sanitize_command(str(circuit), None, "text") == 0
    assert "accepted" in capsys.readouterr().out


def test_a_rejected_circuit_exits_1_with_json_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.qasm"
    path.write_text(qasm2("h q[0];\n", qubits=500))

    assert sanitize_command(str(path), None, "json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["accepted"] is False
    assert report["violations"][0]["rule"] == "QS006"
    assert report["violations"][0]["location"] == {"line": 3}


def test_warnings_still_exit_0(tmp_path: Path, circuit: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("maxDepth: 1\nruleSeverity: {QS104: warn}\n")

    assert sanitize_command(str(circuit), str(policy), "text") == 0


def test_the_policy_file_applies(tmp_path: Path, circuit: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("default:\n  maxQubits: 1\n")

    assert sanitize_command(str(circuit), str(policy), "text") == 1


@pytest.mark.parametrize("problem", ["missing file", "bad policy", "bad output"])
def test_unusable_invocations_exit_2(
    problem: str, tmp_path: Path, circuit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text("maxQubits: many\n")
    args = {
        "missing file": (str(tmp_path / "absent.qasm"), None, "text"),
        "bad policy": (str(circuit), str(bad_policy), "text"),
        "bad output": (str(circuit), None, "yaml"),
    }[problem]

    assert sanitize_command(*args) == 2
    assert capsys.readouterr().err.startswith("qorch sanitize:")


def test_invalid_utf8_is_refused_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "latin1.qasm"
    path.write_bytes(BELL2.encode() + b"// caf\xe9\n")

    assert sanitize_command(str(path), None, "json") == 1


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_source_without_end_is_refused_after_a_bounded_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A device or a pipe reports no size: the source is read no further than the limit."""
    assert sanitize_command("/dev/zero", None, "json") == 1
    (violation,) = json.loads(capsys.readouterr().out)["violations"]
    assert violation["rule"] == "QS002"
    assert violation["message"].startswith("the source goes on past the limit")
