"""Jobs over links that purify their pairs: the plan records it and reserves raw pairs, and
purification asked of pairs at fidelity <= 1/2 rejects the job naming the link."""

from __future__ import annotations

from typing import Any

import pytest

from qorch.api import EntanglementLink, get_condition
from qorch.api import reasons as R
from qorch.pipeline.job import JobPipeline

from .fake_world import NAMESPACE, FakeWorld, make_job

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n"
)
SHOTS = 1000
TIMEOUT = 100


@pytest.fixture(autouse=True)
def _quiet_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)


def add_link(world: FakeWorld, fidelity: float, purification: dict[str, Any]) -> None:
    link = EntanglementLink.model_validate(
        {
            "metadata": {"name": "a-b", "namespace": NAMESPACE, "uid": "uid-a-b"},
            "spec": {
                "nodes": ["a", "b"],
                "fidelity": fidelity,
                "generationRateHz": 1e6,
                "successProbability": 0.5,
                "purification": purification,
            },
            "status": {"phase": "Up"},
        }
    )
    world._links[link.metadata.name] = link


async def planned(pipeline: JobPipeline, **spec: Any):
    job = make_job("j", BELL, shots=SHOTS, strategy="teleport", timeoutSeconds=TIMEOUT, **spec)
    for _ in range(6):
        if job.status.phase in ("Planned", "Rejected", "Failed"):
            break
        job.status = (await pipeline.step(job)).status
    return job


async def test_a_purifying_link_is_planned_with_raw_pairs_reserved(pipeline, world, book):
    world.add_node("a", 2)
    world.add_node("b", 2)
    add_link(world, 0.85, {"protocol": "dejmps", "rounds": 2})
    job = await planned(pipeline)
    assert job.status.phase == "Planned", job.status.message
    plan = job.status.plan
    assert plan is not None and plan.strategy == "teleport"
    (use,) = plan.bell_pairs
    assert use.purification is not None
    assert (use.purification.protocol, use.purification.rounds) == ("dejmps", 2)
    p1, p2 = use.purification.success_probabilities
    assert use.raw_bell_pairs == pytest.approx(use.bell_pairs * (2 / p1) * 2 / p2, abs=1e-5)
    assert use.purification.output_fidelity > 0.85
    assert "purified (a-b: 2 round(s) of dejmps" in plan.reason
    link = f"qlink/{NAMESPACE}/a-b"
    assert plan.reservation[link] == pytest.approx(use.raw_bell_pairs * SHOTS / TIMEOUT)
    assert book.allocated(link) == pytest.approx(use.raw_bell_pairs * SHOTS / TIMEOUT)


@pytest.mark.parametrize("purification", [{"rounds": 1}, {"protocol": "bbpssw", "maxRounds": 3}])
async def test_purification_on_a_link_at_or_below_one_half_rejects_the_job(
    pipeline, world, book, purification
):
    world.add_node("a", 2)
    world.add_node("b", 2)
    add_link(world, 0.45, purification)
    # A fixed round is always asked; rounds the planner chooses are asked by the budget.
    job = await planned(pipeline, fidelityBudget=0.9)
    assert job.status.phase == "Rejected"
    planned_condition = get_condition(job.status.conditions, R.PLANNED)
    assert planned_condition is not None
    assert planned_condition.reason == R.PURIFICATION_CANNOT_CONVERGE
    assert "link a-b" in job.status.message and "cannot converge" in job.status.message
    assert book.total() == 0
