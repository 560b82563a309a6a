"""The safety loop on the embedded control plane with real agents: pause and re-route when a
node's agent dies or its measured error rate crosses the safety threshold mid-job, and
priority order among jobs waiting for capacity."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
import yaml

from qorch.api import DistributedJob, get_condition
from qorch.api.manifests import load_manifests
from qorch.channel.identity import Identity
from qorch.local.runner import EmbeddedControlPlane, Progress
from qorch.local.world import LocalWorld
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.telemetry.metrics import METRICS

# Noise makes a program of SLOW run for seconds (4000 shots of 10 qubits: one density matrix
# of 20 layers), long enough to act.
NOISE = {"twoQubitError": 0.01, "readoutError": 0.01}


def node(name: str, qubits: int, **noise: float) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": qubits, "noise": {**NOISE, **noise}},
    }


def job(name: str, qasm: str, shots: int, **spec: object) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"shots": shots, "strategy": "single", "circuit": {"qasm": qasm}, **spec},
    }


def layered(n: int, layers: int) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(n)]
        shift = 1 + layer % (n - 1)
        lines += [f"cx q[{i}], q[{(i + shift) % n}];" for i in range(0, n - 1, 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


SLOW = layered(10, 20)


async def start_plane(tmp_path: Path, docs: list[dict]) -> EmbeddedControlPlane:
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    world = LocalWorld(load_manifests([str(tmp_path / "m.yaml")]), Identity.generate())
    plane = EmbeddedControlPlane(world, tmp_path, Progress(io.StringIO()))
    assert await plane.start_agents() == []
    await plane.observe()
    return plane


def the_job(plane: EmbeddedControlPlane, name: str) -> DistributedJob:
    return next(j for j in plane.world.jobs.values() if j.metadata.name == name)


async def step_until(pipeline: JobPipeline, job: DistributedJob, phase: str) -> None:
    for _ in range(20):
        if job.status.phase == phase:
            return
        job.status = (await pipeline.step(job)).status
    raise AssertionError(f"never reached {phase}: {job.status.phase} {job.status.message}")


async def wait_busy(plane: EmbeddedControlPlane, name: str) -> None:
    """Until the node's agent is running a program."""
    node = next(n for n in plane.world.all_nodes() if n.metadata.name == name)
    for _ in range(200):
        if (await plane.world.agent(node).call("health", {}))["busy"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never got busy")


def reroutes(labels: dict[str, str]) -> float:
    return METRICS.registry.get_sample_value("qorch_job_reroutes_total", labels) or 0.0


async def test_an_agent_that_dies_mid_job_triggers_a_reroute(tmp_path):
    docs = [node("good", 10), node("spare", 10, twoQubitError=0.02), job("j", SLOW, 4000)]
    plane = await start_plane(tmp_path, docs)
    try:
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings(watch_seconds=0.2))
        labels = {"kind": "QuantumNode", "reason": "AgentFailed"}
        before = reroutes(labels)
        j = the_job(plane, "j")
        await step_until(pipeline, j, "Running")
        assert j.status.plan and j.status.plan.nodes == "good"  # the lower-noise node
        collect = asyncio.create_task(pipeline.step(j))
        await wait_busy(plane, "good")
        agent = next(a for a in plane.agents if a.node.metadata.name == "good")
        agent.proc.kill()
        j.status = (await asyncio.wait_for(collect, 60)).status
        assert j.status.phase == "Pending", j.status.message
        [reroute] = j.status.reroutes
        assert (reroute.resource, reroute.reason, reroute.attempt) == (
            "QuantumNode/good",
            "AgentFailed",
            1,
        )
        assert [p.state for p in j.status.progress] == ["Cancelled"]
        assert reroutes(labels) == before + 1
        assert pipeline.reservations.total() == 0  # the dead node's qubits are free again
        await step_until(pipeline, j, "Succeeded")
        assert j.status.plan.nodes == "spare"
        assert j.status.attempt == 2
        assert sum(j.status.result.counts.values()) == 4000
        reasons = [e.reason for e in plane.world.events]
        assert "Rerouting" in reasons
    finally:
        await plane.close()


async def test_nothing_healthy_left_fails_naming_the_resource(tmp_path):
    plane = await start_plane(tmp_path, [node("only", 10), job("j", SLOW, 4000)])
    try:
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings(watch_seconds=0.2))
        j = the_job(plane, "j")
        await step_until(pipeline, j, "Running")
        collect = asyncio.create_task(pipeline.step(j))
        await wait_busy(plane, "only")
        plane.agents[0].proc.kill()
        j.status = (await asyncio.wait_for(collect, 60)).status
        await step_until(pipeline, j, "Failed")
        assert "QuantumNode/only (AgentFailed" in j.status.message
        [succeeded] = [c for c in j.status.conditions if c.type == "Succeeded"]
        assert succeeded.reason == "NoHealthyResources"
    finally:
        await plane.close()


async def test_jobs_waiting_for_capacity_start_in_priority_order(tmp_path):
    small = layered(5, 2)
    docs = [
        node("n", 5),
        job("first", SLOW.replace("q[10]", "q[5]"), 200, priority=0),
        job("low", small, 100, priority=0),
        job("high", small, 100, priority=10),
        job("mid", small, 100, priority=5),
    ]
    docs[1]["spec"]["circuit"]["qasm"] = layered(5, 40)
    plane = await start_plane(tmp_path, docs)
    try:
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings())
        placed: list[str] = []

        async def drive(j: DistributedJob) -> None:
            while j.status.phase not in ("Succeeded", "Failed", "Rejected"):
                before = j.status.phase
                version = pipeline.reservations.version
                result = await pipeline.step(j)
                j.status = result.status
                if j.status.phase == "Planned" and before != "Planned":
                    placed.append(j.metadata.name)
                if result.requeue_after is not None:
                    await pipeline.reservations.changed(result.requeue_after, since=version)

        first = the_job(plane, "first")
        await step_until(pipeline, first, "Planned")
        placed.append("first")
        others = [the_job(plane, n) for n in ("low", "high", "mid")]
        tasks = [asyncio.create_task(drive(j)) for j in others]
        # All three wait in the queue behind `first` before it runs: each is admitted and
        # plans (and estimates) first, which on a loaded machine takes more than a moment.

        def waiting(j: DistributedJob) -> bool:
            planned = get_condition(j.status.conditions, "Planned")
            return planned is not None and planned.reason in ("Queued", "WaitingForCapacity")

        async with asyncio.timeout(120):
            while not all(waiting(j) for j in others):
                await asyncio.sleep(0.05)
        assert {j.status.phase for j in others} == {"Pending"}
        await drive(first)
        await asyncio.gather(*tasks)
        assert placed == ["first", "high", "mid", "low"]
        assert all(j.status.phase == "Succeeded" for j in [first, *others])
    finally:
        await plane.close()


@pytest.fixture(autouse=True)
def _quiet_tracing(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
