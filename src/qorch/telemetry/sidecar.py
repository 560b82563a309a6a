"""`qorch telemetry-sidecar`: the node's metrics and spans, from beside its QPU agent.

The sidecar runs as a second container in the agent's pod. It shares one emptyDir with the
agent and nothing else: no identity Secret, no service-account token, no circuits. From
that folder it

  - serves the agent's stats file (qorch.telemetry.agent) as Prometheus metrics on
    /metrics (port 9090, named `metrics`), read afresh at every scrape;
  - forwards the spans the agent spooled to the OTLP endpoint configured by
    OTEL_EXPORTER_OTLP_ENDPOINT, then deletes them; without an endpoint it discards them.

Metrics (labels `namespace`, `node`; all read from the stats file unless noted):

    qorch_agent_up                            1 while the agent wrote stats recently
    qorch_agent_stats_age_seconds             time since the agent last wrote them
    qorch_agent_start_time_seconds            when the agent started (unix seconds)
    qorch_agent_programs_total                programs run to completion
    qorch_agent_program_errors_total          programs that failed
    qorch_agent_shots_total                   shots of those programs
    qorch_agent_busy_seconds_total            transpile + simulate time
    qorch_agent_program_duration_seconds      histogram of program durations
    qorch_agent_requests_total{op}            channel calls by operation
    qorch_agent_channel_handshakes_total      handshakes the agent accepted
    qorch_agent_channel_refusals_total        records and handshakes it refused
    qorch_agent_channel_auth_failures_total   of those, authentication failures
    qorch_agent_channel_sessions              live channel sessions
    qorch_agent_peer_messages_total{direction} LOCC messages to and from other agents
                                              (sent, received, refused)
    qorch_agent_calibration_fidelity_ratio    calibration fidelity, 0..1
    qorch_agent_gate_error_ratio{gate}        error per gate / readout
    qorch_agent_spans_dropped_total           spans the agent's spool refused
    qorch_sidecar_spans_forwarded_total       spans forwarded (the sidecar's own)
    qorch_sidecar_spans_discarded_total       spans discarded: no endpoint, or malformed
    qorch_sidecar_export_failures_total       failed exports (retried; the sidecar's own)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import METRICS_PORT
from .agent import SPANS_DIR, STATS_FILE, read_agent_stats
from .metrics import start_metrics_server
from .sidecar_options import FORWARD_INTERVAL_SECONDS, STALE_AFTER_SECONDS, add_arguments
from .spool import read_spool_file, spool_files

log = logging.getLogger(__name__)

GATE_KEYS = {
    "single_qubit": "singleQubitError",
    "two_qubit": "twoQubitError",
    "readout": "readoutError",
}
LABELS = ["namespace", "node"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class AgentStatsCollector(Collector):
    """Prometheus collector over the stats files of one or more agents.

    `sources` maps (namespace, node) to the folder the agent writes into; a node whose file
    is missing or stale reports `qorch_agent_up 0` and nothing else.
    """

    def __init__(
        self,
        sources: Mapping[tuple[str, str], str | Path],
        *,
        stale_after: float = STALE_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = {key: Path(folder) for key, folder in sources.items()}
        self.stale_after = stale_after
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the files; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        now = self.clock()
        for (namespace, node), folder in sorted(self.sources.items()):
            labels = [namespace, node]
            stats = read_agent_stats(folder / STATS_FILE)
            written = _number(stats.get("writtenAt")) if stats else None
            if stats is None or stats.get("node") != node or written is None:
                f.up.add_metric(labels, 0)
                continue
            age = max(0.0, now - written)
            f.up.add_metric(labels, 1 if age <= self.stale_after else 0)
            f.age.add_metric(labels, age)
            _add(f.start_time, labels, stats.get("startedAt"))
            _add(f.programs, labels, stats.get("programs"))
            _add(f.program_errors, labels, stats.get("programErrors"))
            _add(f.shots, labels, stats.get("shots"))
            _add(f.busy, labels, stats.get("busySeconds"))
            _add_histogram(f.durations, labels, stats.get("programSeconds"))
            for op, count in sorted((stats.get("requests") or {}).items()):
                if isinstance(op, str) and _number(count) is not None:
                    f.requests.add_metric([*labels, op[:32]], float(count))
            channel = stats.get("channel") or {}
            _add(f.handshakes, labels, channel.get("handshakes"))
            _add(f.refusals, labels, channel.get("refusals"))
            _add(f.auth_failures, labels, channel.get("authFailures"))
            _add(f.sessions, labels, channel.get("sessions"))
            peer = stats.get("peer") or {}
            for direction in ("sent", "received", "refused"):
                value = _number(peer.get(direction))
                if value is not None:
                    f.peer_messages.add_metric([*labels, direction], value)
            calibration = stats.get("calibration") or {}
            _add(f.calibration, labels, calibration.get("fidelity"))
            for gate, key in GATE_KEYS.items():
                value = _number(calibration.get(key))
                if value is not None:
                    f.gate_error.add_metric([*labels, gate], value)
            _add(f.spans_dropped, labels, stats.get("spansDropped"))
        yield from f.all()


class _Families:
    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.up = g("qorch_agent_up", "1 while the agent wrote its stats recently.", labels=LABELS)
        self.age = g(
            "qorch_agent_stats_age_seconds",
            "Seconds since the agent last wrote its stats.",
            labels=LABELS,
        )
        self.start_time = g(
            "qorch_agent_start_time_seconds", "When the agent started, unix seconds.", labels=LABELS
        )
        self.programs = c("qorch_agent_programs", "Programs run to completion.", labels=LABELS)
        self.program_errors = c(
            "qorch_agent_program_errors", "Programs that failed.", labels=LABELS
        )
        self.shots = c("qorch_agent_shots", "Shots of the programs run.", labels=LABELS)
        self.busy = c(
            "qorch_agent_busy_seconds",
            "Time the processor spent transpiling and simulating.",
            labels=LABELS,
        )
        self.durations = HistogramMetricFamily(
            "qorch_agent_program_duration_seconds",
            "Transpile plus simulate time of each program.",
            labels=LABELS,
        )
        self.requests = c(
            "qorch_agent_requests", "Channel calls by operation.", labels=[*LABELS, "op"]
        )
        self.handshakes = c(
            "qorch_agent_channel_handshakes",
            "Channel handshakes the agent accepted.",
            labels=LABELS,
        )
        self.refusals = c(
            "qorch_agent_channel_refusals",
            "Handshakes and records the agent refused.",
            labels=LABELS,
        )
        self.auth_failures = c(
            "qorch_agent_channel_auth_failures",
            "Refusals that were authentication failures (untrusted or failed handshakes).",
            labels=LABELS,
        )
        self.sessions = g(
            "qorch_agent_channel_sessions", "Live channel sessions of the agent.", labels=LABELS
        )
        self.peer_messages = c(
            "qorch_agent_peer_messages",
            "Classical messages of LOCC cuts this agent sent to, received from or refused from"
            " other agents (never through the operator).",
            labels=[*LABELS, "direction"],
        )
        self.calibration = g(
            "qorch_agent_calibration_fidelity_ratio",
            "Calibration fidelity the agent reports, 0..1.",
            labels=LABELS,
        )
        self.gate_error = g(
            "qorch_agent_gate_error_ratio",
            "Error per gate (single_qubit, two_qubit) or per readout the agent reports.",
            labels=[*LABELS, "gate"],
        )
        self.spans_dropped = c(
            "qorch_agent_spans_dropped",
            "Spans the agent could not spool (folder full or unwritable).",
            labels=LABELS,
        )

    def all(self) -> list[Metric]:
        return [
            self.up,
            self.age,
            self.start_time,
            self.programs,
            self.program_errors,
            self.shots,
            self.busy,
            self.durations,
            self.requests,
            self.handshakes,
            self.refusals,
            self.auth_failures,
            self.sessions,
            self.peer_messages,
            self.calibration,
            self.gate_error,
            self.spans_dropped,
        ]


def _add(family: Any, labels: list[str], value: Any) -> None:
    number = _number(value)
    if number is not None:
        family.add_metric(labels, number)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], data: Any) -> None:
    if not isinstance(data, dict):
        return
    count, total = _number(data.get("count")), _number(data.get("sum"))
    if count is None or total is None:
        return
    buckets: list[tuple[str, float]] = []
    for pair in data.get("buckets") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            le, n = _number(pair[0]), _number(pair[1])
            if le is not None and n is not None:
                buckets.append((_le(le), min(n, count)))
    buckets.append(("+Inf", count))
    family.add_metric(labels, buckets, total)


def _le(value: float) -> str:
    return repr(float(value))


# -- spans ----------------------------------------------------------------------------------


class SpanCounters:
    """The span forwarding counters; one set per registry, shared by its forwarders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.forwarded = Counter(
            "qorch_sidecar_spans_forwarded_total",
            "Spans the sidecar forwarded to the OTLP endpoint.",
            LABELS,
            registry=registry,
        )
        self.discarded = Counter(
            "qorch_sidecar_spans_discarded_total",
            "Spans the sidecar discarded: no endpoint configured, or malformed.",
            LABELS,
            registry=registry,
        )
        self.failures = Counter(
            "qorch_sidecar_export_failures_total",
            "Span exports that failed (the batch is retried).",
            LABELS,
            registry=registry,
        )


class SpanForwarder:
    """Moves the agent's spooled spans to an exporter (or discards them without one)."""

    def __init__(
        self,
        folder: str | Path,
        exporter: Any | None,
        labels: tuple[str, str],
        registry: CollectorRegistry | None = None,
        counters: SpanCounters | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.exporter = exporter
        self.labels = labels
        counters = counters or SpanCounters(registry)
        self.forwarded = counters.forwarded
        self.discarded = counters.discarded
        self.failures = counters.failures
        for counter in (self.forwarded, self.discarded, self.failures):
            counter.labels(*labels)

    def forward_once(self) -> int:
        """Forward (or discard) every complete batch; return the spans forwarded."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        sent = 0
        for path in spool_files(self.folder):
            try:
                spans = read_spool_file(path)
            except OSError:
                continue
            if self.exporter is None or not spans:
                self.discarded.labels(*self.labels).inc(len(spans))
                path.unlink(missing_ok=True)
                continue
            if self.exporter.export(spans) is not SpanExportResult.SUCCESS:
                self.failures.labels(*self.labels).inc()
                break  # keep the batch and the order; try again next round
            sent += len(spans)
            self.forwarded.labels(*self.labels).inc(len(spans))
            path.unlink(missing_ok=True)
        return sent


# -- the process ----------------------------------------------------------------------------


def build_registry(
    node: str,
    namespace: str,
    stats_dir: str | Path,
    *,
    stale_after: float = STALE_AFTER_SECONDS,
    exporter: Any | None = None,
) -> tuple[CollectorRegistry, SpanForwarder]:
    registry = CollectorRegistry()
    registry.register(AgentStatsCollector({(namespace, node): stats_dir}, stale_after=stale_after))
    forwarder = SpanForwarder(Path(stats_dir) / SPANS_DIR, exporter, (namespace, node), registry)
    return registry, forwarder


def run_sidecar(
    node: str,
    namespace: str,
    stats_dir: str | Path,
    *,
    host: str = "0.0.0.0",
    port: int = METRICS_PORT,
    interval: float = FORWARD_INTERVAL_SECONDS,
    stale_after: float = STALE_AFTER_SECONDS,
    stop: threading.Event | None = None,
) -> int:
    """Serve metrics and forward spans until SIGTERM/SIGINT (or `stop` is set)."""
    from .tracing import exporting_configured, otlp_exporter

    exporter = otlp_exporter() if exporting_configured() else None
    registry, forwarder = build_registry(
        node, namespace, stats_dir, stale_after=stale_after, exporter=exporter
    )
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    server = start_metrics_server(port, host, registry)
    print(
        f"telemetry-sidecar {namespace}/{node} serving metrics on http://{host}:{server.port}"
        f"/metrics; spans {'forwarded over OTLP' if exporter else 'discarded (no endpoint)'}",
        flush=True,
    )
    try:
        while not stop.wait(interval):
            try:
                forwarder.forward_once()
            except Exception:
                log.exception("span forwarding failed")
        forwarder.forward_once()
    finally:
        server.close()
        if exporter is not None:
            exporter.shutdown()
    return 0


def command(args: argparse.Namespace) -> int:
    """Entry point of `qorch telemetry-sidecar` (args from `add_arguments`)."""
    if not args.node:
        print("telemetry-sidecar: give --node or QORCH_NODE_NAME", file=sys.stderr)
        return 2
    return run_sidecar(
        args.node,
        args.namespace,
        args.stats_dir,
        host=args.host,
        port=args.port,
        interval=args.interval,
        stale_after=args.stale_after,
    )


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="qorch telemetry-sidecar"))
    logging.basicConfig(level=os.environ.get("QORCH_LOG_LEVEL", "WARNING").upper())
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
