"""Feed-forward latency is measured agent to agent, never through the operator, and never
added to the link's physical latency."""

from __future__ import annotations

from typing import Any

import pytest

from qorch.agent_protocol import EchoRequest
from qorch.channel.identity import Identity, encode_public_key
from qorch.telemetry.feedforward import (
    echo_reply,
    measure_feedforward_latency,
    probe_link_feedforward,
)
from qorch.telemetry.metrics import QorchMetrics
from tests.support import REPO

KEY_A, KEY_B = Identity.generate().public_key, Identity.generate().public_key
ADDRESS_A = ("http://a.test:8443", (KEY_A,))
ADDRESS_B = ("http://b.test:8443", (KEY_B,))


class LatencyAgent:
    """An agent that answers `link_latency` as a real one does: the measuring side with
    `samples` (its one-way times to the peer)."""

    def __init__(self, samples: list[float] | None = None) -> None:
        self.samples = samples or []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.log: list[str] | None = None

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        self.calls.append((op, payload))
        if self.log is not None:
            self.log.append(f"{payload['role']} {op}")
        if payload["role"] == "answer":
            return {"samplesSeconds": []}
        return {"samplesSeconds": self.samples[: payload["samples"]]}


def test_the_agent_echoes_the_payload_with_its_timestamps() -> None:
    reply = echo_reply(EchoRequest(seq=3, sent_at_ns=1)).wire()
    assert reply["payload"] == {"seq": 3, "sentAtNs": 1}
    assert 0 <= reply["sentAtNs"] - reply["receivedAtNs"] < 10**8


async def test_the_answering_agent_admits_the_measuring_one_first_then_it_measures() -> None:
    log: list[str] = []
    a, b = LatencyAgent([0.003, 0.001, 0.002]), LatencyAgent()
    a.log = b.log = log
    result = await measure_feedforward_latency(a, b, ADDRESS_A, ADDRESS_B, samples=3)
    assert log == ["answer link_latency", "measure link_latency"]
    [(_, answer)] = b.calls
    [(_, measure)] = a.calls
    assert answer["peerPublicKeys"] == [encode_public_key(KEY_A)]
    assert measure["peerEndpoint"] == ADDRESS_B[0]
    assert measure["peerPublicKeys"] == [encode_public_key(KEY_B)]
    assert answer["exchange"] == measure["exchange"]
    # the median of the agent-to-agent samples, nothing added
    assert result.feedforward_seconds == 0.002
    assert result.samples_seconds == (0.003, 0.001, 0.002)


async def test_no_echo_goes_through_the_operator() -> None:
    a, b = LatencyAgent([0.001]), LatencyAgent()
    await measure_feedforward_latency(a, b, ADDRESS_A, ADDRESS_B, samples=1)
    assert {op for op, _ in a.calls + b.calls} == {"link_latency"}


async def test_a_short_answer_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 samples came back, 3 asked"):
        await measure_feedforward_latency(
            LatencyAgent([0.001]), LatencyAgent(), ADDRESS_A, ADDRESS_B, samples=3
        )


async def test_a_probe_records_every_sample_and_the_estimate(metrics: QorchMetrics) -> None:
    from qorch.api.manifests import load_manifests

    link = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")]).links[0]
    samples = [0.0004, 0.0002, 0.0003, 0.0005]
    result = await probe_link_feedforward(
        link,
        LatencyAgent(samples),
        LatencyAgent(),
        ADDRESS_A,
        ADDRESS_B,
        samples=4,
        metrics=metrics,
    )
    assert result is not None
    labels = {"namespace": link.metadata.namespace, "link": link.metadata.name}
    r = metrics.registry
    assert r.get_sample_value("qorch_feedforward_latency_seconds_count", labels) == 4
    estimate = r.get_sample_value("qorch_link_feedforward_latency_seconds", labels)
    assert estimate == pytest.approx(0.00035)
    # the link's declared (physical) latency is not part of what was measured
    assert link.spec.classical_latency_microseconds == 250
    assert result.feedforward_microseconds == pytest.approx(350)


@pytest.mark.parametrize("missing", ["answer", "key"])
async def test_a_probe_that_cannot_measure_records_nothing(
    metrics: QorchMetrics, missing: str
) -> None:
    from qorch.api.manifests import load_manifests

    class Old(LatencyAgent):  # an agent that does not know `link_latency`
        async def call(self, op: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
            error = Exception("UnknownOperation: unknown operation 'link_latency'")
            error.code = "UnknownOperation"  # type: ignore[attr-defined]
            raise error

    link = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")]).links[0]
    if missing == "answer":
        agents, address_a = (Old(), Old()), ADDRESS_A
    else:  # a node without a pinned key: its peer could not trust it
        agents, address_a = (LatencyAgent([0.001]), LatencyAgent()), ("http://a.test", ())
    result = await probe_link_feedforward(link, *agents, address_a, ADDRESS_B, metrics=metrics)
    assert result is None
    labels = {"namespace": "default", "link": "a-b"}
    assert (
        metrics.registry.get_sample_value("qorch_feedforward_latency_seconds_count", labels) is None
    )
