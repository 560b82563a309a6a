"""What the commands' logs look like: services stamp each line with its time, and Qiskit's
pass-by-pass INFO lines stay out unless debugging."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
from qorch.cli import _configure_logging
_configure_logging(sys.argv[1], sys.argv[2])
logging.getLogger("qiskit.passmanager.base_tasks").info("Pass: BasisTranslator - 0.02 (ms)")
logging.getLogger("qiskit.compiler").warning("a warning from qiskit")
logging.getLogger("qorch.operator.jobs").info("job placed")
"""


def log_lines(level: str, command: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, level, command],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr.splitlines()


@pytest.mark.parametrize("command", ["operator", "qpu-agent", "telemetry-sidecar"])
def test_a_service_stamps_its_lines_and_leaves_out_qiskits_passes(command: str) -> None:
    lines = log_lines("INFO", command)
    assert len(lines) == 2, lines
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert re.fullmatch(stamp + r"WARNING qiskit\.compiler: a warning from qiskit", lines[0])
    assert re.fullmatch(stamp + r"INFO qorch\.operator\.jobs: job placed", lines[1])


def test_a_one_shot_command_logs_without_a_stamp_and_debug_shows_qiskits_passes() -> None:
    assert log_lines("INFO", "run") == [
        "WARNING qiskit.compiler: a warning from qiskit",
        "INFO qorch.operator.jobs: job placed",
    ]
    assert log_lines("DEBUG", "plan")[0] == (
        "INFO qiskit.passmanager.base_tasks: Pass: BasisTranslator - 0.02 (ms)"
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["sanitize", "x.qasm"],
            {"QORCH_LOG_LEVEL": "loud"},
            "qorch: QORCH_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or"
            " 'CRITICAL'",
        ),
        (
            ["--log-level", "loud", "sanitize", "x.qasm"],
            {},
            "argument --log-level: invalid choice: 'LOUD'",
        ),
    ],
)
def test_an_unknown_log_level_ends_the_command_with_its_name_not_a_traceback(
    argv, env, message, monkeypatch
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    done = subprocess.run(
        [sys.executable, "-m", "qorch", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_log_level_is_read_in_any_case(monkeypatch):
    from qorch.settings import Settings

    monkeypatch.setenv("QORCH_LOG_LEVEL", "info")
    assert Settings.from_env().log_level == "INFO"
