"""OpenTelemetry traces: one trace per job attempt, carried across the channel to agents.

Set-up (`configure_tracing`) exports OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not true; otherwise
spans still get real ids (so `status.traceId` means something and context still crosses
the channel) but nothing is exported and nothing touches the network.

A job attempt's trace outlives any one step of the state machine, and the operator may
restart in between, so nothing of it is held in memory. Its trace id is the only state,
kept in `status.traceId`, and everything else derives from it:

  - the trace id's first 8 bytes are the attempt's start time (ns since the epoch, as
    AWS X-Ray does), the last 8 are random (W3C's random trace-id flag holds);
  - the root span ("job") has a span id derived from the trace id; steps are its children
    through a remote parent context, and the root itself is emitted once, when the attempt
    ends, from the start time in the id to the end.

Spans of one attempt: job > admit > {sanitize, authorize}, plan, start-attempt, dispatch >
{execute (one per program, CLIENT) > agent.run (SERVER, in the agent), aggregate}.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from qorch.channel.envelope import current_trace

log = logging.getLogger(__name__)

TRACER_NAME = "qorch"
ROOT_SPAN = "job"
_PROPAGATOR = TraceContextTextMapPropagator()
_MASK64 = (1 << 64) - 1

# -- ids ------------------------------------------------------------------------------------

_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "qorch_forced_span_ids", default=None
)


class _JobIdGenerator(IdGenerator):
    """Random ids, except for a job's root span, whose ids derive from its trace id."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else self._random.generate_trace_id()


def new_trace_id(start_ns: int | None = None) -> str:
    """A fresh trace id (32 hex) for a job attempt starting at `start_ns` (default now)."""
    start = time.time_ns() if start_ns is None else start_ns
    low = 0
    while low == 0:
        low = secrets.randbits(64)
    return f"{((start & _MASK64) << 64) | low:032x}"


def trace_start_ns(trace_id: str) -> int:
    """The start time a job trace id carries."""
    return int(trace_id, 16) >> 64


def root_span_id(trace_id: str) -> int:
    """The span id of a job trace's root span: the id's random half (never zero)."""
    return (int(trace_id, 16) & _MASK64) or 1


def valid_trace_id(value: str | None) -> bool:
    if not value or len(value) != 32:
        return False
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


# -- set-up ---------------------------------------------------------------------------------

_provider: TracerProvider | None = None


def exporting_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for OTLP export."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def otlp_exporter() -> SpanExporter | None:
    """The OTLP/HTTP span exporter (configured by the OTEL_EXPORTER_OTLP_* variables), or
    None when the exporter package is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http"
            " is not installed: spans are not exported"
        )
        return None
    return OTLPSpanExporter()


def configure_tracing(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    processor: SpanProcessor | None = None,
    environ: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, str] | None = None,
) -> TracerProvider:
    """Make the tracer provider qorch's helpers use, and return it.

    `exporter` (tests: an InMemorySpanExporter) gets every span synchronously; `processor`
    is added as it is (the sidecar's spool); otherwise OTLP export in batches when the
    environment configures an endpoint, and no export at all when it does not.
    """
    global _provider
    env = os.environ if environ is None else environ
    attributes: dict[str, Any] = {"service.name": env.get("OTEL_SERVICE_NAME", service_name)}
    attributes.update(resource_attributes or {})
    provider = TracerProvider(
        resource=Resource.create(attributes),
        id_generator=_JobIdGenerator(),
        shutdown_on_exit=False,
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if processor is not None:
        provider.add_span_processor(processor)
    if exporter is None and processor is None and exporting_configured(env):
        otlp = otlp_exporter()
        if otlp is not None:
            provider.add_span_processor(BatchSpanProcessor(otlp))
    previous, _provider = _provider, provider
    if previous is not None:
        previous.shutdown()
    return provider


def tracer_provider() -> TracerProvider:
    """The configured provider; a non-exporting one when nobody configured tracing."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(id_generator=_JobIdGenerator(), shutdown_on_exit=False)
    return _provider


def shutdown_tracing() -> None:
    """Flush and stop the exporters (at process exit)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def tracer() -> trace.Tracer:
    return tracer_provider().get_tracer(TRACER_NAME)


# -- W3C trace context across the channel ----------------------------------------------------


def inject(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """W3C headers (`traceparent`, `tracestate`) of the current span: the channel's `trace`."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a `trace` dict from the channel carries (empty when absent or invalid)."""
    return _PROPAGATOR.extract(dict(carrier or {}))


def current_trace_id() -> str | None:
    """Hex trace id of the current span, or None outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


@contextlib.contextmanager
def channel_trace() -> Iterator[dict[str, str]]:
    """While inside, channel calls carry the current span's context (sets `current_trace`)."""
    headers = inject()
    token = current_trace.set(headers or None)
    try:
        yield headers
    finally:
        current_trace.reset(token)


# -- job traces -----------------------------------------------------------------------------


def job_context(trace_id: str) -> otel_context.Context:
    """A context whose parent is the root span of the job trace `trace_id`."""
    parent = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=root_span_id(trace_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextlib.contextmanager
def job_span(
    trace_id: str, name: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A span of the job trace `trace_id`, child of its root, current while inside."""
    with tracer().start_as_current_span(
        name, context=job_context(trace_id), attributes=dict(attributes or {})
    ) as span:
        yield span


@contextlib.contextmanager
def step_span(name: str, **attributes: Any) -> Iterator[Span]:
    """A child of the current span (e.g. `sanitize` inside `admit`); records nothing
    outside a trace, so the same code runs traced or not."""
    parent = trace.get_current_span()
    if not parent.get_span_context().is_valid:
        yield parent
        return
    with tracer().start_as_current_span(name, attributes=attributes) as span:
        yield span


def finish_job_trace(
    trace_id: str,
    *,
    ok: bool,
    attributes: Mapping[str, Any] | None = None,
    end_ns: int | None = None,
) -> None:
    """Emit the root span of the job trace, from the start its id carries to `end_ns`."""
    if not valid_trace_id(trace_id):
        return
    token = _forced_ids.set((int(trace_id, 16), root_span_id(trace_id)))
    try:
        span = tracer().start_span(
            ROOT_SPAN,
            context=otel_context.Context(),  # no parent: the root
            attributes=dict(attributes or {}),
            start_time=trace_start_ns(trace_id),
        )
    finally:
        _forced_ids.reset(token)
    span.set_status(Status(StatusCode.OK if ok else StatusCode.ERROR))
    span.end(end_time=end_ns or time.time_ns())


@contextlib.contextmanager
def server_span(
    name: str, carrier: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """The agent's span for one channel call, under the caller's span when `carrier` (the
    request's `trace` dict) names one; nothing is recorded for calls outside any trace."""
    ctx = extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(
        name,
        context=ctx,
        kind=SpanKind.SERVER,
        attributes=dict(attributes or {}),
        record_exception=False,  # exception text may quote the request
        set_status_on_exception=False,
    ) as span:
        yield span


def client_span(
    name: str, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Span]:
    """A CLIENT span under the current span, or a no-op outside any trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return contextlib.nullcontext(trace.INVALID_SPAN)
    return tracer().start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=dict(attributes or {}),
        record_exception=False,  # a remote error's text may quote the request
        set_status_on_exception=False,
    )
