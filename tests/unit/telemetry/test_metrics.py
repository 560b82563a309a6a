"""The operator's metrics: names, units, bounded labels, recording, forgetting, exposition."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from qorch.telemetry import metrics as m
from qorch.telemetry.metrics import TABLE, QorchMetrics, measurement_variance

from .samples import observe_everything, sidecar_registry, write_full_stats

BOUNDED_LABELS = {
    "namespace", "node", "link", "strategy", "rule", "phase", "step", "kind", "handler",
    "op", "code", "gate", "reason", "version",
}  # fmt: skip
SIGNALS = {
    "M1": "qorch_entanglement_successes",
    "M2": "qorch_job_fidelity_ratio",
    "M3": "qorch_feedforward_latency_seconds",
    "M4": "qorch_coherence_window_usage_ratio",
    "M5": "qorch_jobs_finished",
    "M6": "qorch_orchestrator_latency_seconds",
    "M7": "qorch_node_up",
    "M9": "qorch_entanglement_latency_seconds",
    "M10": "qorch_measurement_variance",
}


def families(registry: CollectorRegistry) -> dict:
    return {f.name: f for f in registry.collect()}


def test_every_metric_is_prefixed_documented_and_in_base_units(metrics: QorchMetrics) -> None:
    for name, family in families(metrics.registry).items():
        assert name.startswith("qorch_"), name
        assert len(family.documentation) > 20, f"{name} is not documented"
        assert not any(bad in name for bad in ("milli", "micro", "percent", "_ms")), name
        if family.type == "counter":
            assert not name.endswith("_total")  # prometheus-client appends it to samples


def test_labels_are_bounded_and_never_name_jobs(metrics: QorchMetrics) -> None:
    observe_everything(metrics)
    for family in families(metrics.registry).values():
        for sample in family.samples:
            extra = set(sample.labels) - BOUNDED_LABELS - {"le"}
            assert not extra, f"{sample.name} has unbounded labels {extra}"


def test_each_sli_of_m1_to_m10_has_a_metric(metrics: QorchMetrics) -> None:
    names = set(families(metrics.registry))
    for signal, name in SIGNALS.items():
        assert name in names, signal


def test_the_process_wide_metrics_are_the_table_on_the_default_registry() -> None:
    text = generate_latest(m.REGISTRY).decode()
    for row in TABLE:
        kind = row.kind.__name__.lower()
        assert f"# TYPE {row.name} {kind}" in text, row.name


def test_every_histogram_has_its_buckets() -> None:
    for row in TABLE:
        assert (row.buckets is not None) == (row.kind.__name__ == "Histogram"), row.name


def test_record_counts_sets_or_observes_by_the_kind_of_metric(metrics: QorchMetrics) -> None:
    r = metrics.registry
    finished = {"phase": "Succeeded", "strategy": "single"}
    metrics.record("qorch_jobs_finished_total", **finished)
    metrics.record("qorch_jobs_finished_total", **finished)
    assert r.get_sample_value("qorch_jobs_finished_total", finished) == 2
    link = {"namespace": "lab", "link": "a-b"}
    metrics.record("qorch_entanglement_attempts_total", 10, **link)
    assert r.get_sample_value("qorch_entanglement_attempts_total", link) == 10
    metrics.record("qorch_link_up", 1, **link)
    metrics.record("qorch_link_up", 0, **link)
    assert r.get_sample_value("qorch_link_up", link) == 0
    metrics.record("qorch_feedforward_latency_seconds", 4e-4, **link)
    assert r.get_sample_value("qorch_feedforward_latency_seconds_count", link) == 1
    assert r.get_sample_value("qorch_feedforward_latency_seconds_sum", link) == pytest.approx(4e-4)


def test_a_metric_without_labels_is_recorded_alike(metrics: QorchMetrics) -> None:
    from qorch.memory_limit import process_limit_bytes

    # Set from the start (never a 0 the process did not mean), as by any command.
    assert metrics.registry.get_sample_value("qorch_memory_limit_bytes") == process_limit_bytes()
    metrics.record("qorch_memory_limit_bytes", 6 << 30)
    assert metrics.registry.get_sample_value("qorch_memory_limit_bytes") == 6 << 30


def test_the_memory_limit_and_simulation_widths_are_recorded_where_jobs_run() -> None:
    from qorch.memory_limit import process_limit_bytes
    from qorch.pipeline.job import ExactOutputs
    from qorch.pipeline.verification import MAX_STATEVECTOR_QUBITS
    from qorch.planner.prediction import MAX_PREDICTED_QUBITS

    ExactOutputs()  # made once by the operator at start, and by `qorch run`'s pipeline
    value = m.REGISTRY.get_sample_value
    assert value("qorch_memory_limit_bytes") == process_limit_bytes()
    widest = "qorch_exact_simulation_max_qubits"
    assert value(widest, {"kind": "verification"}) == MAX_STATEVECTOR_QUBITS
    assert value(widest, {"kind": "prediction"}) == MAX_PREDICTED_QUBITS


def test_ratios_and_durations_are_clamped_to_their_range(metrics: QorchMetrics) -> None:
    r = metrics.registry
    metrics.record("qorch_job_fidelity_ratio", 1.2, strategy="single")
    assert r.get_sample_value("qorch_job_fidelity_ratio_sum", {"strategy": "single"}) == 1.0
    metrics.record("qorch_pipeline_step_duration_seconds", -0.5, step="admit")
    assert r.get_sample_value("qorch_pipeline_step_duration_seconds_sum", {"step": "admit"}) == 0


def test_record_refuses_unknown_metrics_and_labels(metrics: QorchMetrics) -> None:
    with pytest.raises(KeyError):
        metrics.record("qorch_nope_total")
    with pytest.raises(ValueError):
        metrics.record("qorch_jobs_finished_total", phase="Succeeded")  # strategy missing


def test_every_name_recorded_in_the_code_is_in_the_table() -> None:
    names = {row.name for row in TABLE}
    src = Path(m.__file__).parents[1]
    for path in src.rglob("*.py"):
        for name in re.findall(r"""record\(\s*["'](qorch_\w+)["']""", path.read_text()):
            assert name in names, f"{path.name} records {name}, which is not in the table"


def test_jobs_gauge_follows_each_job_through_its_phases(metrics: QorchMetrics) -> None:
    def count(phase: str) -> float | None:
        return metrics.registry.get_sample_value("qorch_jobs", {"phase": phase})

    metrics.track_job_phase("ns/a/1", "Pending")
    metrics.track_job_phase("ns/b/2", "Pending")
    metrics.track_job_phase("ns/a/1", "Running")
    assert (count("Pending"), count("Running")) == (1, 1)
    metrics.track_job_phase("ns/a/1", "Succeeded")
    metrics.track_job_phase("ns/b/2", None)
    assert (count("Pending"), count("Running")) == (0, 0)


def series(metrics: QorchMetrics, label: str, value: str) -> set[str]:
    """Names of the samples whose `label` is `value`."""
    return {
        s.name
        for family in metrics.registry.collect()
        for s in family.samples
        if s.labels.get(label) == value
    }


def test_a_deleted_node_or_link_leaves_no_series_behind(metrics: QorchMetrics) -> None:
    observe_everything(metrics)
    metrics.record("qorch_node_up", 1, namespace="lab", node="qpu-b")
    metrics.record("qorch_node_up", 1, namespace="other", node="qpu-a")
    assert {"qorch_node_up", "qorch_channel_calls_total"} <= series(metrics, "node", "qpu-a")
    assert "qorch_feedforward_latency_seconds_count" in series(metrics, "link", "a-b")
    metrics.forget_node("lab", "qpu-a")
    metrics.forget_link("lab", "a-b")
    r = metrics.registry
    assert r.get_sample_value("qorch_node_up", {"namespace": "other", "node": "qpu-a"}) == 1
    assert r.get_sample_value("qorch_node_up", {"namespace": "lab", "node": "qpu-b"}) == 1
    assert series(metrics, "node", "qpu-a") == {"qorch_node_up"}  # the other namespace's
    assert not series(metrics, "link", "a-b")
    metrics.forget_node("lab", "qpu-a")  # twice is harmless


def test_measurement_variance_is_that_of_the_least_certain_estimate() -> None:
    assert measurement_variance({"00": 500, "11": 500}) == pytest.approx(0.25 / 1000)
    assert measurement_variance({"0": 1000}) == 0
    assert measurement_variance(None, [0.01, 0.03]) == pytest.approx(9e-4)
    assert measurement_variance(None, None) is None


def test_importing_starts_no_server() -> None:
    assert not [t for t in threading.enumerate() if "serve_forever" in repr(t)]


def test_promtool_finds_nothing_to_lint_in_the_exposition(
    metrics: QorchMetrics, tmp_path: Path, promtool: str
) -> None:
    observe_everything(metrics)
    write_full_stats(tmp_path)
    text = generate_latest(metrics.registry) + generate_latest(sidecar_registry(tmp_path))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert not result.stdout.strip() and not result.stderr.strip()


def test_promtool_also_passes_the_process_wide_registry(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "metrics"], input=m.exposition(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_a_run_writes_every_components_metrics_in_one_valid_file(
    metrics: QorchMetrics, tmp_path: Path, promtool: str
) -> None:
    from qorch.telemetry.snapshot import write_metrics_file

    observe_everything(metrics)
    write_full_stats(tmp_path / "a", node="qpu-a")
    write_full_stats(tmp_path / "b", node="qpu-b")
    dirs = {("lab", "qpu-a"): tmp_path / "a", ("lab", "qpu-b"): tmp_path / "b"}
    path = write_metrics_file(tmp_path / "m.txt", dirs, metrics.registry)
    text = path.read_text()
    assert text.count("# TYPE qorch_agent_shots_total counter") == 1
    assert 'qorch_agent_shots_total{namespace="lab",node="qpu-b"} 1500.0' in text
    assert 'qorch_jobs_finished_total{phase="Succeeded",strategy="single"} 1.0' in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=path.read_bytes(), capture_output=True
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_series_known_in_advance_read_zero_before_any_event(
    metrics: QorchMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure ratio of M5 and its burn-rate alerts divide by Succeeded plus Failed, and
    the on-call panels rate rejections and handler errors: with no such event yet, each
    must read 0, not no data."""
    import qorch.operator  # noqa: F401  (registers the operator's handlers)
    from qorch.telemetry import instrument

    monkeypatch.setattr(m, "METRICS", metrics)
    r = metrics.registry
    assert (
        r.get_sample_value("qorch_jobs_finished_total", {"phase": "Failed", "strategy": "single"})
        is None
    )
    instrument.declare_operator_series()
    for strategy in ("single", "teleport", "cut", "locc-cut"):
        for phase in ("Succeeded", "Failed"):
            labels = {"phase": phase, "strategy": strategy}
            assert r.get_sample_value("qorch_jobs_finished_total", labels) == 0
    assert r.get_sample_value("qorch_sanitizer_rejections_total", {"rule": "QS006"}) == 0
    handlers = {("QuantumNode", "health"), ("EntanglementLink", "probe")}
    declared = {
        (s.labels["kind"], s.labels["handler"])
        for f in r.collect()
        if f.name == "qorch_reconcile_errors"
        for s in f.samples
        if s.name == "qorch_reconcile_errors_total"
    }
    assert handlers <= declared, declared
    assert all(
        r.get_sample_value("qorch_reconcile_errors_total", {"kind": k, "handler": h}) == 0
        for k, h in declared
    )
