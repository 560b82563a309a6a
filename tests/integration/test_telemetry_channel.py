"""Telemetry across the real post-quantum channel: a job's trace reaches the agent, and the
agent's stats count its handshakes (feed-forward latency: test_link_latency)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.api.manifests import load_manifests
from qorch.channel.http import ChannelServer
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.job import JobPipeline
from qorch.pipeline.reservations import Reservations
from qorch.qpu.agent import QpuAgent
from qorch.qpu.transport import AgentConnections
from qorch.telemetry import metrics as m
from qorch.telemetry import tracing
from qorch.telemetry.agent import STATS_FILE, AgentTelemetry, read_agent_stats
from qorch.telemetry.instrument import instrument_agent_client, instrument_step
from tests.support import REPO

OPERATOR = Identity.generate()


async def serve_agent(node: QuantumNode, stats_dir: Path) -> tuple[web.AppRunner, str, bytes]:
    """A QPU agent in this process behind a real ChannelServer, with its telemetry hooks."""
    agent = QpuAgent(node)
    telemetry = AgentTelemetry(node.metadata.name, stats_dir)

    identity = Identity.generate()
    app = web.Application()
    telemetry.attach(
        ChannelServer(identity, [OPERATOR.public_key], telemetry.traced(agent.handle))
    ).add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", identity.public_key


class World:
    def __init__(self, nodes: list[QuantumNode], endpoints: dict[str, tuple[str, bytes]]) -> None:
        self.node_list = nodes
        self.endpoints = endpoints
        self.connections = AgentConnections(OPERATOR)

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return self.node_list

    def links(self, namespace: str) -> list[EntanglementLink]:
        return []

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def agent(self, node: QuantumNode) -> Any:
        endpoint, key = self.endpoints[node.metadata.name]
        client = self.connections.get(node.metadata.name, endpoint, key)
        return instrument_agent_client(node.metadata.namespace, node.metadata.name, client)

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        return None


@pytest.fixture
async def quickstart(
    tmp_path: Path,
) -> AsyncIterator[tuple[World, list[DistributedJob], list[EntanglementLink]]]:
    manifests = load_manifests([str(REPO / "examples/quickstart")])
    runners, endpoints = [], {}
    for node in manifests.nodes:
        node.status.phase = "Ready"
        runner, endpoint, key = await serve_agent(node, tmp_path / node.metadata.name)
        runners.append(runner)
        endpoints[node.metadata.name] = (endpoint, key)
        node.spec.identity.public_key = encode_public_key(key)
    world = World(manifests.nodes, endpoints)
    yield world, manifests.jobs, manifests.links
    await world.connections.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("qorch-test", exporter=exporter, environ={})
    yield exporter
    tracing.shutdown_tracing()


class TracedPipeline(JobPipeline):
    step = instrument_step(JobPipeline.step)


Drive = Callable[[DistributedJob], Awaitable[DistributedJob]]


async def test_the_agents_span_is_under_the_pipelines_trace(
    quickstart: Any, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    world, jobs, _ = quickstart
    job = jobs[0]
    job.metadata.uid = "uid-1"
    pipeline = TracedPipeline(world, Reservations())
    while job.status.phase not in ("Succeeded", "Failed", "Rejected"):
        job.status = (await pipeline.step(job)).status
    assert job.status.phase == "Succeeded", job.status.message

    finished = spans.get_finished_spans()
    agent_run = next(s for s in finished if s.name == "agent.run")
    by_id = {s.context.span_id: s for s in finished}
    chain = []
    span = agent_run
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        chain.append(span.name)
    assert chain == ["execute", "dispatch", "job"]
    assert f"{agent_run.context.trace_id:032x}" == job.status.trace_id

    node = job.status.plan.nodes if job.status.plan else ""
    stats = read_agent_stats(tmp_path / node / STATS_FILE)
    assert stats is not None
    assert stats["channel"]["handshakes"] >= 1 and stats["requests"]["run"] == 1
    labels = {"namespace": "default", "node": node}
    assert (m.REGISTRY.get_sample_value("qorch_channel_handshakes_total", labels) or 0) >= 1
