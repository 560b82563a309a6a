"""The agent's stats file and span spool: what the sidecar may read, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qorch.agent_protocol import AgentError, ErrorCode, parse_request
from qorch.channel.envelope import current_trace
from qorch.telemetry import tracing
from qorch.telemetry.agent import (
    STATS_FILE,
    AgentTelemetry,
    read_agent_stats,
    write_agent_stats,
)
from qorch.telemetry.spool import SpoolSpanExporter, read_spool
from tests.support import make_node

from .samples import FakeServer, write_full_stats


def test_stats_are_replaced_whole_and_leave_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "t" / STATS_FILE
    write_agent_stats(path, {"version": 1, "node": "a", "programs": 1})
    write_agent_stats(path, {"version": 1, "node": "a", "programs": 2})
    assert json.loads(path.read_text())["programs"] == 2
    assert [p.name for p in path.parent.iterdir()] == [STATS_FILE]


def test_unreadable_or_foreign_stats_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / STATS_FILE
    assert read_agent_stats(path) is None
    path.write_text("{not json")
    assert read_agent_stats(path) is None
    path.write_text(json.dumps({"version": 99, "node": "a"}))
    assert read_agent_stats(path) is None


def test_program_counts_durations_and_channel_counters(tmp_path: Path) -> None:
    write_full_stats(tmp_path)
    stats = read_agent_stats(tmp_path / STATS_FILE)
    assert stats is not None
    assert (stats["programs"], stats["programErrors"], stats["shots"]) == (2, 1, 1500)
    assert stats["busySeconds"] == 1.61
    buckets = dict(stats["programSeconds"]["buckets"])
    assert buckets[0.1] == 1 and buckets[2.5] == 2  # cumulative
    assert stats["programSeconds"]["count"] == 2
    assert stats["lastProgramSeconds"] == [0.09, 1.52]
    assert stats["channel"]["handshakes"] == 3
    assert stats["calibration"]["twoQubitError"] == 8e-3


def test_nothing_secret_or_user_written_is_in_the_stats(tmp_path: Path) -> None:
    write_full_stats(tmp_path)
    keys = set(json.loads((tmp_path / STATS_FILE).read_text()))
    assert keys == {
        "version", "node", "writtenAt", "startedAt", "programs", "programErrors", "shots",
        "busySeconds", "programSeconds", "lastProgramSeconds", "requests", "channel",
        "calibration", "spansDropped", "peer",
    }  # fmt: skip


def test_without_a_folder_the_agent_writes_nothing(tmp_path: Path) -> None:
    telemetry = AgentTelemetry.from_env("qpu-a", environ={}, configure=False)
    assert not telemetry.enabled
    telemetry.program_finished(shots=10)
    assert list(tmp_path.iterdir()) == []


def test_from_env_declares_the_noise_the_simulator_runs_with(tmp_path: Path) -> None:
    node = make_node("qpu-a", 4, noise={"twoQubitError": 0.01, "readoutError": 0.02})
    env = {"QORCH_TELEMETRY_DIR": str(tmp_path)}
    telemetry = AgentTelemetry.from_env(node, environ=env, configure=False)
    stats = read_agent_stats(tmp_path / STATS_FILE)
    assert telemetry.enabled and stats is not None
    assert stats["calibration"] == {"twoQubitError": 0.01, "readoutError": 0.02}


async def test_the_traced_handler_counts_spans_and_writes(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    telemetry = AgentTelemetry("qpu-a", tmp_path)
    telemetry.attach(FakeServer())

    async def handle(op: str, payload: dict) -> dict:
        if op == "run":
            telemetry.received(parse_request(op, payload))  # as the agent does
            raise AgentError(ErrorCode.PROGRAM_REJECTED, "no")
        return {"ok": True}

    traced = telemetry.traced(handle)
    trace_id = tracing.new_trace_id()
    with tracing.job_span(trace_id, "dispatch"), tracing.channel_trace():
        carried = current_trace.get()
    token = current_trace.set(carried)  # what the channel server does around the handler
    try:
        assert await traced("health", {}) == {"ok": True}
        try:
            await traced("run", {"programId": "p", "shots": 100, "circuit": "secret"})
        except Exception as exc:
            assert exc.code == "ProgramRejected"
    finally:
        current_trace.reset(token)
    await traced("health", {})  # outside any trace: counted, not traced
    stats = read_agent_stats(tmp_path / STATS_FILE)
    assert stats is not None and stats["requests"] == {"health": 2, "run": 1}
    agent_spans = [s for s in spans.get_finished_spans() if s.name.startswith("agent.")]
    assert sorted(s.name for s in agent_spans) == ["agent.health", "agent.run"]
    run = next(s for s in agent_spans if s.name == "agent.run")
    assert f"{run.context.trace_id:032x}" == trace_id
    assert run.attributes["qorch.code"] == "ProgramRejected"
    assert run.attributes["qorch.shots"] == 100
    assert not run.events  # no exception text (it may quote the request)
    assert "secret" not in json.dumps([dict(s.attributes) for s in agent_spans])


def test_spans_survive_the_spool_intact(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    trace_id = tracing.new_trace_id()
    with (
        tracing.job_span(trace_id, "dispatch", {"qorch.job": "ghz"}) as parent,
        tracing.client_span("execute", {"qorch.node": "qpu-a"}),
    ):
        pass
    original = list(spans.get_finished_spans())
    spool = SpoolSpanExporter(tmp_path)
    spool.export(original)
    [(path, restored)] = list(read_spool(tmp_path))
    assert path.name.endswith(".spans.jsonl")
    for a, b in zip(original, restored, strict=True):
        assert (a.name, a.context.trace_id, a.context.span_id) == (
            b.name,
            b.context.trace_id,
            b.context.span_id,
        )
        assert (a.parent.span_id if a.parent else None) == (b.parent.span_id if b.parent else None)
        assert (a.start_time, a.end_time, a.kind) == (b.start_time, b.end_time, b.kind)
        assert dict(a.attributes) == dict(b.attributes)
    execute = next(s for s in restored if s.name == "execute")
    assert execute.parent.span_id == parent.get_span_context().span_id


def test_a_full_spool_drops_and_counts(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    with tracing.job_span(tracing.new_trace_id(), "admit"):
        pass
    batch = spans.get_finished_spans()
    spool = SpoolSpanExporter(tmp_path, max_files=2)
    for _ in range(3):
        spool.export(batch)
    assert len(list(read_spool(tmp_path))) == 2
    assert spool.dropped == len(batch)
