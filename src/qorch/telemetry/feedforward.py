"""Feed-forward latency, measured agent to agent over their own post-quantum channel.

A feed-forward on a link carries a measurement outcome from one node's controller to the
other's. Two latencies belong to a link and are kept apart:

- the *physical* classical latency (`spec.classicalLatencyMicroseconds`: fibre and
  controller time, declared, since a QPU controller's feed-forward is not this Python
  stack). It alone is charged as idle decoherence in the simulated programs, so the same
  manifests give the same plan and estimate on every run;
- the *measured* latency of the classical path between the two agents: one agent sends
  timestamped echoes straight to the other over the peer channel (qorch.qpu.peer), with
  the peer's pinned key; the operator only tells each its peer and carries no echo. One
  sample is half a round trip less the time the peer held the echo; the estimate is their
  median. It goes into `status.feedforwardLatencyMicroseconds`, the M3 metrics
  (`qorch_feedforward_latency_seconds{link}` per sample, `qorch_link_feedforward_latency_seconds`
  the estimate) and the job's time estimate, never into the physics.

The agent's side of the older operator round trip, `echo_reply`, still answers op `echo`.
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from qorch.agent_protocol import (
    Caller,
    EchoReply,
    EchoRequest,
    LinkLatencyRequest,
    ask,
)
from qorch.channel.identity import encode_public_key

from . import metrics as m

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 5
ECHO_TIMEOUT_SECONDS = 5.0
# Where a node's agent is reached, and the keys pinned for it now.
Address = tuple[str, tuple[bytes, ...]]


def echo_reply(request: EchoRequest) -> EchoReply:
    """The agent's answer to `echo`: the request back, with the agent's receive and send
    times (ns since the epoch, the agent's clock; only their difference is used)."""
    received = time.time_ns()
    return EchoReply(payload=request, received_at_ns=received, sent_at_ns=time.time_ns())


@dataclass(frozen=True)
class FeedforwardMeasurement:
    """One measurement of a link's classical path, agent to agent."""

    samples_seconds: tuple[float, ...]

    @property
    def feedforward_seconds(self) -> float:
        """Median one-way latency of the classical path between the agents."""
        return statistics.median(self.samples_seconds)

    @property
    def feedforward_microseconds(self) -> float:
        return self.feedforward_seconds * 1e6


def _keys(address: Address, which: str) -> list[str]:
    if not address[1]:
        raise ValueError(f"the agent of {which} has no pinned key: its peer cannot trust it")
    return [encode_public_key(k) for k in address[1]]


async def measure_feedforward_latency(
    client_a: Caller,
    client_b: Caller,
    address_a: Address,
    address_b: Address,
    *,
    samples: int = DEFAULT_SAMPLES,
    timeout: float = ECHO_TIMEOUT_SECONDS,
    exchange: str | None = None,
) -> FeedforwardMeasurement:
    """Have the agent behind `client_a` measure its classical path to the agent behind
    `client_b`: b first admits a's key for one exchange, then a echoes to b's endpoint
    under b's pinned key. Raises what the clients raise (AgentError) when an agent does
    not answer, ValueError when an agent has no pinned key."""
    if samples < 1:
        raise ValueError("samples must be >= 1")
    exchange = exchange or f"latency-{uuid.uuid4().hex[:16]}"
    answer = LinkLatencyRequest(
        exchange=exchange,
        role="answer",
        peer_public_keys=_keys(address_a, "the first node"),
        wait_seconds=timeout,
    )
    await ask(client_b, answer, timeout=timeout)
    measure = LinkLatencyRequest(
        exchange=exchange,
        role="measure",
        peer_endpoint=address_b[0],
        peer_public_keys=_keys(address_b, "the second node"),
        samples=samples,
        wait_seconds=timeout,
    )
    reply = await ask(client_a, measure, timeout=2 * timeout)
    if len(reply.samples_seconds) != samples:
        raise ValueError(f"{len(reply.samples_seconds)} samples came back, {samples} asked")
    return FeedforwardMeasurement(tuple(reply.samples_seconds))


def record_feedforward(
    namespace: str,
    link: str,
    measurement: FeedforwardMeasurement,
    metrics: m.QorchMetrics | None = None,
) -> None:
    """Every sample into the histogram, the median into the link's gauge."""
    record = (metrics or m.METRICS).record
    for sample in measurement.samples_seconds:
        record("qorch_feedforward_latency_seconds", sample, namespace=namespace, link=link)
    record(
        "qorch_link_feedforward_latency_seconds",
        measurement.feedforward_seconds,
        namespace=namespace,
        link=link,
    )


async def probe_link_feedforward(
    link: Any,
    client_a: Caller,
    client_b: Caller,
    address_a: Address,
    address_b: Address,
    *,
    samples: int = DEFAULT_SAMPLES,
    metrics: m.QorchMetrics | None = None,
) -> FeedforwardMeasurement | None:
    """Measure an EntanglementLink's classical path agent to agent and record it.

    `client_a`/`address_a` are the agent of `link.spec.nodes[0]`, `b` of `[1]`. When an
    agent does not answer (or does not know `link_latency` yet) nothing is recorded, the
    reason is logged, and the result is None: a latency that was not measured is not made up.
    """
    try:
        measurement = await measure_feedforward_latency(
            client_a, client_b, address_a, address_b, samples=samples
        )
    except Exception as exc:  # AgentError and the like; cancellation passes through
        log.warning(
            "feed-forward latency of link %s/%s not measured: %s",
            link.metadata.namespace,
            link.metadata.name,
            getattr(exc, "code", None) or type(exc).__name__,
        )
        return None
    record_feedforward(link.metadata.namespace, link.metadata.name, measurement, metrics)
    return measurement
