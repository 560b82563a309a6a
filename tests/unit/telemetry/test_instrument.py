"""Instrumentation hooks: the pipeline's trace and metrics, node and link checks, agent
clients, operator handlers."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qorch.agent_protocol import RunRequest, RunResult
from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.api.manifests import load_manifests
from qorch.channel.envelope import current_trace
from qorch.pipeline.job import JobPipeline
from qorch.pipeline.reservations import Reservations
from qorch.pipeline.resources import check_link
from qorch.telemetry import metrics as m
from qorch.telemetry.agent import AgentTelemetry
from qorch.telemetry.instrument import (
    instrument_agent_client,
    instrument_step,
    observed_link_check,
    observed_node_check,
    record_node,
    timed_reconcile,
)
from qorch.telemetry.metrics import QorchMetrics
from tests.support import REPO


class Agent:
    """An agent answering `run` with a perfect GHZ distribution, traced as the real one is."""

    def __init__(self, node: str) -> None:
        self.telemetry = AgentTelemetry(node, None)
        self.handle = self.telemetry.traced(self._handle)
        self.handshakes = 0

    async def _handle(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        run = RunRequest.from_wire(payload)
        half = run.shots // 2
        return RunResult(
            program_id=run.program_id,
            node=self.telemetry.node,
            shots=run.shots,
            transpile_seconds=0.0,
            simulate_seconds=0.01,
            counts={"0000": half, "1111": run.shots - half},
        ).wire()

    async def call(self, op: str, payload: dict[str, Any], *, timeout: float | None = None) -> Any:
        self.handshakes = 1  # the first call opened a session
        # What the channel does: the client sends current_trace, the server sets it.
        sent = current_trace.get()
        token = current_trace.set(sent)
        try:
            return await self.handle(op, payload)
        finally:
            current_trace.reset(token)

    async def close(self) -> None:
        return None


class World:
    def __init__(self) -> None:
        manifests = load_manifests([str(REPO / "examples/quickstart")])
        self.node_list = manifests.nodes
        self.jobs = manifests.jobs
        for node in self.node_list:
            node.status.phase = "Ready"
        self.agents = {n.metadata.name: Agent(n.metadata.name) for n in self.node_list}

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return self.node_list

    def links(self, namespace: str) -> list[EntanglementLink]:
        return []

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def agent(self, node: QuantumNode) -> Any:
        name = node.metadata.name
        return instrument_agent_client(node.metadata.namespace, name, self.agents[name])

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        return None


class TracedPipeline(JobPipeline):
    step = instrument_step(JobPipeline.step)  # the hook, as on JobPipeline.step


def sample(name: str, labels: dict[str, str]) -> float:
    return m.REGISTRY.get_sample_value(name, labels) or 0.0


async def run_job(world: World) -> DistributedJob:
    job = world.jobs[0]
    job.metadata.uid = "uid-1"
    pipeline = TracedPipeline(world, Reservations())  # type: ignore[arg-type]
    while job.status.phase not in ("Succeeded", "Failed", "Rejected"):
        job.status = (await pipeline.step(job)).status
    return job


async def test_one_job_is_one_trace_down_to_the_agent(spans: InMemorySpanExporter) -> None:
    job = await run_job(World())
    assert job.status.phase == "Succeeded", job.status.message
    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    assert {"admit", "plan", "start-attempt", "dispatch", "execute", "agent.run", "job"} <= set(
        by_name
    )
    trace_ids = {f"{s.context.trace_id:032x}" for s in finished}
    assert trace_ids == {job.status.trace_id}
    parent = {s.context.span_id: s.name for s in finished}
    assert parent[by_name["agent.run"].parent.span_id] == "execute"
    assert parent[by_name["execute"].parent.span_id] == "dispatch"
    assert parent[by_name["dispatch"].parent.span_id] == "job"
    assert by_name["job"].attributes["qorch.phase"] == "Succeeded"
    assert by_name["execute"].attributes["qorch.node"] in ("qpu-a", "qpu-b")


async def test_a_finished_job_records_its_signals() -> None:
    labels = {"strategy": "single"}
    before = {
        name: sample(name, labels)
        for name in (
            "qorch_job_fidelity_ratio_count",
            "qorch_measurement_variance_count",
            "qorch_coherence_window_usage_ratio_count",
            "qorch_orchestrator_latency_seconds_count",
        )
    }
    steps = sample("qorch_pipeline_step_duration_seconds_count", {"step": "dispatch"})
    # The registry is the process's: jobs other tests left running stay counted.
    running = sample("qorch_jobs", {"phase": "Running"})
    job = await run_job(World())
    assert job.status.result and job.status.result.verification
    for name, value in before.items():
        assert sample(name, labels) == value + 1, name
    assert sample("qorch_pipeline_step_duration_seconds_count", {"step": "dispatch"}) == steps + 1
    assert sample("qorch_jobs", {"phase": "Running"}) == running  # no longer counted
    node = job.status.plan.nodes if job.status.plan else ""
    calls = {"namespace": "default", "node": node, "op": "run", "code": "ok"}
    assert sample("qorch_channel_calls_total", calls) >= 1


async def test_a_terminal_job_is_left_alone(spans: InMemorySpanExporter) -> None:
    world = World()
    job = await run_job(world)
    spans.clear()
    pipeline = TracedPipeline(world, Reservations())  # type: ignore[arg-type]
    assert (await pipeline.step(job)).status is job.status
    assert spans.get_finished_spans() == ()


def test_node_and_link_checks_feed_their_gauges(metrics: QorchMetrics) -> None:
    manifests = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")])
    nodes = {n.metadata.name: n for n in manifests.nodes}
    for node in nodes.values():
        node.status.phase = "Ready"
        record_node(node, metrics=metrics)
    r = metrics.registry
    a = {"namespace": "default", "node": "qpu-a"}
    assert r.get_sample_value("qorch_node_up", a) == 1
    assert r.get_sample_value("qorch_node_phase", {**a, "phase": "Ready"}) == 1
    assert r.get_sample_value("qorch_node_phase", {**a, "phase": "Unreachable"}) == 0
    assert r.get_sample_value("qorch_node_gate_error_ratio", {**a, "gate": "two_qubit"}) == 0.008
    assert r.get_sample_value("qorch_node_qubits", a) == 8

    checked = observed_link_check(check_link)
    status = checked(manifests.links[0], nodes)
    link = {"namespace": "default", "link": "a-b"}
    assert status.phase == "Up"
    assert m.REGISTRY.get_sample_value("qorch_link_up", link) == 1
    assert m.REGISTRY.get_sample_value("qorch_link_declared_success_ratio", link) == 0.3
    # 10 % of the shorter T2 (60 us)
    budget = m.REGISTRY.get_sample_value("qorch_link_coherence_budget_seconds", link)
    assert budget == pytest.approx(6e-6)


async def test_observed_node_check_returns_the_status_it_records() -> None:
    manifests = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")])
    node = manifests.nodes[0]

    async def check(node: QuantumNode, *_: Any) -> Any:
        status = node.status.model_copy()
        status.phase = "Unreachable"
        return status

    status = await observed_node_check(check)(node, None, "http://x", 0)
    assert status.phase == "Unreachable"
    labels = {"namespace": "default", "node": node.metadata.name, "phase": "Unreachable"}
    assert m.REGISTRY.get_sample_value("qorch_node_phase", labels) == 1


class Refusing:
    def __init__(self, code: str) -> None:
        self.code = code
        self.handshakes = 0

    async def call(self, op: str, payload: dict[str, Any], *, timeout: float | None = None) -> Any:
        self.handshakes += 1
        error = Exception(f"{self.code}: no")
        error.code = self.code  # type: ignore[attr-defined]
        raise error

    async def close(self) -> None:
        return None


async def test_agent_clients_count_calls_handshakes_and_auth_failures(
    metrics: QorchMetrics,
) -> None:
    from qorch.telemetry.instrument import InstrumentedAgentClient

    client = InstrumentedAgentClient("lab", "qpu-a", Refusing("PeerKeyMismatch"), metrics)
    for _ in range(2):
        with pytest.raises(Exception, match="PeerKeyMismatch"):
            await client.call("health", {})
    weird = InstrumentedAgentClient("lab", "qpu-b", Refusing("<script>"), metrics)
    with pytest.raises(Exception, match="<script>"):
        await weird.call("whatever", {})
    r = metrics.registry
    node = {"namespace": "lab", "node": "qpu-a"}
    assert r.get_sample_value("qorch_channel_handshakes_total", node) == 2
    auth = {**node, "reason": "PeerKeyMismatch"}
    assert r.get_sample_value("qorch_channel_auth_failures_total", auth) == 2
    calls = {**node, "op": "health", "code": "PeerKeyMismatch"}
    assert r.get_sample_value("qorch_channel_calls_total", calls) == 2
    bounded = {"namespace": "lab", "node": "qpu-b", "op": "other", "code": "Other"}
    assert r.get_sample_value("qorch_channel_calls_total", bounded) == 1
    assert instrument_agent_client("lab", "qpu-a", client) is client


async def test_timed_reconcile_keeps_the_handler_signature_and_times_it() -> None:
    @timed_reconcile("QuantumNode", "health")
    async def handler(body: dict, name: str, **_: Any) -> None:
        """Docstring kopf shows."""

    @timed_reconcile("EntanglementLink")
    def failing(body: dict, **_: Any) -> None:
        raise RuntimeError("boom")

    assert inspect.iscoroutinefunction(handler) and not inspect.iscoroutinefunction(failing)
    assert list(inspect.signature(handler).parameters) == ["body", "name", "_"]
    assert handler.__doc__ == "Docstring kopf shows."
    labels = {"kind": "QuantumNode", "handler": "health"}
    before = sample("qorch_reconcile_duration_seconds_count", labels)
    await handler(body={}, name="x")
    assert sample("qorch_reconcile_duration_seconds_count", labels) == before + 1
    errors = {"kind": "EntanglementLink", "handler": "failing"}
    before = sample("qorch_reconcile_errors_total", errors)
    with pytest.raises(RuntimeError):
        failing(body={})
    assert sample("qorch_reconcile_errors_total", errors) == before + 1
