"""The operator drops the metric series of a QuantumNode or EntanglementLink once it is gone."""

from __future__ import annotations

from qorch.operator.links import forget_deleted_link
from qorch.operator.nodes import forget_deleted_node
from qorch.telemetry.metrics import METRICS

NODE = {"namespace": "lab", "node": "gone"}
LINK = {"namespace": "lab", "link": "gone-too"}


def sample(name: str, labels: dict[str, str]) -> float | None:
    assert METRICS.registry is not None
    return METRICS.registry.get_sample_value(name, labels)


def test_a_node_s_series_go_with_its_deleted_event_only() -> None:
    METRICS.record("qorch_node_up", 1, **NODE)
    METRICS.record("qorch_channel_calls_total", **NODE, op="health", code="ok")
    METRICS.record("qorch_node_up", 1, namespace="other", node="gone")
    forget_deleted_node(event={"type": "MODIFIED", "object": {}}, namespace="lab", name="gone")
    assert sample("qorch_node_up", NODE) == 1
    forget_deleted_node(event={"type": "DELETED", "object": {}}, namespace="lab", name="gone")
    assert sample("qorch_node_up", NODE) is None
    assert sample("qorch_channel_calls_total", {**NODE, "op": "health", "code": "ok"}) is None
    assert sample("qorch_node_up", {"namespace": "other", "node": "gone"}) == 1


def test_a_link_s_series_go_with_its_deleted_event() -> None:
    METRICS.record("qorch_link_up", 1, **LINK)
    METRICS.record("qorch_feedforward_latency_seconds", 3e-4, **LINK)
    forget_deleted_link(event={"type": "DELETED", "object": {}}, namespace="lab", name="gone-too")
    assert sample("qorch_link_up", LINK) is None
    assert sample("qorch_feedforward_latency_seconds_count", LINK) is None
