"""Traces: export only when configured, one trace per job attempt, context over the channel."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from qorch.channel.envelope import current_trace
from qorch.telemetry import tracing


def processors(provider):  # the SDK keeps them in its multi-processor
    return list(provider._active_span_processor._span_processors)


def test_nothing_is_exported_without_an_endpoint() -> None:
    provider = tracing.configure_tracing("qorch-test", environ={})
    try:
        assert processors(provider) == []
        with tracing.job_span(tracing.new_trace_id(), "admit") as span:
            assert span.get_span_context().is_valid  # real ids all the same
    finally:
        tracing.shutdown_tracing()


def test_an_otlp_endpoint_turns_on_batched_otlp_export() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.exporting_configured(env)
    assert not tracing.exporting_configured({**env, "OTEL_SDK_DISABLED": "true"})
    assert not tracing.exporting_configured({**env, "OTEL_TRACES_EXPORTER": "none"})
    provider = tracing.configure_tracing("qorch-test", environ=env)
    try:
        [processor] = processors(provider)
        assert isinstance(processor, BatchSpanProcessor)
        assert type(processor.span_exporter).__name__ == "OTLPSpanExporter"
    finally:
        tracing.shutdown_tracing()  # no span was made: nothing is sent


def test_a_job_trace_id_carries_its_start_and_its_root() -> None:
    start = time.time_ns()
    trace_id = tracing.new_trace_id(start)
    assert len(trace_id) == 32 and tracing.valid_trace_id(trace_id)
    assert tracing.trace_start_ns(trace_id) == start
    assert tracing.root_span_id(trace_id) == int(trace_id[16:], 16)
    assert tracing.new_trace_id(start) != trace_id
    assert not tracing.valid_trace_id("0" * 32) and not tracing.valid_trace_id("xyz")


def test_steps_hang_under_the_root_emitted_at_the_end(spans: InMemorySpanExporter) -> None:
    trace_id = tracing.new_trace_id()
    with tracing.job_span(trace_id, "admit", {"qorch.job": "ghz"}):
        assert tracing.current_trace_id() == trace_id
        with tracing.step_span("sanitize"):
            pass
    with tracing.job_span(trace_id, "plan"):
        pass
    tracing.finish_job_trace(trace_id, ok=True)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert set(by_name) == {"admit", "sanitize", "plan", "job"}
    root = by_name["job"]
    assert f"{root.context.trace_id:032x}" == trace_id
    assert root.context.span_id == tracing.root_span_id(trace_id)
    assert root.parent is None
    assert root.start_time == tracing.trace_start_ns(trace_id) <= by_name["admit"].start_time
    assert by_name["admit"].parent.span_id == root.context.span_id
    assert by_name["plan"].parent.span_id == root.context.span_id
    assert by_name["sanitize"].parent.span_id == by_name["admit"].context.span_id
    assert {s.context.trace_id for s in by_name.values()} == {root.context.trace_id}


def test_step_spans_outside_a_trace_record_nothing(spans: InMemorySpanExporter) -> None:
    with tracing.step_span("sanitize") as span:
        assert not span.is_recording()
    assert spans.get_finished_spans() == ()


def test_trace_context_rides_the_channel_as_w3c_headers(spans: InMemorySpanExporter) -> None:
    trace_id = tracing.new_trace_id()
    with tracing.job_span(trace_id, "dispatch"), tracing.client_span("execute") as client:
        assert current_trace.get() is None
        with tracing.channel_trace() as headers:
            assert current_trace.get() == headers
            carried = dict(headers)
        assert current_trace.get() is None
    assert carried["traceparent"].split("-")[1] == trace_id
    assert carried["traceparent"].split("-")[2] == f"{client.get_span_context().span_id:016x}"
    # the agent's side
    with tracing.server_span("agent.run", carried, {"qorch.node": "qpu-a"}):
        pass
    server = next(s for s in spans.get_finished_spans() if s.name == "agent.run")
    assert server.kind is SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == trace_id
    assert server.parent.span_id == client.get_span_context().span_id


def test_calls_outside_any_trace_make_no_agent_spans(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("agent.health", None) as span:
        assert not span.is_recording()
    with tracing.server_span("agent.health", {"traceparent": "garbage"}) as span:
        assert not span.is_recording()
    assert spans.get_finished_spans() == ()
