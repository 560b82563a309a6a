"""Builders shared by the telemetry tests: every metric observed, a complete stats file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from qorch.telemetry.agent import STATS_FILE, AgentTelemetry
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
        "authFailures": 1,
    }


def observe_everything(m: QorchMetrics) -> None:
    """At least one sample of every operator metric."""
    m.record_job_finished("Succeeded", "single")
    m.record_job_finished("Rejected", None)
    m.track_job_phase("ns/job/uid", "Running")
    m.observe_job_fidelity("single", 0.97, 0.95)
    m.observe_coherence_window_usage("single", 0.02)
    m.observe_measurement_variance("single", 1.2e-4)
    m.observe_job_duration("Succeeded", "single", 2.5)
    m.observe_orchestrator_latency("single", 0.04)
    m.observe_pipeline_step("admit", 0.003)
    m.record_sanitizer_rejection("QS101")
    m.record_entanglement_attempts("lab", "a-b", 10, 3)
    m.observe_entanglement_latency("lab", "a-b", 3e-4)
    m.record_bell_pairs_consumed("lab", "a-b", 2000)
    m.observe_feedforward_latency("lab", "a-b", 4e-4)
    m.set_link_feedforward_estimate("lab", "a-b", 4e-4)
    m.set_link_state(
        "lab",
        "a-b",
        "Up",
        declared_fidelity=0.95,
        declared_success_probability=0.3,
        measured_fidelity=0.94,
        coherence_budget_seconds=6e-6,
    )
    m.set_node_state(
        "lab",
        "qpu-a",
        "Ready",
        qubits=8,
        allocated_qubits=4,
        calibration_fidelity=0.99,
        gate_errors={"single_qubit": 5e-4, "two_qubit": 8e-3, "readout": 0.015},
    )
    m.record_channel_handshakes("lab", "qpu-a")
    m.record_channel_auth_failure("lab", "qpu-a", "PeerKeyMismatch")
    m.observe_agent_request("lab", "qpu-a", "run", "ok", 0.2)
    m.observe_reconcile("QuantumNode", "health", 0.01, failed=True)


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
