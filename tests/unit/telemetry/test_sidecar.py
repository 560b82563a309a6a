"""The telemetry sidecar: the agent's stats as metrics, spans forwarded."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from qorch.telemetry import tracing
from qorch.telemetry.agent import STATS_FILE
from qorch.telemetry.sidecar import AgentStatsCollector, SpanForwarder
from qorch.telemetry.spool import SpoolSpanExporter

from .samples import write_full_stats

NODE = {"namespace": "lab", "node": "qpu-a"}


def scrape(
    folder: Path, *, now: float | None = None, stale_after: float = 120
) -> CollectorRegistry:
    registry = CollectorRegistry()
    clock = (lambda: now) if now is not None else __import__("time").time
    registry.register(
        AgentStatsCollector({("lab", "qpu-a"): folder}, stale_after=stale_after, clock=clock)
    )
    return registry


def test_the_agents_stats_become_the_nodes_metrics(tmp_path: Path) -> None:
    write_full_stats(tmp_path)
    r = scrape(tmp_path)
    assert r.get_sample_value("qorch_agent_up", NODE) == 1
    assert r.get_sample_value("qorch_agent_programs_total", NODE) == 2
    assert r.get_sample_value("qorch_agent_program_errors_total", NODE) == 1
    assert r.get_sample_value("qorch_agent_shots_total", NODE) == 1500
    assert r.get_sample_value("qorch_agent_busy_seconds_total", NODE) == 1.61
    assert r.get_sample_value("qorch_agent_requests_total", {**NODE, "op": "run"}) == 2
    assert r.get_sample_value("qorch_agent_channel_handshakes_total", NODE) == 3
    assert r.get_sample_value("qorch_agent_channel_refusals_total", NODE) == 2
    assert r.get_sample_value("qorch_agent_channel_auth_failures_total", NODE) == 1
    assert r.get_sample_value("qorch_agent_channel_sessions", NODE) == 1
    peer = {**NODE, "direction": "received"}
    assert r.get_sample_value("qorch_agent_peer_messages_total", peer) == 3
    assert r.get_sample_value("qorch_agent_peer_messages_total", {**NODE, "direction": "sent"}) == 4
    assert r.get_sample_value("qorch_agent_calibration_fidelity_ratio", NODE) == 0.99
    gate = {**NODE, "gate": "two_qubit"}
    assert r.get_sample_value("qorch_agent_gate_error_ratio", gate) == 8e-3
    bucket = {**NODE, "le": "0.1"}
    assert r.get_sample_value("qorch_agent_program_duration_seconds_bucket", bucket) == 1
    inf = {**NODE, "le": "+Inf"}
    assert r.get_sample_value("qorch_agent_program_duration_seconds_bucket", inf) == 2
    assert r.get_sample_value("qorch_agent_program_duration_seconds_count", NODE) == 2


def test_stale_missing_or_foreign_stats_read_as_down(tmp_path: Path) -> None:
    assert scrape(tmp_path).get_sample_value("qorch_agent_up", NODE) == 0
    write_full_stats(tmp_path)
    written = json.loads((tmp_path / STATS_FILE).read_text())["writtenAt"]
    stale = scrape(tmp_path, now=written + 121)
    assert stale.get_sample_value("qorch_agent_up", NODE) == 0
    assert stale.get_sample_value("qorch_agent_stats_age_seconds", NODE) == 121
    write_full_stats(tmp_path, node="someone-else")
    assert scrape(tmp_path).get_sample_value("qorch_agent_up", NODE) == 0


def test_malformed_fields_are_skipped_not_fatal(tmp_path: Path) -> None:
    stats = {
        "version": 1,
        "node": "qpu-a",
        "writtenAt": __import__("time").time(),
        "programs": "many",
        "shots": True,
        "programSeconds": {"buckets": [["x", 1], [1.0]], "sum": 1, "count": 1},
        "requests": {"run": "x", "echo": 4},
    }
    (tmp_path / STATS_FILE).write_text(json.dumps(stats))
    r = scrape(tmp_path)
    assert r.get_sample_value("qorch_agent_up", NODE) == 1
    assert r.get_sample_value("qorch_agent_programs_total", NODE) is None
    assert r.get_sample_value("qorch_agent_shots_total", NODE) is None
    assert r.get_sample_value("qorch_agent_requests_total", {**NODE, "op": "echo"}) == 4


def spool_one_batch(folder: Path, spans: InMemorySpanExporter) -> int:
    with tracing.job_span(tracing.new_trace_id(), "dispatch"):
        pass
    batch = spans.get_finished_spans()
    SpoolSpanExporter(folder).export(batch)
    spans.clear()
    return len(batch)


def test_spooled_spans_are_forwarded_then_deleted(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    n = spool_one_batch(tmp_path, spans)
    sink = InMemorySpanExporter()
    registry = CollectorRegistry()
    forwarder = SpanForwarder(tmp_path, sink, ("lab", "qpu-a"), registry)
    assert forwarder.forward_once() == n
    assert [s.name for s in sink.get_finished_spans()] == ["dispatch"]
    assert list(tmp_path.glob("*.jsonl")) == []
    assert registry.get_sample_value("qorch_sidecar_spans_forwarded_total", NODE) == n


def test_without_an_endpoint_spans_are_discarded(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    n = spool_one_batch(tmp_path, spans)
    registry = CollectorRegistry()
    SpanForwarder(tmp_path, None, ("lab", "qpu-a"), registry).forward_once()
    assert list(tmp_path.glob("*.jsonl")) == []
    assert registry.get_sample_value("qorch_sidecar_spans_discarded_total", NODE) == n


def test_a_failed_export_keeps_the_batch_for_the_next_round(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    spool_one_batch(tmp_path, spans)

    class Down(InMemorySpanExporter):
        def export(self, batch):  # type: ignore[no-untyped-def]
            return SpanExportResult.FAILURE

    registry = CollectorRegistry()
    assert SpanForwarder(tmp_path, Down(), ("lab", "qpu-a"), registry).forward_once() == 0
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
    assert registry.get_sample_value("qorch_sidecar_export_failures_total", NODE) == 1
