"""Cut jobs without observables through `qorch run`: the output distribution, knitted and
verified; a full distribution wider than the limit refused; marginals and top-k instead."""

from __future__ import annotations

import pytest
import yaml
from qiskit import qasm2

from tests.support import REPO, ghz, qorch_run

NODES = REPO / "examples" / "distributed" / "nodes.yaml"
LIMIT = 8  # QORCH_MAX_DISTRIBUTION_BITS for this run: GHZ-10 is too wide to hold whole


def job(name: str, width: int, **spec: object) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"circuit": {"qasm": qasm2.dumps(ghz(width))}, "strategy": "cut", **spec},
    }


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("cut-distributions")
    (folder / "nodes.yaml").write_text(NODES.read_text())
    manifests = [
        job("ghz8", 8, shots=4000),
        job("too-wide", 10, shots=1000),
        job("parts", 10, shots=4000, output={"marginals": [[0, 1, 2], [9, 0]], "topK": 2}),
    ]
    (folder / "jobs.yaml").write_text(yaml.safe_dump_all(manifests))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QORCH_MAX_DISTRIBUTION_BITS", str(LIMIT))
        return qorch_run(folder)


def _condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_cut_job_without_observables_returns_a_verified_distribution(jobs) -> None:
    _, found = jobs
    status = found["ghz8"]["status"]
    assert status["phase"] == "Succeeded", status["message"]
    assert status["plan"]["strategy"] == "cut" and status["plan"]["samplingOverhead"] > 1
    dist = status["result"]["distribution"]
    assert dist["bits"] == list(range(8))
    quasi, errors, probs = dist["quasiProbabilities"], dist["standardErrors"], dist["probabilities"]
    assert set(errors) == set(quasi) and set(probs) <= set(quasi)
    assert sum(probs.values()) == pytest.approx(1, abs=1e-6) and min(probs.values()) > 0
    # Largest first: the GHZ outcomes, each near 1/2 (node noise takes a little away).
    assert set(list(quasi)[:2]) == {"0" * 8, "1" * 8}
    for key in ("0" * 8, "1" * 8):
        assert abs(quasi[key] - 0.5) <= 6 * errors[key] + 0.05
    verification = status["result"]["verification"]
    assert verification["method"] == "statevector"
    assert verification["hellingerFidelity"] >= verification["threshold"] > 0.5
    assert _condition(status, "Verified")["status"] == "True"
    assert "distribution reconstructed" in status["message"]


def test_a_full_distribution_wider_than_the_limit_is_rejected_at_plan_time(jobs) -> None:
    _, found = jobs
    status = found["too-wide"]["status"]
    assert status["phase"] == "Rejected"
    planned = _condition(status, "Planned")
    assert planned["reason"] == "OutputTooWide"
    message = planned["message"]
    assert "10 bits" in message and f"limit of {LIMIT}" in message
    assert "spec.output.marginals" in message and "spec.output.topK" in message
    assert not status.get("progress")  # nothing ran


def test_marginals_and_top_outcomes_of_a_distribution_too_wide_to_hold(jobs) -> None:
    code, found = jobs
    assert code == 1  # the rejected job
    status = found["parts"]["status"]
    assert status["phase"] == "Succeeded", status["message"]
    result = status["result"]
    assert "distribution" not in result
    low, ends = result["marginals"]
    assert low["bits"] == [0, 1, 2] and ends["bits"] == [9, 0]
    for marginal, width in ((low, 3), (ends, 2)):
        assert all(len(k) == width for k in marginal["quasiProbabilities"])
        top = sorted(marginal["probabilities"], key=marginal["probabilities"].get)[-2:]
        assert set(top) == {"0" * width, "1" * width}
        check = marginal["verification"]
        assert check["hellingerFidelity"] >= check["threshold"] > 0.5
    best = result["topOutcomes"]
    assert set(best["quasiProbabilities"]) == {"0" * 10, "1" * 10}
    assert best["verification"]["absoluteError"] <= best["verification"]["threshold"]
    assert _condition(status, "Verified")["status"] == "True"
