"""The channel end to end over real loopback HTTP (aiohttp server and client, ephemeral port)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from qorch.channel import (
    ChannelClient,
    ChannelServer,
    ChannelTimeout,
    MalformedMessage,
    PeerKeyMismatch,
    RemoteError,
    ServerLimits,
    SessionLimits,
    TransportError,
    UnsupportedSuite,
    UntrustedPeer,
    current_trace,
)
from qorch.channel.handshake import CLIENT_HELLO, ServerHandshake, decode_message, encode_message
from qorch.channel.identity import Identity, fingerprint_digest
from qorch.channel.provider import ClassicalProvider
from qorch.channel.suite import classical_benchmark_suite

if TYPE_CHECKING:
    from tests.unit.channel.conftest import FakeClock, Loopback

pytestmark = pytest.mark.asyncio

Serve = Callable[[Callable[[web.Application], None]], AbstractAsyncContextManager["Loopback"]]
CALL_PATH = "/v1/channel/call"
HANDSHAKE_PATH = "/v1/channel/handshake"


@dataclass
class RecordingHandler:
    """The node's application: echoes, fails on request, or stalls."""

    calls: list[tuple[str, dict[str, Any], dict[str, str] | None]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((op, payload, current_trace.get()))
        if op == "fail":
            raise ValueError(f"cannot run {payload.get('circuit')}")
        if op == "stall":
            await asyncio.wait_for(self.release.wait(), timeout=5)
        if op == "not-a-dict":
            return ["a", "list"]  # type: ignore[return-value]
        return {"op": op, "echo": payload}


@dataclass
class Node:
    url: str
    paths: list[str]
    handler: RecordingHandler
    server: ChannelServer


@asynccontextmanager
async def running_node(
    loopback: Serve,
    node_identity: Identity,
    trusted: list[bytes],
    **server_options: Any,
) -> AsyncIterator[Node]:
    handler = RecordingHandler()
    server = ChannelServer(node_identity, trusted, handler, **server_options)
    async with loopback(server.add_routes) as served:
        yield Node(served.url, served.paths, handler, server)


class WireTap:
    """Records the bodies an aiohttp client sends and receives."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.received: list[bytes] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_chunk_sent.append(self._on_sent)
        self.config.on_response_chunk_received.append(self._on_received)

    async def _on_sent(self, _session: Any, _ctx: Any, params: Any) -> None:
        self.sent.append((params.url.path, bytes(params.chunk)))

    async def _on_received(self, _session: Any, _ctx: Any, params: Any) -> None:
        self.received.append(bytes(params.chunk))

    def bodies_to(self, path: str) -> list[bytes]:
        return [body for sent_path, body in self.sent if sent_path == path]


async def _raw_post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body) as response:
        return response.status, json.loads(await response.read())


# --- calls ------------------------------------------------------------------------------------


async def test_a_call_round_trips_with_its_trace_context(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        reply = await client.call("run", {"shots": 100}, trace=trace)
    assert reply == {"op": "run", "echo": {"shots": 100}}
    assert node.handler.calls == [("run", {"shots": 100}, trace)]


async def test_the_callers_trace_context_is_forwarded_by_default(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        token = current_trace.set(trace)
        try:
            await client.call("run", {})
        finally:
            current_trace.reset(token)
    assert node.handler.calls[0][2] == trace


async def test_requests_and_replies_are_encrypted_on_the_wire(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    tap = WireTap()
    secret_circuit = "OPENQASM 2.0; qreg confidential_register[3];"
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        aiohttp.ClientSession(trace_configs=[tap.config]) as http,
    ):
        client = ChannelClient(node.url, operator_identity, node_identity.public_key, http=http)
        await client.call("run", {"circuit": secret_circuit})
    wire = b"".join(body for _, body in tap.sent) + b"".join(tap.received)
    assert tap.bodies_to(CALL_PATH)
    assert b"confidential_register" not in wire
    assert b'"run"' not in wire


async def test_concurrent_calls_each_get_their_own_reply(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        replies = await asyncio.gather(*(client.call("run", {"job": n}) for n in range(8)))
        again = await asyncio.gather(*(client.call("run", {"job": n}) for n in range(8)))
    assert [reply["echo"]["job"] for reply in replies + again] == list(range(8)) * 2


async def test_a_failing_handler_comes_back_as_a_remote_error(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(RemoteError) as raised:
            await client.call("fail", {"circuit": "bell"})
        assert await client.call("run", {}) == {"op": "run", "echo": {}}
    assert raised.value.error_type == "ValueError"
    assert raised.value.remote_message == "cannot run bell"
    assert "Traceback" not in str(raised.value)


async def test_a_handler_returning_something_else_than_a_dict_is_a_remote_error(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(RemoteError, match="TypeError"):
            await client.call("not-a-dict", {})


async def test_logs_never_contain_payloads_or_handler_messages(
    loopback: Serve,
    operator_identity: Identity,
    node_identity: Identity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        await client.call("run", {"circuit": "secret-circuit-1"})
        with pytest.raises(RemoteError):
            await client.call("fail", {"circuit": "secret-circuit-2"})
    assert "secret-circuit" not in caplog.text
    assert "ValueError" in caplog.text  # the failure itself is logged


# --- who may talk to whom ---------------------------------------------------------------------


async def test_a_wrong_node_key_is_detected_before_any_payload_is_sent(
    loopback: Serve,
    operator_identity: Identity,
    node_identity: Identity,
    stranger_identity: Identity,
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, stranger_identity.public_key) as client,
    ):
        with pytest.raises(PeerKeyMismatch):
            await client.call("run", {"circuit": "must not leave the operator"})
    assert node.paths == [HANDSHAKE_PATH]
    assert node.handler.calls == []


async def test_an_impostor_node_gets_nothing_but_the_client_hello(
    loopback: Serve,
    operator_identity: Identity,
    node_identity: Identity,
    stranger_identity: Identity,
) -> None:
    """An impostor that rewrites the pin hint and answers with its own key is caught by the pin."""
    impostor = ServerHandshake(stranger_identity, [operator_identity.public_key])
    received: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        received.append(body)
        fields = decode_message(body, CLIENT_HELLO)
        fields[-1] = fingerprint_digest(stranger_identity.public_key)
        server_hello, _ = impostor.respond(encode_message(CLIENT_HELLO, fields))
        return web.Response(body=server_hello)

    def routes(app: web.Application) -> None:
        app.router.add_post(HANDSHAKE_PATH, answer)
        app.router.add_post(CALL_PATH, answer)

    async with (
        loopback(routes) as site,
        ChannelClient(site.url, operator_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(PeerKeyMismatch, match=stranger_identity.fingerprint):
            await client.call("run", {"circuit": "must not leave the operator"})
    assert site.paths == [HANDSHAKE_PATH]
    assert len(received) == 1 and received[0][0] == CLIENT_HELLO


async def test_a_node_refuses_an_operator_key_it_does_not_trust(
    loopback: Serve,
    operator_identity: Identity,
    node_identity: Identity,
    stranger_identity: Identity,
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, stranger_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(UntrustedPeer, match=stranger_identity.fingerprint):
            await client.call("run", {})
    assert node.handler.calls == []
    assert node.server.stats["sessions"] == 0
    # The agent's sidecar exports this as qorch_agent_channel_auth_failures_total.
    assert (node.server.stats["refusals"], node.server.stats["auth_failures"]) == (1, 1)


async def test_the_classical_baseline_cannot_talk_to_a_node(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    classical = ClassicalProvider()
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(
            node.url,
            Identity.generate(classical),
            Identity.generate(classical).public_key,
            suite=classical_benchmark_suite(),
        ) as client,
    ):
        with pytest.raises(UnsupportedSuite):
            await client.call("run", {})
    assert node.handler.calls == []


# --- records on the wire ----------------------------------------------------------------------


async def test_a_replayed_request_is_refused_and_not_executed_twice(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    tap = WireTap()
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        aiohttp.ClientSession(trace_configs=[tap.config]) as http,
    ):
        client = ChannelClient(node.url, operator_identity, node_identity.public_key, http=http)
        await client.call("run", {"job": "once"})
        status, refusal = await _raw_post(node.url + CALL_PATH, tap.bodies_to(CALL_PATH)[0])
        assert await client.call("run", {"job": "next"})  # the session is unharmed
    assert (status, refusal["error"]) == (409, "ReplayedMessage")
    assert [payload for _, payload, _ in node.handler.calls] == [{"job": "once"}, {"job": "next"}]


async def test_a_tampered_request_is_refused(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    tap = WireTap()
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        aiohttp.ClientSession(trace_configs=[tap.config]) as http,
    ):
        client = ChannelClient(node.url, operator_identity, node_identity.public_key, http=http)
        await client.call("run", {})
        record = bytearray(tap.bodies_to(CALL_PATH)[0])
        record[25] ^= 1  # a sequence-number byte would be refused before decryption
        record[-1] ^= 1
        status, refusal = await _raw_post(node.url + CALL_PATH, bytes(record))
    assert status in (400, 409)
    assert refusal["error"] in ("TamperedMessage", "OutOfOrderMessage", "ReplayedMessage")
    assert "Traceback" not in refusal["message"]


async def test_an_oversized_request_is_refused_with_413(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(
            loopback,
            node_identity,
            [operator_identity.public_key],
            server_limits=ServerLimits(max_record_bytes=16_000),
        ) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(MalformedMessage, match="exceeds"):
            await client.call("run", {"blob": "x" * 20_000})
        assert await client.call("run", {"blob": "small"})
    assert [payload for _, payload, _ in node.handler.calls] == [{"blob": "small"}]


# --- session lifetime -------------------------------------------------------------------------


async def test_a_session_is_renewed_after_its_lifetime(
    loopback: Serve, operator_identity: Identity, node_identity: Identity, clock: FakeClock
) -> None:
    limits = SessionLimits(max_age_seconds=60, max_messages=1000)
    async with (
        running_node(
            loopback, node_identity, [operator_identity.public_key], limits=limits, clock=clock
        ) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key, clock=clock) as client,
    ):
        await client.call("run", {})
        await client.call("run", {})
        assert client.handshakes == 1
        clock.advance(61)
        await client.call("run", {})
        assert client.handshakes == 2
    assert node.server.stats["refusals"] == 0  # the client rotated before the node had to refuse


async def test_a_session_is_renewed_after_its_message_limit(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    limits = SessionLimits(max_age_seconds=600, max_messages=3)
    async with (
        running_node(
            loopback, node_identity, [operator_identity.public_key], limits=limits
        ) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        for n in range(7):
            await client.call("run", {"n": n})
        assert client.handshakes == 3
    assert len(node.handler.calls) == 7


async def test_a_session_the_node_expired_is_replaced_transparently(
    loopback: Serve, operator_identity: Identity, node_identity: Identity, clock: FakeClock
) -> None:
    """The node's clock runs ahead of the client's: one refusal, one fresh handshake, no error."""
    limits = SessionLimits(max_age_seconds=60, max_messages=1000)
    async with (
        running_node(
            loopback, node_identity, [operator_identity.public_key], limits=limits, clock=clock
        ) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        await client.call("run", {"n": 1})
        clock.advance(61)
        assert await client.call("run", {"n": 2}) == {"op": "run", "echo": {"n": 2}}
        assert client.handshakes == 2
    assert [payload for _, payload, _ in node.handler.calls] == [{"n": 1}, {"n": 2}]


async def test_an_expired_session_id_is_refused(
    loopback: Serve, operator_identity: Identity, node_identity: Identity, clock: FakeClock
) -> None:
    tap = WireTap()
    limits = SessionLimits(max_age_seconds=60, max_messages=1000)
    async with (
        running_node(
            loopback, node_identity, [operator_identity.public_key], limits=limits, clock=clock
        ) as node,
        aiohttp.ClientSession(trace_configs=[tap.config]) as http,
    ):
        client = ChannelClient(
            node.url, operator_identity, node_identity.public_key, http=http, clock=clock
        )
        await client.call("run", {})
        old_record = tap.bodies_to(CALL_PATH)[0]
        clock.advance(61)
        await client.call("run", {})  # a fresh session; the node sweeps the old one
        status, refusal = await _raw_post(node.url + CALL_PATH, old_record)
    assert (status, refusal["error"]) == (401, "UnknownSession")


# --- failures of the transport ----------------------------------------------------------------


async def test_a_slow_node_raises_channel_timeout_and_the_client_recovers(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        with pytest.raises(ChannelTimeout, match=r"stall: no reply .* within 0\.3 s") as raised:
            await client.call("stall", {}, timeout=0.3)
        node.handler.release.set()
        assert isinstance(raised.value, TimeoutError)
        assert await client.call("run", {}) == {"op": "run", "echo": {}}


async def test_only_the_calls_own_timeout_bounds_how_long_a_reply_may_take(
    loopback: Serve, operator_identity: Identity, node_identity: Identity
) -> None:
    """An HTTP session's own total timeout (aiohttp's default is 300 s; here 0.2 s) does not
    cut a call short: a reply taking longer still arrives within the call's timeout."""
    async with (
        running_node(loopback, node_identity, [operator_identity.public_key]) as node,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as http,
    ):
        client = ChannelClient(node.url, operator_identity, node_identity.public_key, http=http)
        asyncio.get_running_loop().call_later(0.6, node.handler.release.set)
        began = asyncio.get_running_loop().time()
        assert await client.call("stall", {}, timeout=10) == {"op": "stall", "echo": {}}
        assert asyncio.get_running_loop().time() - began >= 0.6


async def test_a_timeout_inside_the_transport_is_not_reported_as_the_calls_timeout(
    operator_identity: Identity, node_identity: Identity
) -> None:
    """Connecting has its own, shorter limit: its expiry says so, not "no reply within <the
    call's timeout>". A listener whose accept queue is full drops new connection attempts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(4)]
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        try:
            async with ChannelClient(
                f"http://127.0.0.1:{port}",
                operator_identity,
                node_identity.public_key,
                connect_timeout=0.2,
            ) as client:
                with pytest.raises(TransportError, match="ConnectionTimeoutError") as raised:
                    await client.call("run", {}, timeout=30)
        finally:
            for sock in queued:
                sock.close()
    assert not isinstance(raised.value, ChannelTimeout)
    assert "within 30" not in str(raised.value)


async def test_an_unreachable_node_is_a_transport_error(
    operator_identity: Identity, node_identity: Identity
) -> None:
    async with ChannelClient(
        "http://127.0.0.1:9", operator_identity, node_identity.public_key, timeout=5
    ) as client:
        with pytest.raises(TransportError):
            await client.call("run", {})


async def test_a_closed_client_refuses_calls(
    operator_identity: Identity, node_identity: Identity
) -> None:
    client = ChannelClient("http://127.0.0.1:9", operator_identity, node_identity.public_key)
    await client.close()
    with pytest.raises(TransportError, match="closed"):
        await client.call("run", {})


async def test_a_malformed_pin_is_rejected_when_the_client_is_built(
    operator_identity: Identity,
) -> None:
    with pytest.raises(ValueError):
        ChannelClient("http://127.0.0.1:9", operator_identity, b"not a key")
