"""`qorch run --metrics-out`: a user without a cluster sees the signals the dashboards show."""

import re
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO
from tests.unit.telemetry.test_dashboards_and_rules import (
    dashboard_queries,
    metric_names,
    recorded,
    rules,
)

SIGNALS = {
    "job success": "qorch_jobs_finished_total",
    "fidelity": "qorch_job_fidelity_ratio_sum",
    "feedforward latency": "qorch_feedforward_latency_seconds_sum",
    "entanglement success": "qorch_entanglement_successes_total",
}


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("metrics") / "m.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "run", "examples/quickstart", "--metrics-out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def samples(text: str, name: str) -> list[float]:
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return [float(m.group(2)) for m in pattern.finditer(text)]


@pytest.mark.parametrize("signal", SIGNALS)
def test_the_quickstart_exports_non_zero_samples(exposition, signal):
    values = samples(exposition, SIGNALS[signal])
    assert values and any(v > 0 for v in values), f"{signal}: {values}"


def test_every_metric_of_the_dashboards_and_alerts_is_in_the_output(exposition):
    declared = set(re.findall(r"^# TYPE (\S+) (\w+)", exposition, re.MULTILINE))
    names = set()
    for name, kind in declared:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names.update(name + s for s in suffixes.get(kind, [""]))
        names.add(name)
    wanted = {n for _, _, expr in dashboard_queries() for n in metric_names(expr)}
    wanted |= {n for r in rules() for n in metric_names(r["expr"])}
    missing = sorted(wanted - names - recorded())
    assert not missing, f"named in dashboards or alerts but not exported: {missing}"


def test_promtool_accepts_the_exposition(exposition, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: apt-get install prometheus")
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, text=True, capture_output=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_memory_limit_and_widest_exact_simulations_are_in_the_output(exposition):
    from qorch.memory_limit import memory_limit_bytes

    assert samples(exposition, "qorch_memory_limit_bytes") == [float(memory_limit_bytes())]
    for kind in ("verification", "prediction"):
        name = f'qorch_exact_simulation_max_qubits{{kind="{kind}"}}'
        widest = [
            float(line.split()[-1]) for line in exposition.splitlines() if line.startswith(name)
        ]
        assert widest and 2 <= widest[0] <= 26, (kind, widest)


def run_quickstart(metrics_out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qorch", "run", "examples/quickstart", "--metrics-out", metrics_out],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_a_metrics_file_in_no_folder_is_refused_before_anything_starts(tmp_path):
    proc = run_quickstart(str(tmp_path / "typo" / "m.txt"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"run: --metrics-out {tmp_path / 'typo' / 'm.txt'}: no folder {tmp_path / 'typo'}"
    )
    assert proc.stdout == ""  # no agent started


def test_a_metrics_file_that_cannot_be_written_at_the_end_loses_no_result(tmp_path):
    """A link to a folder that is gone passes the check before the run, and fails at the
    end: the jobs' results are printed all the same, then the error, with exit 2."""
    out = tmp_path / "m.txt"
    out.symlink_to(tmp_path / "gone" / "m.txt")
    proc = run_quickstart(str(out))
    assert proc.returncode == 2, proc.stderr
    assert "ghz: Succeeded" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --metrics-out {out}: cannot write it: No such file or directory"
    )
