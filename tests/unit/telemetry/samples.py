"""Builders shared by the telemetry tests: every metric observed, a complete stats file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from qorch.telemetry.agent import STATS_FILE, AgentTelemetry
from qorch.telemetry.instrument import LINK_PHASES, NODE_PHASES
from qorch.telemetry.metrics import QorchMetrics
from qorch.telemetry.sidecar import AgentStatsCollector, SpanForwarder


class FakeServer:
    """A ChannelServer as far as the agent's telemetry reads it."""

    stats: ClassVar[dict[str, int]] = {
        "handshakes": 3,
        "refusals": 2,
        "calls": 40,
        "handler_errors": 1,
        "sessions": 1,
        "pending": 0,
        "auth_failures": 1,
    }


def observe_everything(m: QorchMetrics) -> None:
    """At least one sample of every operator metric."""
    link = {"namespace": "lab", "link": "a-b"}
    node = {"namespace": "lab", "node": "qpu-a"}
    m.record("qorch_jobs_finished_total", phase="Succeeded", strategy="single")
    m.record("qorch_jobs_finished_total", phase="Rejected", strategy="none")
    m.track_job_phase("ns/job/uid", "Running")
    m.record("qorch_job_fidelity_ratio", 0.97, strategy="single")
    m.record("qorch_job_estimated_fidelity_ratio", 0.95, strategy="single")
    m.record("qorch_coherence_window_usage_ratio", 0.02, strategy="single")
    m.record("qorch_measurement_variance", 1.2e-4, strategy="single")
    m.record("qorch_job_duration_seconds", 2.5, phase="Succeeded", strategy="single")
    m.record("qorch_orchestrator_latency_seconds", 0.04, strategy="single")
    m.record("qorch_pipeline_step_duration_seconds", 0.003, step="admit")
    m.record("qorch_sanitizer_rejections_total", rule="QS101")
    m.record("qorch_job_reroutes_total", kind="QuantumNode", reason="Unreachable")
    m.record("qorch_entanglement_attempts_total", 10, **link)
    m.record("qorch_entanglement_successes_total", 3, **link)
    m.record("qorch_entanglement_latency_seconds", 3e-4, **link)
    m.record("qorch_bell_pairs_consumed_total", 2000, **link)
    m.record("qorch_feedforward_latency_seconds", 4e-4, **link)
    m.record("qorch_link_feedforward_latency_seconds", 4e-4, **link)
    m.record("qorch_link_coherence_budget_seconds", 6e-6, **link)
    m.record("qorch_link_up", 1, **link)
    for phase in LINK_PHASES:
        m.record("qorch_link_phase", int(phase == "Up"), **link, phase=phase)
    m.record("qorch_link_declared_fidelity_ratio", 0.95, **link)
    m.record("qorch_link_declared_success_ratio", 0.3, **link)
    m.record("qorch_link_measured_fidelity_ratio", 0.94, **link)
    m.record("qorch_node_up", 1, **node)
    for phase in NODE_PHASES:
        m.record("qorch_node_phase", int(phase == "Ready"), **node, phase=phase)
    m.record("qorch_node_qubits", 8, **node)
    m.record("qorch_node_allocated_qubits", 4, **node)
    m.record("qorch_node_calibration_fidelity_ratio", 0.99, **node)
    for gate, error in {"single_qubit": 5e-4, "two_qubit": 8e-3, "readout": 0.015}.items():
        m.record("qorch_node_gate_error_ratio", error, **node, gate=gate)
    m.record("qorch_channel_handshakes_total", **node)
    m.record("qorch_channel_auth_failures_total", **node, reason="PeerKeyMismatch")
    m.record("qorch_channel_calls_total", **node, op="run", code="ok")
    m.record("qorch_channel_call_duration_seconds", 0.2, **node, op="run")
    m.record("qorch_reconcile_duration_seconds", 0.01, kind="QuantumNode", handler="health")
    m.record("qorch_reconcile_errors_total", kind="QuantumNode", handler="health")


def write_full_stats(folder: Path, node: str = "qpu-a") -> AgentTelemetry:
    """An agent's stats file with every field set."""
    telemetry = AgentTelemetry(
        node,
        folder,
        calibration={
            "fidelity": 0.99,
            "singleQubitError": 5e-4,
            "twoQubitError": 8e-3,
            "readoutError": 0.015,
        },
    )
    telemetry.attach(FakeServer())
    telemetry.requests.update({"run": 2, "health": 5})
    telemetry.program_finished(shots=1000, transpile_seconds=0.01, simulate_seconds=0.08)
    telemetry.program_finished(shots=500, transpile_seconds=0.02, simulate_seconds=1.5)
    telemetry.program_failed()
    telemetry.peer_traffic(SimpleNamespace(sent=4, received=3, refused=1, message_seconds=[1e-3]))
    assert (folder / STATS_FILE).is_file()
    return telemetry


def sidecar_registry(folder: Path, namespace: str = "lab", node: str = "qpu-a") -> Any:
    """The registry a sidecar serves, over `folder`, with its own counters touched."""
    registry = CollectorRegistry()
    registry.register(AgentStatsCollector({(namespace, node): folder}))
    forwarder = SpanForwarder(folder / "spans", None, (namespace, node), registry)
    forwarder.forwarded.labels(namespace, node).inc(3)
    forwarder.discarded.labels(namespace, node).inc(1)
    forwarder.failures.labels(namespace, node).inc(0)
    return registry
