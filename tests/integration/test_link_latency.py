"""A link's classical path measured agent to agent: two real agents on loopback behind the
post-quantum channel; the measuring one echoes straight to the other, whose pinned key it
checks, and the other admits only the key the operator named."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from qorch.agent_protocol import AgentError
from qorch.api import QuantumNode
from qorch.channel import ChannelClient, RemoteError, UntrustedPeer
from qorch.channel.http import ServerLimits
from qorch.channel.identity import Identity
from qorch.qpu.agent import QpuAgent, build_app
from qorch.qpu.agent_keys import AgentKeys
from qorch.qpu.peer import PEER_PREFIX
from qorch.qpu.transport import SecureAgentClient
from qorch.telemetry.feedforward import measure_feedforward_latency

OPERATOR = Identity.generate()


def node(name: str) -> QuantumNode:
    return QuantumNode.model_validate(
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {"qubits": 2},
        }
    )


@dataclass
class Served:
    agent: QpuAgent
    identity: Identity
    endpoint: str

    def client(self) -> SecureAgentClient:
        return SecureAgentClient(self.endpoint, OPERATOR, self.identity.public_key)

    @property
    def address(self) -> tuple[str, tuple[bytes, ...]]:
        return self.endpoint, (self.identity.public_key,)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[str], Coroutine[Any, Any, Served]]]:
    runners: list[web.AppRunner] = []

    async def start(name: str) -> Served:
        identity = Identity.generate()
        agent = QpuAgent(node(name))
        keys = AgentKeys(None, [], identity, [OPERATOR.public_key])
        runner = web.AppRunner(build_app(agent, keys, ServerLimits()))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Served(agent, identity, f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_the_classical_path_is_measured_between_the_agents(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    client_a, client_b = a.client(), b.client()
    try:
        result = await measure_feedforward_latency(
            client_a, client_b, a.address, b.address, samples=7
        )
    finally:
        await client_a.close()
        await client_b.close()
    assert len(result.samples_seconds) == 7
    # loopback between two agents: more than nothing, far less than a timeout; a loaded
    # machine stalls this process for a tenth of a second at times, so the typical echo
    # (the median) is held to loopback speed and every one to well under a timeout
    assert all(0 < s < 1.0 for s in result.samples_seconds)
    assert statistics.median(result.samples_seconds) < 0.05
    assert b.agent.peers is not None
    assert b.agent.peers.counters.received == 0  # echoes are not LOCC traffic
    # the last echo closed the exchange: b admits the measuring key no more
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as late:
        with pytest.raises(UntrustedPeer):
            await late.call("peer_echo", {"exchange": "again", "seq": 0})


async def test_an_echo_exchange_carries_no_bits(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    assert b.agent.peers is not None
    b.agent.peers.answer_echoes("x", (a.identity.public_key,), 10)
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as peer:
        bits = {"exchange": "x", "seq": 0, "subexperiment": 0, "bits": [1]}
        with pytest.raises(RemoteError) as caught:
            await peer.call("peer_bits", bits)
        assert caught.value.error_type == "BadRequest"
        assert "does not take peer_bits" in caught.value.remote_message
        reply = await peer.call("peer_echo", {"exchange": "x", "seq": 0, "last": True})
        assert reply["seq"] == 0


async def test_an_agent_answers_only_the_key_the_operator_named(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    stranger = ("http://unused", (Identity.generate().public_key,))
    client_a, client_b = a.client(), b.client()
    try:
        with pytest.raises(AgentError):
            await measure_feedforward_latency(
                client_a, client_b, stranger, b.address, samples=2, timeout=3
            )
    finally:
        await client_a.close()
        await client_b.close()


async def test_the_measuring_agent_checks_the_peers_pinned_key(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    wrong = (b.endpoint, (Identity.generate().public_key,))
    client_a, client_b = a.client(), b.client()
    try:
        with pytest.raises(AgentError) as caught:
            await measure_feedforward_latency(
                client_a, client_b, a.address, wrong, samples=2, timeout=3
            )
    finally:
        await client_a.close()
        await client_b.close()
    assert "Peer" in caught.value.code or "Key" in caught.value.code, caught.value
