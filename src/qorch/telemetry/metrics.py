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

Every metric is one row of `TABLE` (kind, name, help, labels, buckets, the range its
values are clamped to); one loop registers the table on a registry as a `QorchMetrics`.
There is one way to record, by the name Prometheus shows:

    METRICS.record("qorch_jobs_finished_total", phase="Succeeded", strategy="single")
    METRICS.record("qorch_job_fidelity_ratio", 0.97, strategy="single")

which adds to a counter, sets a gauge or observes a histogram, as its row says. The
process-wide `METRICS` registers on prometheus-client's default registry (with its process
and GC collectors). Tests build `QorchMetrics(CollectorRegistry())` and never start a
server: only `start_metrics_server` does, when the operator calls it.
"""

from __future__ import annotations

import math
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

from qorch.api.phases import JobPhases, is_terminal
from qorch.memory_limit import process_limit_bytes

from . import METRICS_PORT

ACTIVE_JOB_PHASES: tuple[str, ...] = tuple(p for p in JobPhases.ALL if not is_terminal(p))

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

# Ranges values are clamped to: a ratio, or a duration or spread that cannot be negative.
RATIO = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)

JOB = ("phase", "strategy")
LINK = ("namespace", "link")
NODE = ("namespace", "node")


@dataclass(frozen=True)
class Row:
    """One metric: what Prometheus shows of it, and the range of the values recorded."""

    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None

    def build(self, registry: CollectorRegistry | None) -> Any:
        if self.kind is Histogram:
            assert self.buckets is not None, f"{self.name} needs its buckets"
            return Histogram(
                self.name, self.help, self.labels, buckets=self.buckets, registry=registry
            )
        return self.kind(self.name, self.help, self.labels, registry=registry)


TABLE: tuple[Row, ...] = (
    # -- jobs (M2, M4, M5, M6, M10) -----------------------------------------------------------
    Row(
        Counter,
        "qorch_jobs_finished_total",
        "DistributedJobs that reached a terminal phase, by phase and strategy (M5: job"
        " success rate is Succeeded over Succeeded plus Failed; Rejected is the"
        " admission's verdict, not a service failure).",
        JOB,
    ),
    Row(
        Gauge,
        "qorch_jobs",
        "DistributedJobs this operator is driving, by non-terminal phase.",
        ("phase",),
    ),
    Row(
        Histogram,
        "qorch_job_fidelity_ratio",
        "M2 end-to-end fidelity: Hellinger fidelity of a verified job's counts to the"
        " exact distribution, 0..1.",
        ("strategy",),
        FIDELITY_BUCKETS,
        RATIO,
    ),
    Row(
        Histogram,
        "qorch_job_estimated_fidelity_ratio",
        "Fidelity the planner estimated for the chosen plan of each finished job, 0..1.",
        ("strategy",),
        FIDELITY_BUCKETS,
        RATIO,
    ),
    Row(
        Histogram,
        "qorch_coherence_window_usage_ratio",
        "M4 coherence-window usage: estimated circuit duration (plus feed-forward waits)"
        " over the shortest T2 of the nodes it ran on; above 1 the result is mostly noise.",
        ("strategy",),
        USAGE_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Histogram,
        "qorch_measurement_variance",
        "M10 measurement variance of each finished job's estimate: the largest"
        " p(1-p)/shots over its outcomes, or the largest squared standard error of its"
        " expectation values.",
        ("strategy",),
        VARIANCE_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Histogram,
        "qorch_job_duration_seconds",
        "Wall time from admission to the terminal phase, by phase and strategy.",
        JOB,
        JOB_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Histogram,
        "qorch_orchestrator_latency_seconds",
        "M6 orchestrator latency: time a finished job spent in the orchestrator (admit,"
        " plan, dispatch and aggregate), excluding the agents' execution time.",
        ("strategy",),
        STEP_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Histogram,
        "qorch_pipeline_step_duration_seconds",
        "Duration of one step of the job state machine (admit, plan, start-attempt,"
        " dispatch), agents' execution included.",
        ("step",),
        STEP_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Counter,
        "qorch_sanitizer_rejections_total",
        "DistributedJobs rejected by the circuit sanitizer, by the first denying rule.",
        ("rule",),
    ),
    Row(
        Counter,
        "qorch_job_reroutes_total",
        "Running jobs paused and re-planned away from a resource, by the resource's kind"
        " and why (Degraded, Unreachable, AgentFailed, ...).",
        ("kind", "reason"),
    ),
    # -- links (M1, M3, M9) ---------------------------------------------------------------------
    Row(
        Counter,
        "qorch_entanglement_attempts_total",
        "M1: heralded Bell-pair generation attempts on a link.",
        LINK,
    ),
    Row(
        Counter,
        "qorch_entanglement_successes_total",
        "M1: generation attempts that delivered a Bell pair (success rate = successes / attempts).",
        LINK,
    ),
    Row(
        Histogram,
        "qorch_entanglement_latency_seconds",
        "M9 entanglement latency: time from requesting a Bell pair to its herald.",
        LINK,
        ENTANGLEMENT_BUCKETS,
    ),
    Row(Counter, "qorch_bell_pairs_consumed_total", "Bell pairs consumed by jobs on a link.", LINK),
    Row(
        Histogram,
        "qorch_feedforward_latency_seconds",
        "M3 feedforward latency, measured agent to agent: half the round trip of"
        " timestamped echoes from one agent of the link straight to the other.",
        LINK,
        FEEDFORWARD_BUCKETS,
    ),
    Row(
        Gauge,
        "qorch_link_feedforward_latency_seconds",
        "Latest feedforward latency estimate of a link (median of the last probe), the"
        " figure the planner uses.",
        LINK,
    ),
    Row(
        Gauge,
        "qorch_link_coherence_budget_seconds",
        "Longest feedforward latency a link may have: a fixed fraction of the shorter T2"
        " of its two nodes.",
        LINK,
    ),
    Row(Gauge, "qorch_link_up", "1 when the link is Up, 0 otherwise.", LINK),
    Row(
        Gauge,
        "qorch_link_phase",
        "1 for the link's current phase, 0 for the others.",
        (*LINK, "phase"),
    ),
    Row(
        Gauge,
        "qorch_link_declared_fidelity_ratio",
        "Bell-pair fidelity a link declares (spec.fidelity), 0..1.",
        LINK,
        bounds=RATIO,
    ),
    Row(
        Gauge,
        "qorch_link_declared_success_ratio",
        "Success probability per generation attempt a link declares"
        " (spec.successProbability): the target of M1.",
        LINK,
        bounds=RATIO,
    ),
    Row(
        Gauge,
        "qorch_link_measured_fidelity_ratio",
        "Bell-pair fidelity of a link measured by its last probe, 0..1.",
        LINK,
        bounds=RATIO,
    ),
    # -- nodes (M7, calibration) ----------------------------------------------------------------
    Row(
        Gauge, "qorch_node_up", "M7 node availability: 1 when the node is Ready, 0 otherwise.", NODE
    ),
    Row(
        Gauge,
        "qorch_node_phase",
        "1 for the node's current phase, 0 for the others.",
        (*NODE, "phase"),
    ),
    Row(Gauge, "qorch_node_qubits", "Qubits a node has (spec.qubits).", NODE),
    Row(Gauge, "qorch_node_allocated_qubits", "Qubits of a node reserved by running jobs.", NODE),
    Row(
        Gauge,
        "qorch_node_calibration_fidelity_ratio",
        "Fidelity measured by the node's last calibration, 0..1.",
        NODE,
        bounds=RATIO,
    ),
    Row(
        Gauge,
        "qorch_node_gate_error_ratio",
        "Error per gate (single_qubit, two_qubit) or per readout: measured by the last"
        " calibration, or declared in the spec until one ran.",
        (*NODE, "gate"),
        bounds=RATIO,
    ),
    # -- channel, agents, reconcile -------------------------------------------------------------
    Row(
        Counter,
        "qorch_channel_handshakes_total",
        "Post-quantum channel handshakes the operator completed with a node's agent.",
        NODE,
    ),
    Row(
        Counter,
        "qorch_channel_auth_failures_total",
        "Channel authentication failures towards a node, by refusal class (e.g."
        " PeerKeyMismatch, AuthenticationFailed, IdentityNotPinned).",
        (*NODE, "reason"),
    ),
    Row(
        Counter,
        "qorch_channel_calls_total",
        "Calls from the pipeline to a node's agent, by operation and result code (ok, or"
        " the agent error code).",
        (*NODE, "op", "code"),
    ),
    Row(
        Histogram,
        "qorch_channel_call_duration_seconds",
        "Round trip of a call from the pipeline to a node's agent, by operation.",
        (*NODE, "op"),
        REQUEST_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Histogram,
        "qorch_reconcile_duration_seconds",
        "Duration of one operator handler run, by kind and handler.",
        ("kind", "handler"),
        STEP_BUCKETS,
        NON_NEGATIVE,
    ),
    Row(
        Counter,
        "qorch_reconcile_errors_total",
        "Operator handler runs that raised, by kind and handler.",
        ("kind", "handler"),
    ),
    Row(
        Gauge,
        "qorch_memory_limit_bytes",
        "Memory this process may use: its container's limit (cgroup), else the machine's."
        " The widest exact simulations are sized to it.",
        (),
    ),
    Row(
        Gauge,
        "qorch_exact_simulation_max_qubits",
        "Widest circuit simulated exactly within the memory limit, by kind: verification"
        " (the statevector a job's counts are checked against; a wider circuit is verified"
        " only if it is Clifford, by its stabilizer tableau) and prediction (the planner's"
        " predicted fidelity; wider jobs get the no-error probability).",
        ("kind",),
    ),
    Row(
        Gauge,
        "qorch_build_info",
        "Always 1; the version label says which qorch runs.",
        ("version",),
    ),
)


class QorchMetrics:
    """Every metric of `TABLE`, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        self._rows = {row.name: row for row in TABLE}
        self._metrics = {row.name: row.build(registry) for row in TABLE}
        self._lock = threading.Lock()
        self._job_phases: dict[str, str] = {}
        self.record("qorch_build_info", 1, version=_version())
        self.record("qorch_memory_limit_bytes", process_limit_bytes())
        for phase in ACTIVE_JOB_PHASES:
            self.record("qorch_jobs", 0, phase=phase)

    def record(self, name: str, value: float = 1, /, **labels: str) -> None:
        """Add `value` to a counter, set a gauge to it, or observe it in a histogram,
        clamped to the row's range."""
        row = self._rows[name]
        if row.bounds is not None:
            low, high = row.bounds
            value = min(high, max(low, float(value)))
        metric = self._metrics[name]
        child = metric.labels(**labels) if row.labels else metric
        if row.kind is Counter:
            child.inc(value)
        elif row.kind is Gauge:
            child.set(value)
        else:
            child.observe(value)

    def declare(self, name: str, /, **labels: str) -> None:
        """Export a series before anything happens to it (a counter at 0, a histogram with
        empty buckets), so that a rate or a ratio over it reads 0 rather than no data, and
        an alert on it can evaluate from the start."""
        self._metrics[name].labels(**labels)

    def track_job_phase(self, key: str, phase: str | None) -> None:
        """The job `key` (namespace/name/uid, never exported) is now in `phase`; None or a
        terminal phase stops counting it."""
        jobs = self._metrics["qorch_jobs"]
        with self._lock:
            previous = self._job_phases.pop(key, None)
            if previous is not None:
                jobs.labels(phase=previous).dec()
            if phase in ACTIVE_JOB_PHASES:
                self._job_phases[key] = phase
                jobs.labels(phase=phase).inc()

    def forget_node(self, namespace: str, node: str) -> None:
        """Drop every series of a deleted node."""
        self._forget({"namespace": namespace, "node": node})

    def forget_link(self, namespace: str, link: str) -> None:
        """Drop every series of a deleted link."""
        self._forget({"namespace": namespace, "link": link})

    def _forget(self, labels: dict[str, str]) -> None:
        for row in TABLE:
            if set(labels) <= set(row.labels):
                self._metrics[row.name].remove_by_labels(labels)


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
