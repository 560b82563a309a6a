"""Agent to agent, for LOCC wire cuts: two agents on loopback HTTP behind the PQ channel, the
sender's outcomes going straight to the receiver. Faults end both programs with a named
code, never with a partial result: a message that never comes (bounded wait), one signed
by another key, one out of order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from qiskit import QuantumCircuit

from qorch.agent_protocol import (
    AgentError,
    ErrorCode,
    PeerBitsRequest,
    RunRequest,
    RunResult,
    ask,
)
from qorch.api import QuantumNode
from qorch.channel import ChannelClient, RemoteError, UntrustedPeer
from qorch.channel.http import ServerLimits
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.strategies.locc_cut import LoccCutWork
from qorch.planner.cutting import exact_expectation_values
from qorch.planner.locc import Shots, find_wire_cuts, plan_locc_cut
from qorch.qpu.agent import QpuAgent, build_app
from qorch.qpu.agent_keys import AgentKeys
from qorch.qpu.peer import PEER_PREFIX, sign_bits
from qorch.qpu.transport import SecureAgentClient

OPERATOR = Identity.generate()


def node(name: str) -> QuantumNode:
    return QuantumNode.model_validate(
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {"qubits": 4},
        }
    )


@dataclass
class Served:
    agent: QpuAgent
    identity: Identity
    endpoint: str

    def client(self) -> SecureAgentClient:
        return SecureAgentClient(self.endpoint, OPERATOR, self.identity.public_key)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[str], Coroutine[Any, Any, Served]]]:
    runners: list[web.AppRunner] = []

    async def start(name: str) -> Served:
        identity = Identity.generate()
        agent = QpuAgent(node(name))
        limits = ServerLimits()
        keys = AgentKeys(None, [], identity, [OPERATOR.public_key])
        runner = web.AppRunner(build_app(agent, keys, limits))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Served(agent, identity, f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


def ghz_chain() -> tuple[QuantumCircuit, list[str]]:
    """q0..q1 on the sender, q1 handed over, q1..q2 on the receiver."""
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.ry(0.4, 1)
    circuit.cx(1, 2)
    circuit.rx(0.3, 2)
    return circuit, ["ZZZ", "ZIZ", "XXX", "IZZ"]


def work_between(a: Served, b: Served, wait: float = 30.0) -> LoccCutWork:
    circuit, observables = ghz_chain()
    plan = plan_locc_cut(circuit, observables, "a", "b", find_wire_cuts(circuit)[0], "a-b")
    work = LoccCutWork(circuit, plan, "a-b", wait_seconds=wait)
    addresses = {
        "a": (a.endpoint, (a.identity.public_key,)),
        "b": (b.endpoint, (b.identity.public_key,)),
    }
    work.locate(addresses.__getitem__)
    return work


async def run_both(
    a: Served, b: Served, payloads: dict[str, RunRequest]
) -> list[RunResult | BaseException]:
    send, receive = payloads["locc-send-a"], payloads["locc-receive-b"]
    ca, cb = a.client(), b.client()
    try:
        return await asyncio.gather(
            ask(ca, send, timeout=120), ask(cb, receive, timeout=120), return_exceptions=True
        )
    finally:
        await ca.close()
        await cb.close()


async def test_outcomes_go_agent_to_agent_and_knit_to_the_exact_values(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b)
    sent, received = await run_both(a, b, work.payloads(3000, "ns/job/uid/1"))
    assert isinstance(sent, RunResult) and isinstance(received, RunResult), (sent, received)
    assert sent.locc is not None and received.locc is not None
    # 2 observable groups x 3 bases, 1000 shots each, 1024 to a message: one message each.
    assert sent.locc.messages == received.locc.messages == 6
    assert len(sent.locc.message_seconds) == 6
    assert a.agent.peers is not None and b.agent.peers is not None
    assert (a.agent.peers.counters.sent, b.agent.peers.counters.received) == (6, 6)
    assert b.agent.telemetry.peer["received"] == 6
    # The exchange is closed: its sender's key is admitted no more.
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as late:
        with pytest.raises(UntrustedPeer):
            await late.call("peer_bits", {})
    replies = {"locc-send-a": sent, "locc-receive-b": received}
    shots = work._shots(replies)
    assert [len(s.sender) for s in shots] == [1000] * 6
    values, errors = work.knitting.reconstruct(shots)
    exact = exact_expectation_values(work.circuit, list(work.knitting.observables))
    for value, error, expected in zip(values, errors, exact, strict=True):
        # 4.5 standard errors: a two-sided normal tail of 7e-6 per value.
        assert abs(value - expected) <= 4.5 * error, (value, expected, error)


async def test_a_message_that_never_comes_fails_the_receiver_in_bounded_time(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b, wait=1.0)
    receive = work.payloads(300, "ns/job/uid/1")["locc-receive-b"]
    client = b.client()
    try:
        with pytest.raises(AgentError) as caught:
            await ask(client, receive, timeout=30)
    finally:
        await client.close()
    assert caught.value.code == ErrorCode.PEER_MESSAGE_MISSING
    assert "did not come within 1 s" in caught.value.message


async def test_a_sender_the_receiver_does_not_expect_is_refused_by_the_channel(
    serve: Any,
) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b, wait=1.0)
    send = work.payloads(300, "ns/job/uid/1")["locc-send-a"]
    client = a.client()
    try:
        with pytest.raises(AgentError) as caught:
            await ask(client, send, timeout=30)
    finally:
        await client.close()
    assert caught.value.code == ErrorCode.PEER_UNREACHABLE
    assert "UntrustedPeer" in caught.value.message


async def _receiving(b: Served, work: LoccCutWork) -> tuple[asyncio.Task[RunResult], Any]:
    """The receiver's program started, its exchange open."""
    receive = work.payloads(300, "ns/job/uid/1")["locc-receive-b"]
    client = b.client()
    task = asyncio.ensure_future(ask(client, receive, timeout=60))
    assert b.agent.peers is not None
    for _ in range(500):
        if b.agent.peers._inbound:
            break
        await asyncio.sleep(0.01)
    return task, client


async def test_a_message_signed_by_another_key_fails_both_sides(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b)
    task, client = await _receiving(b, work)
    [exchange] = b.agent.peers._inbound  # type: ignore[union-attr]
    # The channel admits a's key; the message inside is signed by someone else.
    forged = sign_bits(
        PeerBitsRequest(exchange=exchange, seq=0, subexperiment=0, bits=[0, 1]), Identity.generate()
    )
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as peer:
        with pytest.raises(RemoteError) as refused:
            await peer.call(forged.operation(), forged.wire())
    assert refused.value.error_type == ErrorCode.PEER_BAD_SIGNATURE
    with pytest.raises(AgentError) as caught:
        await task
    await client.close()
    assert caught.value.code == ErrorCode.PEER_BAD_SIGNATURE


async def test_a_message_out_of_order_fails_the_receiver(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b)
    task, client = await _receiving(b, work)
    [exchange] = b.agent.peers._inbound  # type: ignore[union-attr]
    skipped = sign_bits(
        PeerBitsRequest(exchange=exchange, seq=1, subexperiment=0, bits=[0, 1]), a.identity
    )
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as peer:
        with pytest.raises(RemoteError) as refused:
            await peer.call(skipped.operation(), skipped.wire())
    assert refused.value.error_type == ErrorCode.PEER_OUT_OF_ORDER
    with pytest.raises(AgentError) as caught:
        await task
    await client.close()
    assert caught.value.code == ErrorCode.PEER_OUT_OF_ORDER
    assert "message 1 came where 0 was due" in caught.value.message


async def test_a_stranger_cannot_open_the_peer_channel(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b)
    task, client = await _receiving(b, work)
    stranger = Identity.generate()
    async with ChannelClient(
        b.endpoint, stranger, b.identity.public_key, prefix=PEER_PREFIX
    ) as peer:
        with pytest.raises(UntrustedPeer):
            await peer.call("peer_bits", {})
    task.cancel()
    await client.close()


async def test_the_operator_channel_does_not_carry_peer_messages(serve: Any) -> None:
    b = await serve("b")
    client = b.client()
    try:
        with pytest.raises(AgentError) as caught:
            await client.call(
                "peer_bits", {"exchange": "x", "seq": 0, "subexperiment": 0, "bits": []}
            )
    finally:
        await client.close()
    assert caught.value.code == ErrorCode.UNKNOWN_OPERATION


def test_shots_line_up_with_the_sender_order() -> None:
    assert Shots(["0 1"], [0], ["00"]).sender == ["0 1"]
    assert encode_public_key(OPERATOR.public_key)


async def test_an_exchange_that_ends_short_is_no_result(serve: Any) -> None:
    a, b = await serve("a"), await serve("b")
    work = work_between(a, b)
    task, client = await _receiving(b, work)
    [exchange] = b.agent.peers._inbound  # type: ignore[union-attr]
    early = sign_bits(
        PeerBitsRequest(exchange=exchange, seq=0, subexperiment=0, bits=[0, 1], last=True),
        a.identity,
    )
    async with ChannelClient(
        b.endpoint, a.identity, b.identity.public_key, prefix=PEER_PREFIX
    ) as peer:
        await peer.call(early.operation(), early.wire())
    with pytest.raises(AgentError) as caught:
        await task
    await client.close()
    assert caught.value.code == ErrorCode.PEER_MESSAGE_MISSING
    assert "ended with 2 shots of subexperiment 0" in caught.value.message
