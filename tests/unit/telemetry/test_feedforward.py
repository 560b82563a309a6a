"""Feedforward latency is measured from timestamped echoes, not assumed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from qorch.agent_protocol import EchoRequest
from qorch.telemetry.feedforward import (
    echo_reply,
    measure_feedforward_latency,
    probe_link_feedforward,
)
from qorch.telemetry.metrics import QorchMetrics
from tests.support import REPO


class EchoAgent:
    """An agent `delay` seconds away each way that holds each echo `hold` seconds."""

    def __init__(self, delay: float, hold: float = 0.0) -> None:
        self.delay = delay
        self.hold = hold
        self.calls: list[dict[str, Any]] = []

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        assert op == "echo"
        self.calls.append(payload)
        await asyncio.sleep(self.delay)
        received = time.time_ns()
        await asyncio.sleep(self.hold)
        reply = {"payload": payload, "receivedAtNs": received, "sentAtNs": time.time_ns()}
        await asyncio.sleep(self.delay)
        return reply


def test_the_agent_echoes_the_payload_with_its_timestamps() -> None:
    reply = echo_reply(EchoRequest(seq=3, sent_at_ns=1)).wire()
    assert reply["payload"] == {"seq": 3, "sentAtNs": 1}
    assert 0 <= reply["sentAtNs"] - reply["receivedAtNs"] < 10**8


async def test_half_the_round_trips_plus_the_declared_latency() -> None:
    a, b = EchoAgent(0.004), EchoAgent(0.010)
    result = await measure_feedforward_latency(a, b, declared_latency_seconds=0.001, samples=3)
    # (2 * 4 ms + 2 * 10 ms) / 2 = 14 ms measured, plus 1 ms declared
    assert result.feedforward_seconds == pytest.approx(0.015, abs=0.004)
    assert result.measured_seconds == pytest.approx(0.014, abs=0.004)
    assert len(result.samples_seconds) == 3
    assert all(r >= 0.008 for r in result.rtt_a_seconds)


async def test_time_the_agent_holds_an_echo_is_not_latency() -> None:
    slow = EchoAgent(0.002, hold=0.030)
    result = await measure_feedforward_latency(slow, slow, samples=2)
    assert result.feedforward_seconds < 0.015


async def test_the_warm_up_echo_is_not_counted() -> None:
    a, b = EchoAgent(0.0), EchoAgent(0.0)
    await measure_feedforward_latency(a, b, samples=2)
    assert [c["seq"] for c in a.calls] == [-1, 0, 1]


async def test_a_wrong_echo_is_an_error() -> None:
    class Liar(EchoAgent):
        async def call(self, op: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
            return {"payload": {"seq": 99}}

    with pytest.raises(ValueError):
        await measure_feedforward_latency(Liar(0), Liar(0), samples=1)


async def test_a_probe_records_every_sample_and_the_estimate(metrics: QorchMetrics) -> None:
    from qorch.api.manifests import load_manifests

    manifests = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")])
    link = manifests.links[0]
    result = await probe_link_feedforward(
        link, EchoAgent(0.001), EchoAgent(0.001), samples=4, metrics=metrics
    )
    assert result is not None
    labels = {"namespace": link.metadata.namespace, "link": link.metadata.name}
    r = metrics.registry
    assert r.get_sample_value("qorch_feedforward_latency_seconds_count", labels) == 4
    estimate = r.get_sample_value("qorch_link_feedforward_latency_seconds", labels)
    assert estimate == pytest.approx(result.feedforward_seconds)
    # the quickstart link declares 250 us of classical latency
    assert result.declared_seconds == pytest.approx(250e-6)
    assert estimate > 250e-6


async def test_a_probe_that_gets_no_answer_records_nothing(metrics: QorchMetrics) -> None:
    from qorch.api.manifests import load_manifests

    class Old(EchoAgent):  # an agent that does not know `echo`
        async def call(self, op: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
            error = Exception("UnknownOperation: unknown operation 'echo'")
            error.code = "UnknownOperation"  # type: ignore[attr-defined]
            raise error

    link = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")]).links[0]
    assert await probe_link_feedforward(link, Old(0), Old(0), metrics=metrics) is None
    labels = {"namespace": "default", "link": "a-b"}
    assert (
        metrics.registry.get_sample_value("qorch_feedforward_latency_seconds_count", labels) is None
    )
