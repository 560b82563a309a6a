"""Instrumentation the pipeline, the drivers and the agents hook in with one line each.

    @instrument_step                  on JobPipeline.step: step spans, the job trace id in
                                      status.traceId, step and job metrics
    @observed_node_check              on pipeline.resources.check_node: node metrics
    @observed_link_check              on pipeline.resources.check_link: link metrics
    instrument_agent_client(...)      around an AgentClient: request metrics, handshakes,
                                      authentication failures, `execute` client spans whose
                                      context rides the channel to the agent
    @timed_reconcile(kind)            under a kopf handler's decorators: reconcile duration

Everything here reads the objects duck-typed, so this module imports nothing of the
pipeline (which imports telemetry) and nothing of Kubernetes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from opentelemetry.trace import Status, StatusCode

from qorch.agent_protocol import OPERATIONS, ErrorCode, Op
from qorch.api.distributed_job import STRATEGIES
from qorch.api.phases import JobPhases, LinkPhases, NodePhases
from qorch.channel.errors import REFUSAL_CODES
from qorch.sanitizer.catalog import RULES

from . import metrics as m
from . import tracing

TERMINAL = JobPhases.TERMINAL
STEP_NAMES = {
    JobPhases.PENDING: "admit",
    JobPhases.ADMITTED: "plan",
    JobPhases.PLANNED: "start-attempt",
    JobPhases.RUNNING: "dispatch",
}
# Codes of failed agent calls that are authentication failures of the channel.
AUTH_FAILURE_CODES = frozenset(
    {
        "PeerKeyMismatch",
        "AuthenticationFailed",
        "UntrustedPeer",
        ErrorCode.IDENTITY_NOT_PINNED,
        # A node key outside its rotation window, or an identity spec that cannot be pinned.
        "KeyRetired",
        "KeyNotYetValid",
        "InvalidIdentity",
    }
)
# Result codes a label may take; anything else an agent sends becomes "Other".
KNOWN_CODES = frozenset(
    {
        "ok",
        *ErrorCode,
        "NodeMissing",
        "RemoteError",
        "ChannelError",
        "CancelledError",
        *REFUSAL_CODES,
        *AUTH_FAILURE_CODES,
    }
)

F = TypeVar("F", bound=Callable[..., Any])


def bounded_code(code: object) -> str:
    return str(code) if isinstance(code, str) and code in KNOWN_CODES else "Other"


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        a = datetime.strptime(start, fmt).replace(tzinfo=UTC)
        b = datetime.strptime(end, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (b - a).total_seconds()


def _job_key(job: Any) -> str:
    meta = job.metadata
    return f"{meta.namespace}/{meta.name}/{meta.uid or ''}"


# -- the pipeline ---------------------------------------------------------------------------


class _OrchestratorTime:
    """Seconds each in-flight job spent in the orchestrator (this process's view)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self._seconds[key] = self._seconds.get(key, 0.0) + max(0.0, seconds)

    def pop(self, key: str) -> float | None:
        with self._lock:
            return self._seconds.pop(key, None)


_ORCHESTRATOR = _OrchestratorTime()


def _agent_seconds(status: Any) -> float:
    """Execution time the agents reported for the attempt (programs run in parallel)."""
    return max((p.seconds or 0.0 for p in status.progress or ()), default=0.0)


def _shortest_t2_seconds(pipeline: Any, namespace: str, names: set[str]) -> float | None:
    world = getattr(pipeline, "world", None)
    if world is None or not names:
        return None
    t2s = []
    for node in world.nodes(namespace):
        if node.metadata.name in names:
            noise = node.spec.noise
            t2 = noise.t2_microseconds or noise.t1_microseconds
            if t2:
                t2s.append(t2 * 1e-6)
    return min(t2s) if t2s else None


def record_job_outcome(
    job: Any, status: Any, pipeline: Any = None, metrics: m.QorchMetrics | None = None
) -> None:
    """Metrics of a job that just reached a terminal phase (its counter excepted, which
    `JobPipeline._finish` increments): fidelity, variance, coherence usage, durations,
    Bell pairs consumed."""
    record = (metrics or m.METRICS).record
    plan = status.plan
    strategy = plan.strategy if plan else "none"
    phase = status.phase
    key = _job_key(job)
    orchestrator = _ORCHESTRATOR.pop(key)
    duration = _seconds_between(status.timings.admitted_at, status.timings.finished_at)
    if duration is not None:
        record("qorch_job_duration_seconds", duration, phase=phase, strategy=strategy)
    if phase != JobPhases.SUCCEEDED or plan is None:
        return
    if orchestrator is not None:
        record("qorch_orchestrator_latency_seconds", orchestrator, strategy=strategy)
    result = status.result
    verification = result.verification if result else None
    if verification is not None and verification.hellinger_fidelity is not None:
        record("qorch_job_fidelity_ratio", verification.hellinger_fidelity, strategy=strategy)
    if plan.estimated_fidelity is not None:
        record("qorch_job_estimated_fidelity_ratio", plan.estimated_fidelity, strategy=strategy)
    variance = m.measurement_variance(
        result.counts if result else None, result.standard_errors if result else None
    )
    if variance is not None:
        record("qorch_measurement_variance", variance, strategy=strategy)
    stats = status.sanitizer.stats if status.sanitizer else {}
    seconds = stats.get("estimatedDurationSeconds")
    nodes = {p.node for p in plan.placement}
    t2 = _shortest_t2_seconds(pipeline, job.metadata.namespace, nodes)
    if seconds is not None and t2:
        record("qorch_coherence_window_usage_ratio", float(seconds) / t2, strategy=strategy)
    shots = sum(p.shots for p in plan.programs) or job.spec.shots
    for use in plan.bell_pairs:
        consumed = (use.raw_bell_pairs or use.bell_pairs) * shots  # purification's included
        if consumed > 0:
            record(
                "qorch_bell_pairs_consumed_total",
                consumed,
                namespace=job.metadata.namespace,
                link=use.link,
            )


def instrument_step(step: F) -> F:
    """Decorate `JobPipeline.step(self, job) -> StepResult`.

    Opens the step's span in the job attempt's trace (a new trace at admission and at each
    new attempt, its id written to `status.traceId`), emits the trace's root span when the
    attempt ends, and records step durations, jobs by phase, and at the end the job's
    outcome metrics. Decorating twice is harmless.
    """
    if getattr(step, "__qorch_instrumented__", False):
        return step

    @functools.wraps(step)
    async def wrapper(self: Any, job: Any) -> Any:
        before = job.status.phase
        if before in TERMINAL:
            return await step(self, job)
        name = STEP_NAMES.get(before, before.lower())
        trace_id = job.status.trace_id
        new_attempt = before == JobPhases.PLANNED and job.status.attempt > 0
        if new_attempt and tracing.valid_trace_id(trace_id):
            tracing.finish_job_trace(trace_id, ok=False, attributes=_job_attributes(job))
        if new_attempt or not tracing.valid_trace_id(trace_id):
            trace_id = tracing.new_trace_id()
        key = _job_key(job)
        started = time.perf_counter()
        with tracing.job_span(trace_id, name, _job_attributes(job)) as span:
            result = await step(self, job)
            status = result.status
            span.set_attribute("qorch.phase", status.phase)
            if status.phase in (JobPhases.FAILED, JobPhases.REJECTED):
                span.set_status(Status(StatusCode.ERROR, status.message[:200]))
        elapsed = time.perf_counter() - started
        m.METRICS.record("qorch_pipeline_step_duration_seconds", elapsed, step=name)
        _ORCHESTRATOR.add(key, elapsed - _agent_seconds(status) if name == "dispatch" else elapsed)
        if status.trace_id != trace_id:
            if status is job.status:
                status = status.model_copy(deep=True)
                result = dataclasses.replace(result, status=status)
            status.trace_id = trace_id
        m.METRICS.track_job_phase(key, status.phase)
        if status.phase in TERMINAL:
            tracing.finish_job_trace(
                trace_id,
                ok=status.phase == JobPhases.SUCCEEDED,
                attributes={**_job_attributes(job), "qorch.phase": status.phase},
            )
            record_job_outcome(job, status, self)
        return result

    wrapper.__qorch_instrumented__ = True  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _job_attributes(job: Any) -> dict[str, Any]:
    return {
        "k8s.namespace.name": job.metadata.namespace,
        "qorch.job": job.metadata.name,
        "qorch.attempt": int(job.status.attempt),
    }


# -- nodes and links ------------------------------------------------------------------------

# A feedforward wait may use at most this fraction of the shorter T2 of a link's nodes.
COHERENCE_BUDGET_FRACTION = 0.1
NODE_PHASES: tuple[str, ...] = NodePhases.ALL
LINK_PHASES: tuple[str, ...] = LinkPhases.ALL


def record_node(
    node: Any, status: Any | None = None, metrics: m.QorchMetrics | None = None
) -> None:
    """Node metrics from a QuantumNode and its (new) status: M7 and calibration."""
    record = (metrics or m.METRICS).record
    status = status or node.status
    noise = node.spec.noise
    calibration = status.calibration
    measured = calibration is not None and calibration.measured_at is not None

    def pick(measured_value: float | None, declared: float | None) -> float | None:
        return measured_value if measured and measured_value is not None else declared

    labels = {"namespace": node.metadata.namespace, "node": node.metadata.name}
    record("qorch_node_up", 1 if status.phase == NodePhases.READY else 0, **labels)
    for phase in NODE_PHASES:
        record("qorch_node_phase", int(phase == status.phase), **labels, phase=phase)
    if node.spec.qubits is not None:
        record("qorch_node_qubits", node.spec.qubits, **labels)
    if status.allocated_qubits is not None:
        record("qorch_node_allocated_qubits", status.allocated_qubits, **labels)
    if calibration is not None and calibration.fidelity is not None:
        record("qorch_node_calibration_fidelity_ratio", calibration.fidelity, **labels)
    gate_errors = {
        "single_qubit": pick(
            calibration.single_qubit_error if calibration else None, noise.single_qubit_error
        ),
        "two_qubit": pick(
            calibration.two_qubit_error if calibration else None, noise.two_qubit_error
        ),
        "readout": pick(calibration.readout_error if calibration else None, noise.readout_error),
    }
    for gate, error in gate_errors.items():
        if error is not None:
            record("qorch_node_gate_error_ratio", error, **labels, gate=gate)


def link_coherence_budget_seconds(link: Any, nodes: dict[str, Any]) -> float | None:
    t2s = []
    for name in link.spec.nodes:
        node = nodes.get(name)
        if node is not None:
            t2 = node.spec.noise.t2_microseconds or node.spec.noise.t1_microseconds
            if t2:
                t2s.append(t2 * 1e-6)
    return COHERENCE_BUDGET_FRACTION * min(t2s) if t2s else None


def record_link(
    link: Any, status: Any, nodes: dict[str, Any], metrics: m.QorchMetrics | None = None
) -> None:
    """Link metrics from an EntanglementLink, its (new) status and the nodes by name."""
    metrics = metrics or m.METRICS
    record = metrics.record
    labels = {"namespace": link.metadata.namespace, "link": link.metadata.name}
    record("qorch_link_up", 1 if status.phase == LinkPhases.UP else 0, **labels)
    metrics.declare("qorch_bell_pairs_consumed_total", **labels)
    for phase in LINK_PHASES:
        record("qorch_link_phase", int(phase == status.phase), **labels, phase=phase)
    figures = {
        "qorch_link_declared_fidelity_ratio": link.spec.fidelity,
        "qorch_link_declared_success_ratio": link.spec.success_probability,
        "qorch_link_measured_fidelity_ratio": status.measured_fidelity,
        "qorch_link_coherence_budget_seconds": link_coherence_budget_seconds(link, nodes),
    }
    for name, value in figures.items():
        if value is not None:
            record(name, value, **labels)


def observed_node_check(check: F) -> F:
    """Decorate `check_node(node, client, endpoint, allocated) -> QuantumNodeStatus`."""

    @functools.wraps(check)
    async def wrapper(node: Any, *args: Any, **kwargs: Any) -> Any:
        status = await check(node, *args, **kwargs)
        record_node(node, status)
        return status

    return cast(F, wrapper)


def observed_link_check(check: F) -> F:
    """Decorate `check_link(link, nodes) -> EntanglementLinkStatus`."""

    @functools.wraps(check)
    def wrapper(link: Any, nodes: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        status = check(link, nodes, *args, **kwargs)
        record_link(link, status, nodes)
        return status

    return cast(F, wrapper)


# -- agent clients --------------------------------------------------------------------------

_handshakes_seen: WeakKeyDictionary[Any, int] = WeakKeyDictionary()


def _handshake_count(client: Any) -> int | None:
    """Handshakes a SecureAgentClient's channel has completed (public attribute when the
    client has one, else its ChannelClient's)."""
    for holder in (client, getattr(client, "_channel", None)):
        count = getattr(holder, "handshakes", None)
        if isinstance(count, int):
            return count
    return None


class InstrumentedAgentClient:
    """An AgentClient that measures its calls and carries the trace across the channel."""

    def __init__(
        self, namespace: str, node: str, inner: Any, metrics: m.QorchMetrics | None = None
    ) -> None:
        self.namespace = namespace
        self.node = node
        self.inner = inner
        self._metrics = metrics or m.METRICS
        self._labels = {"namespace": namespace, "node": node}

    def __getattr__(self, name: str) -> Any:  # endpoint and the like
        return getattr(self.inner, name)

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        span_name = "execute" if op == Op.RUN else f"agent.{op}"
        attributes = {"qorch.node": self.node, "qorch.op": op, "k8s.namespace.name": self.namespace}
        code = "ok"
        started = time.perf_counter()
        with tracing.client_span(span_name, attributes) as span, tracing.channel_trace():
            try:
                reply = await self.inner.call(op, payload, timeout=timeout)
            except BaseException as exc:
                code = bounded_code(getattr(exc, "code", None) or type(exc).__name__)
                if code in AUTH_FAILURE_CODES:
                    self._metrics.record(
                        "qorch_channel_auth_failures_total", **self._labels, reason=code
                    )
                if span.is_recording():
                    span.set_attribute("qorch.code", code)
                    span.set_status(Status(StatusCode.ERROR, code))
                raise
            finally:
                op_label = op if op in OPERATIONS else "other"
                seconds = time.perf_counter() - started
                self._metrics.record(
                    "qorch_channel_calls_total", **self._labels, op=op_label, code=code
                )
                self._metrics.record(
                    "qorch_channel_call_duration_seconds", seconds, **self._labels, op=op_label
                )
                self._count_handshakes()
        return reply

    def _count_handshakes(self) -> None:
        count = _handshake_count(self.inner)
        if count is None:
            return
        try:
            seen = _handshakes_seen.get(self.inner, 0)
            _handshakes_seen[self.inner] = count
        except TypeError:  # not weak-referenceable
            return
        if count > seen:
            self._metrics.record("qorch_channel_handshakes_total", count - seen, **self._labels)

    async def close(self) -> None:
        await self.inner.close()


def instrument_agent_client(namespace: str, node: str, client: Any) -> Any:
    """Wrap the agent connection of node `namespace/node` (one-line hook where a driver
    returns an AgentClient); wrapping twice is harmless."""
    if isinstance(client, InstrumentedAgentClient):
        return client
    return InstrumentedAgentClient(namespace, node, client)


# -- operator handlers ----------------------------------------------------------------------


#: (kind, handler) of every handler `timed_reconcile` wraps, for `declare_operator_series`.
_RECONCILERS: set[tuple[str, str]] = set()


def declare_operator_series() -> None:
    """The operator's series whose label values are known before the first event: jobs
    finished (Succeeded and Failed, per strategy; M5's ratio and its burn-rate alerts),
    sanitizer rejections per rule and handler errors per handler. Per-node and per-link
    series appear with their objects."""
    for strategy in STRATEGIES:
        for phase in (JobPhases.SUCCEEDED, JobPhases.FAILED):
            m.METRICS.declare("qorch_jobs_finished_total", phase=phase, strategy=strategy)
    for rule in RULES:
        m.METRICS.declare("qorch_sanitizer_rejections_total", rule=rule)
    for kind, handler in sorted(_RECONCILERS):
        m.METRICS.declare("qorch_reconcile_errors_total", kind=kind, handler=handler)


def _record_reconcile(kind: str, handler: str, seconds: float, failed: bool) -> None:
    m.METRICS.record("qorch_reconcile_duration_seconds", seconds, kind=kind, handler=handler)
    if failed:
        m.METRICS.record("qorch_reconcile_errors_total", kind=kind, handler=handler)


def timed_reconcile(kind: str, handler: str | None = None) -> Callable[[F], F]:
    """Decorate a kopf handler (below kopf's decorators) to record its duration and errors
    as `qorch_reconcile_duration_seconds{kind, handler}`; kopf still sees the signature."""

    def decorate(fn: F) -> F:
        name = handler or fn.__name__
        _RECONCILERS.add((kind, name))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                failed = True
                try:
                    result = await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                    failed = False
                    return result
                finally:
                    _record_reconcile(kind, name, time.perf_counter() - started, failed)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                result = fn(*args, **kwargs)
                failed = False
                return result
            finally:
                _record_reconcile(kind, name, time.perf_counter() - started, failed)

        return cast(F, sync_wrapper)

    return decorate
