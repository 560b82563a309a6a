"""Prometheus metrics of the operator and the pipeline.

Every metric is prefixed `qorch_`, in base units (`_seconds`, ratios 0..1, `_total` for
counters), and labelled only by bounded values: `namespace`, `node`, `link`, `strategy`,
`rule`, `phase`, `step`, `kind`, `handler`, `op`, `code`, `gate`, `reason`. Never a job
name or text a user wrote: those belong in traces and Events.

The signals M1-M10 (README.md beside this file says how each is computed):

    M1  entanglement success rate   qorch_entanglement_{attempts,successes}_total{link}
    M2  end-to-end fidelity         qorch_job_fidelity_ratio{strategy}
    M3  feedforward latency         qorch_feedforward_latency_seconds{link}
    M4  coherence-window usage      qorch_coherence_window_usage_ratio{strategy}
    M5  job success rate            qorch_jobs_finished_total{phase,strategy}
    M6  orchestrator latency        qorch_orchestrator_latency_seconds{strategy}
    M7  node availability           qorch_node_up{node}
    M8  error-budget burn           recording rules over M5 (charts/qorch/rules)
    M9  entanglement latency        qorch_entanglement_latency_seconds{link}
    M10 measurement variance        qorch_measurement_variance{strategy}

The metrics live in one `QorchMetrics` per registry. The process-wide instance `METRICS`
registers on prometheus-client's default registry (with its process and GC collectors);
the module-level functions record into it, so each call site is one line. Tests build
`QorchMetrics(CollectorRegistry())` and never start a server: only
`start_metrics_server` does, when the operator calls it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

NAMESPACE = "qorch"
METRICS_PORT = 9090

# Phases of the kinds (mirrors qorch.api; kept here so this module imports nothing of ours).
NODE_PHASES = ("Pending", "Ready", "Degraded", "Cordoned", "Unreachable")
LINK_PHASES = ("Establishing", "Up", "Degraded", "Down")
ACTIVE_JOB_PHASES = ("Pending", "Admitted", "Planned", "Running")
GATES = ("single_qubit", "two_qubit", "readout")

FIDELITY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 0.995, 1.0)
USAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
FEEDFORWARD_BUCKETS = (
    5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
)  # fmt: skip
ENTANGLEMENT_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0)
VARIANCE_BUCKETS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)


class QorchMetrics:
    """Every metric of the operator process, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        r = registry
        self.registry = registry
        # -- jobs (M2, M4, M5, M6, M10) -----------------------------------------------------
        self.jobs_finished = Counter(
            "qorch_jobs_finished_total",
            "DistributedJobs that reached a terminal phase, by phase and strategy (M5: job"
            " success rate is Succeeded over Succeeded plus Failed; Rejected is the"
            " admission's verdict, not a service failure).",
            ["phase", "strategy"],
            registry=r,
        )
        self.jobs = Gauge(
            "qorch_jobs",
            "DistributedJobs this operator is driving, by non-terminal phase.",
            ["phase"],
            registry=r,
        )
        self.job_fidelity = Histogram(
            "qorch_job_fidelity_ratio",
            "M2 end-to-end fidelity: Hellinger fidelity of a verified job's counts to the"
            " exact distribution, 0..1.",
            ["strategy"],
            buckets=FIDELITY_BUCKETS,
            registry=r,
        )
        self.job_estimated_fidelity = Histogram(
            "qorch_job_estimated_fidelity_ratio",
            "Fidelity the planner estimated for the chosen plan of each finished job, 0..1.",
            ["strategy"],
            buckets=FIDELITY_BUCKETS,
            registry=r,
        )
        self.coherence_window_usage = Histogram(
            "qorch_coherence_window_usage_ratio",
            "M4 coherence-window usage: estimated circuit duration (plus feed-forward waits)"
            " over the shortest T2 of the nodes it ran on; above 1 the result is mostly noise.",
            ["strategy"],
            buckets=USAGE_BUCKETS,
            registry=r,
        )
        self.measurement_variance = Histogram(
            "qorch_measurement_variance",
            "M10 measurement variance of each finished job's estimate: the largest"
            " p(1-p)/shots over its outcomes, or the largest squared standard error of its"
            " expectation values.",
            ["strategy"],
            buckets=VARIANCE_BUCKETS,
            registry=r,
        )
        self.job_duration = Histogram(
            "qorch_job_duration_seconds",
            "Wall time from admission to the terminal phase, by phase and strategy.",
            ["phase", "strategy"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.orchestrator_latency = Histogram(
            "qorch_orchestrator_latency_seconds",
            "M6 orchestrator latency: time a finished job spent in the orchestrator (admit,"
            " plan, dispatch and aggregate), excluding the agents' execution time.",
            ["strategy"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.pipeline_step = Histogram(
            "qorch_pipeline_step_duration_seconds",
            "Duration of one step of the job state machine (admit, plan, start-attempt,"
            " dispatch), agents' execution included.",
            ["step"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.sanitizer_rejections = Counter(
            "qorch_sanitizer_rejections_total",
            "DistributedJobs rejected by the circuit sanitizer, by the first denying rule.",
            ["rule"],
            registry=r,
        )
        self.job_reroutes = Counter(
            "qorch_job_reroutes_total",
            "Running jobs paused and re-planned away from a resource, by the resource's kind"
            " and why (Degraded, Unreachable, AgentFailed, ...).",
            ["kind", "reason"],
            registry=r,
        )
        # -- links (M1, M3, M9) -------------------------------------------------------------
        self.entanglement_attempts = Counter(
            "qorch_entanglement_attempts_total",
            "M1: heralded Bell-pair generation attempts on a link.",
            ["namespace", "link"],
            registry=r,
        )
        self.entanglement_successes = Counter(
            "qorch_entanglement_successes_total",
            "M1: generation attempts that delivered a Bell pair (success rate ="
            " successes / attempts).",
            ["namespace", "link"],
            registry=r,
        )
        self.entanglement_latency = Histogram(
            "qorch_entanglement_latency_seconds",
            "M9 entanglement latency: time from requesting a Bell pair to its herald.",
            ["namespace", "link"],
            buckets=ENTANGLEMENT_BUCKETS,
            registry=r,
        )
        self.bell_pairs_consumed = Counter(
            "qorch_bell_pairs_consumed_total",
            "Bell pairs consumed by jobs on a link.",
            ["namespace", "link"],
            registry=r,
        )
        self.feedforward_latency = Histogram(
            "qorch_feedforward_latency_seconds",
            "M3 feedforward latency, measured: half the round trip of timestamped echoes"
            " between the link's two agents, plus the link's declared classical latency.",
            ["namespace", "link"],
            buckets=FEEDFORWARD_BUCKETS,
            registry=r,
        )
        self.link_feedforward = Gauge(
            "qorch_link_feedforward_latency_seconds",
            "Latest feedforward latency estimate of a link (median of the last probe), the"
            " figure the planner uses.",
            ["namespace", "link"],
            registry=r,
        )
        self.link_coherence_budget = Gauge(
            "qorch_link_coherence_budget_seconds",
            "Longest feedforward latency a link may have: a fixed fraction of the shorter T2"
            " of its two nodes.",
            ["namespace", "link"],
            registry=r,
        )
        self.link_up = Gauge(
            "qorch_link_up",
            "1 when the link is Up, 0 otherwise.",
            ["namespace", "link"],
            registry=r,
        )
        self.link_phase = Gauge(
            "qorch_link_phase",
            "1 for the link's current phase, 0 for the others.",
            ["namespace", "link", "phase"],
            registry=r,
        )
        self.link_declared_fidelity = Gauge(
            "qorch_link_declared_fidelity_ratio",
            "Bell-pair fidelity a link declares (spec.fidelity), 0..1.",
            ["namespace", "link"],
            registry=r,
        )
        self.link_declared_success = Gauge(
            "qorch_link_declared_success_ratio",
            "Success probability per generation attempt a link declares"
            " (spec.successProbability): the target of M1.",
            ["namespace", "link"],
            registry=r,
        )
        self.link_measured_fidelity = Gauge(
            "qorch_link_measured_fidelity_ratio",
            "Bell-pair fidelity of a link measured by its last probe, 0..1.",
            ["namespace", "link"],
            registry=r,
        )
        # -- nodes (M7, calibration) --------------------------------------------------------
        self.node_up = Gauge(
            "qorch_node_up",
            "M7 node availability: 1 when the node is Ready, 0 otherwise.",
            ["namespace", "node"],
            registry=r,
        )
        self.node_phase = Gauge(
            "qorch_node_phase",
            "1 for the node's current phase, 0 for the others.",
            ["namespace", "node", "phase"],
            registry=r,
        )
        self.node_qubits = Gauge(
            "qorch_node_qubits",
            "Qubits a node has (spec.qubits).",
            ["namespace", "node"],
            registry=r,
        )
        self.node_allocated_qubits = Gauge(
            "qorch_node_allocated_qubits",
            "Qubits of a node reserved by running jobs.",
            ["namespace", "node"],
            registry=r,
        )
        self.node_calibration_fidelity = Gauge(
            "qorch_node_calibration_fidelity_ratio",
            "Fidelity measured by the node's last calibration, 0..1.",
            ["namespace", "node"],
            registry=r,
        )
        self.node_gate_error = Gauge(
            "qorch_node_gate_error_ratio",
            "Error per gate (single_qubit, two_qubit) or per readout: measured by the last"
            " calibration, or declared in the spec until one ran.",
            ["namespace", "node", "gate"],
            registry=r,
        )
        # -- channel, agents, reconcile -----------------------------------------------------
        self.channel_handshakes = Counter(
            "qorch_channel_handshakes_total",
            "Post-quantum channel handshakes the operator completed with a node's agent.",
            ["namespace", "node"],
            registry=r,
        )
        self.channel_auth_failures = Counter(
            "qorch_channel_auth_failures_total",
            "Channel authentication failures towards a node, by refusal class (e.g."
            " PeerKeyMismatch, AuthenticationFailed, IdentityNotPinned).",
            ["namespace", "node", "reason"],
            registry=r,
        )
        self.agent_requests = Counter(
            "qorch_channel_calls_total",
            "Calls from the pipeline to a node's agent, by operation and result code (ok, or"
            " the agent error code).",
            ["namespace", "node", "op", "code"],
            registry=r,
        )
        self.agent_request_duration = Histogram(
            "qorch_channel_call_duration_seconds",
            "Round trip of a call from the pipeline to a node's agent, by operation.",
            ["namespace", "node", "op"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "qorch_reconcile_duration_seconds",
            "Duration of one operator handler run, by kind and handler.",
            ["kind", "handler"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "qorch_reconcile_errors_total",
            "Operator handler runs that raised, by kind and handler.",
            ["kind", "handler"],
            registry=r,
        )
        self.build_info = Gauge(
            "qorch_build_info",
            "Always 1; the version label says which qorch runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(version=_version()).set(1)
        self._lock = threading.Lock()
        self._job_phases: dict[str, str] = {}
        for phase in ACTIVE_JOB_PHASES:
            self.jobs.labels(phase=phase).set(0)

    # -- jobs ---------------------------------------------------------------------------------

    def record_job_finished(self, phase: str, strategy: str | None) -> None:
        """A job reached `phase` (Succeeded, Failed or Rejected)."""
        self.jobs_finished.labels(phase=phase, strategy=strategy or "none").inc()

    def track_job_phase(self, key: str, phase: str | None) -> None:
        """The job `key` (namespace/name/uid, never exported) is now in `phase`; None or a
        terminal phase stops counting it."""
        with self._lock:
            previous = self._job_phases.pop(key, None)
            if previous is not None:
                self.jobs.labels(phase=previous).dec()
            if phase in ACTIVE_JOB_PHASES:
                self._job_phases[key] = phase
                self.jobs.labels(phase=phase).inc()

    def observe_job_fidelity(
        self, strategy: str, measured: float | None, estimated: float | None = None
    ) -> None:
        """M2: measured fidelity of a verified job, and the plan's estimate."""
        if measured is not None:
            self.job_fidelity.labels(strategy=strategy).observe(_ratio(measured))
        if estimated is not None:
            self.job_estimated_fidelity.labels(strategy=strategy).observe(_ratio(estimated))

    def observe_coherence_window_usage(self, strategy: str, ratio: float) -> None:
        """M4: estimated duration over the shortest T2 of the nodes used."""
        self.coherence_window_usage.labels(strategy=strategy).observe(max(0.0, ratio))

    def observe_measurement_variance(self, strategy: str, variance: float) -> None:
        """M10: see `measurement_variance` for how the variance is computed."""
        self.measurement_variance.labels(strategy=strategy).observe(max(0.0, variance))

    def observe_job_duration(self, phase: str, strategy: str, seconds: float) -> None:
        self.job_duration.labels(phase=phase, strategy=strategy).observe(max(0.0, seconds))

    def observe_orchestrator_latency(self, strategy: str, seconds: float) -> None:
        """M6: time a finished job spent in the orchestrator, agents' execution excluded."""
        self.orchestrator_latency.labels(strategy=strategy).observe(max(0.0, seconds))

    def observe_pipeline_step(self, step: str, seconds: float) -> None:
        self.pipeline_step.labels(step=step).observe(max(0.0, seconds))

    def record_sanitizer_rejection(self, rule: str) -> None:
        self.sanitizer_rejections.labels(rule=rule).inc()

    # -- links --------------------------------------------------------------------------------

    def record_entanglement_attempts(
        self, namespace: str, link: str, attempts: int, successes: int
    ) -> None:
        """M1: `attempts` generation attempts on a link, `successes` of them heralded."""
        if attempts < 0 or not 0 <= successes <= attempts:
            raise ValueError(f"need 0 <= successes <= attempts, got {successes}/{attempts}")
        self.entanglement_attempts.labels(namespace=namespace, link=link).inc(attempts)
        self.entanglement_successes.labels(namespace=namespace, link=link).inc(successes)

    def observe_entanglement_latency(self, namespace: str, link: str, seconds: float) -> None:
        """M9: time until a Bell pair was heralded."""
        self.entanglement_latency.labels(namespace=namespace, link=link).observe(seconds)

    def record_bell_pairs_consumed(self, namespace: str, link: str, pairs: int) -> None:
        if pairs > 0:
            self.bell_pairs_consumed.labels(namespace=namespace, link=link).inc(pairs)

    def observe_feedforward_latency(self, namespace: str, link: str, seconds: float) -> None:
        """M3: one measured feedforward latency sample (RTT/2 + declared latency)."""
        self.feedforward_latency.labels(namespace=namespace, link=link).observe(seconds)

    def set_link_feedforward_estimate(self, namespace: str, link: str, seconds: float) -> None:
        self.link_feedforward.labels(namespace=namespace, link=link).set(seconds)

    def set_link_state(
        self,
        namespace: str,
        link: str,
        phase: str,
        *,
        declared_fidelity: float | None = None,
        declared_success_probability: float | None = None,
        measured_fidelity: float | None = None,
        coherence_budget_seconds: float | None = None,
    ) -> None:
        """A link's phase and figures after a check."""
        self.link_up.labels(namespace=namespace, link=link).set(1 if phase == "Up" else 0)
        for p in LINK_PHASES:
            self.link_phase.labels(namespace=namespace, link=link, phase=p).set(int(p == phase))
        labels = {"namespace": namespace, "link": link}
        if declared_fidelity is not None:
            self.link_declared_fidelity.labels(**labels).set(_ratio(declared_fidelity))
        if declared_success_probability is not None:
            self.link_declared_success.labels(**labels).set(_ratio(declared_success_probability))
        if measured_fidelity is not None:
            self.link_measured_fidelity.labels(**labels).set(_ratio(measured_fidelity))
        if coherence_budget_seconds is not None:
            self.link_coherence_budget.labels(namespace=namespace, link=link).set(
                coherence_budget_seconds
            )

    def forget_link(self, namespace: str, link: str) -> None:
        """Drop the series of a deleted link."""
        _remove(
            [
                self.link_up,
                self.link_declared_fidelity,
                self.link_declared_success,
                self.link_measured_fidelity,
                self.link_coherence_budget,
                self.link_feedforward,
            ],
            (namespace, link),
        )
        for p in LINK_PHASES:
            _remove([self.link_phase], (namespace, link, p))

    # -- nodes --------------------------------------------------------------------------------

    def set_node_state(
        self,
        namespace: str,
        node: str,
        phase: str,
        *,
        qubits: int | None = None,
        allocated_qubits: int | None = None,
        calibration_fidelity: float | None = None,
        gate_errors: dict[str, float | None] | None = None,
    ) -> None:
        """M7 and calibration: the node's phase and figures after a health check."""
        self.node_up.labels(namespace=namespace, node=node).set(1 if phase == "Ready" else 0)
        for p in NODE_PHASES:
            self.node_phase.labels(namespace=namespace, node=node, phase=p).set(int(p == phase))
        if qubits is not None:
            self.node_qubits.labels(namespace=namespace, node=node).set(qubits)
        if allocated_qubits is not None:
            self.node_allocated_qubits.labels(namespace=namespace, node=node).set(allocated_qubits)
        if calibration_fidelity is not None:
            self.node_calibration_fidelity.labels(namespace=namespace, node=node).set(
                _ratio(calibration_fidelity)
            )
        for gate, error in (gate_errors or {}).items():
            if gate not in GATES:
                raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
            if error is not None:
                self.node_gate_error.labels(namespace=namespace, node=node, gate=gate).set(
                    _ratio(error)
                )

    def forget_node(self, namespace: str, node: str) -> None:
        """Drop the series of a deleted node."""
        _remove(
            [
                self.node_up,
                self.node_qubits,
                self.node_allocated_qubits,
                self.node_calibration_fidelity,
            ],
            (namespace, node),
        )
        for p in NODE_PHASES:
            _remove([self.node_phase], (namespace, node, p))
        for g in GATES:
            _remove([self.node_gate_error], (namespace, node, g))

    # -- channel, agents, reconcile -----------------------------------------------------------

    def record_channel_handshakes(self, namespace: str, node: str, count: int = 1) -> None:
        if count > 0:
            self.channel_handshakes.labels(namespace=namespace, node=node).inc(count)

    def record_channel_auth_failure(self, namespace: str, node: str, reason: str) -> None:
        self.channel_auth_failures.labels(namespace=namespace, node=node, reason=reason).inc()

    def observe_agent_request(
        self, namespace: str, node: str, op: str, code: str, seconds: float
    ) -> None:
        self.agent_requests.labels(namespace=namespace, node=node, op=op, code=code).inc()
        self.agent_request_duration.labels(namespace=namespace, node=node, op=op).observe(
            max(0.0, seconds)
        )

    def observe_reconcile(self, kind: str, handler: str, seconds: float, *, failed: bool) -> None:
        self.reconcile_duration.labels(kind=kind, handler=handler).observe(max(0.0, seconds))
        if failed:
            self.reconcile_errors.labels(kind=kind, handler=handler).inc()


def _ratio(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def _remove(metrics: Iterable[Any], labels: tuple[str, ...]) -> None:
    for metric in metrics:
        with contextlib.suppress(KeyError):
            metric.remove(*labels)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("qorch")
    except Exception:
        return "unknown"


def measurement_variance(
    counts: dict[str, int] | None = None, standard_errors: Iterable[float] | None = None
) -> float | None:
    """M10 of one result: the largest p(1-p)/N over the outcomes of `counts` (the variance of
    the least certain estimated probability), or the largest squared standard error."""
    if standard_errors is not None:
        errors = [float(e) ** 2 for e in standard_errors]
        if errors:
            return max(errors)
    if counts:
        shots = sum(counts.values())
        if shots > 0:
            return max((n / shots) * (1 - n / shots) / shots for n in counts.values())
    return None


@dataclass(frozen=True)
class MetricsServer:
    """The running `/metrics` endpoint; `close()` stops it."""

    port: int
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    port: int = METRICS_PORT, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve `registry` on http://addr:port/metrics in a daemon thread (port 0: any free one).

    Only the operator, the sidecar and tests that ask for it call this; importing the module
    never starts a server.
    """
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server.server_port, server, thread)


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)


METRICS = QorchMetrics(REGISTRY)

# The two names the pipeline already uses.
SANITIZER_REJECTIONS = METRICS.sanitizer_rejections
JOBS_FINISHED = METRICS.jobs_finished
JOB_REROUTES = METRICS.job_reroutes

# One-line recording functions over the process-wide metrics.
record_job_finished = METRICS.record_job_finished
track_job_phase = METRICS.track_job_phase
observe_job_fidelity = METRICS.observe_job_fidelity
observe_coherence_window_usage = METRICS.observe_coherence_window_usage
observe_measurement_variance = METRICS.observe_measurement_variance
observe_job_duration = METRICS.observe_job_duration
observe_orchestrator_latency = METRICS.observe_orchestrator_latency
observe_pipeline_step = METRICS.observe_pipeline_step
record_sanitizer_rejection = METRICS.record_sanitizer_rejection
record_entanglement_attempts = METRICS.record_entanglement_attempts
observe_entanglement_latency = METRICS.observe_entanglement_latency
record_bell_pairs_consumed = METRICS.record_bell_pairs_consumed
observe_feedforward_latency = METRICS.observe_feedforward_latency
set_link_feedforward_estimate = METRICS.set_link_feedforward_estimate
set_link_state = METRICS.set_link_state
forget_link = METRICS.forget_link
set_node_state = METRICS.set_node_state
forget_node = METRICS.forget_node
record_channel_handshakes = METRICS.record_channel_handshakes
record_channel_auth_failure = METRICS.record_channel_auth_failure
observe_agent_request = METRICS.observe_agent_request
observe_reconcile = METRICS.observe_reconcile
