"""Feedforward latency, measured: timestamped echoes to the two agents of a link.

A feed-forward on a link carries a measurement outcome from one node's controller to the
other's. The classical path between two agents runs through the authenticated channel, so
its latency is measured over that channel: the pipeline sends timestamped `echo` calls to
each agent, subtracts the time the agent spent between receiving and answering (its own
timestamps), and takes half of the two network round trips as the one-way time from one
agent to the other:

    one sample   = (rtt(a) + rtt(b)) / 2 + declared classicalLatencyMicroseconds
    the estimate = median of the samples

The declared latency stands for the part of the path the channel does not see (the link's
own classical channel). Every sample goes into `qorch_feedforward_latency_seconds{link}`;
the estimate is what the planner uses and `qorch_link_feedforward_latency_seconds` shows.

The agent's side is `echo_reply(request)`, answering op `echo`.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Any

from qorch.agent_protocol import Caller, EchoReply, EchoRequest, ask

from . import metrics as m

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 5
ECHO_TIMEOUT_SECONDS = 5.0


def echo_reply(request: EchoRequest) -> EchoReply:
    """The agent's answer to `echo`: the request back, with the agent's receive and send
    times (ns since the epoch, the agent's clock; only their difference is used)."""
    received = time.time_ns()
    return EchoReply(payload=request, received_at_ns=received, sent_at_ns=time.time_ns())


@dataclass(frozen=True)
class FeedforwardMeasurement:
    """Result of one probe of a link."""

    samples_seconds: tuple[float, ...]
    rtt_a_seconds: tuple[float, ...]
    rtt_b_seconds: tuple[float, ...]
    declared_seconds: float

    @property
    def feedforward_seconds(self) -> float:
        """Median one-way feedforward latency, declared latency included."""
        return statistics.median(self.samples_seconds)

    @property
    def feedforward_microseconds(self) -> float:
        return self.feedforward_seconds * 1e6

    @property
    def measured_seconds(self) -> float:
        """The measured part alone: median of (rtt_a + rtt_b) / 2."""
        return self.feedforward_seconds - self.declared_seconds


async def echo_rtt(client: Caller, seq: int, timeout: float = ECHO_TIMEOUT_SECONDS) -> float:
    """Round trip of one echo to an agent, less the time the agent held it, in seconds."""
    sent = time.perf_counter_ns()
    request = EchoRequest(seq=seq, sent_at_ns=time.time_ns())
    reply = await ask(client, request, timeout=timeout)
    elapsed = time.perf_counter_ns() - sent
    held = 0  # an agent without timestamps: the whole round trip counts
    if reply.sent_at_ns is not None and reply.received_at_ns is not None:
        held = max(0, reply.sent_at_ns - reply.received_at_ns)
    if reply.payload.seq != seq:
        raise ValueError(f"echo {seq} answered with echo {reply.payload.seq}")
    return max(0, elapsed - min(held, elapsed)) / 1e9


async def measure_feedforward_latency(
    client_a: Caller,
    client_b: Caller,
    *,
    declared_latency_seconds: float = 0.0,
    samples: int = DEFAULT_SAMPLES,
    timeout: float = ECHO_TIMEOUT_SECONDS,
) -> FeedforwardMeasurement:
    """Measure the feedforward latency between the agents behind `client_a` and `client_b`.

    The first echo to each agent is a warm-up (it may open a channel session, whose
    handshake is no part of a feed-forward) and is not counted. Raises what the clients
    raise (AgentError) when an agent does not answer.
    """
    if samples < 1:
        raise ValueError("samples must be >= 1")
    await echo_rtt(client_a, -1, timeout)
    await echo_rtt(client_b, -1, timeout)
    rtt_a, rtt_b, out = [], [], []
    for seq in range(samples):
        a = await echo_rtt(client_a, seq, timeout)
        b = await echo_rtt(client_b, seq, timeout)
        rtt_a.append(a)
        rtt_b.append(b)
        out.append((a + b) / 2 + declared_latency_seconds)
    return FeedforwardMeasurement(tuple(out), tuple(rtt_a), tuple(rtt_b), declared_latency_seconds)


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
    *,
    samples: int = DEFAULT_SAMPLES,
    metrics: m.QorchMetrics | None = None,
) -> FeedforwardMeasurement | None:
    """Measure an EntanglementLink's feedforward latency and record it (one-line hook).

    `client_a` and `client_b` are the agents of `link.spec.nodes[0]` and `[1]`. When an
    agent does not answer (or does not know `echo` yet) nothing is recorded, the reason is
    logged, and the result is None: a latency that was not measured is not made up.
    """
    declared = float(link.spec.classical_latency_microseconds or 0.0) * 1e-6
    try:
        measurement = await measure_feedforward_latency(
            client_a, client_b, declared_latency_seconds=declared, samples=samples
        )
    except Exception as exc:  # AgentError and the like; cancellation passes through
        log.warning(
            "feedforward probe of link %s/%s failed: %s",
            link.metadata.namespace,
            link.metadata.name,
            getattr(exc, "code", None) or type(exc).__name__,
        )
        return None
    record_feedforward(link.metadata.namespace, link.metadata.name, measurement, metrics)
    return measurement
