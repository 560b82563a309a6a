"""What a peer without a key can make a node spend, over real loopback HTTP: bodies refused
from their declared length, signatures only for a returned cookie, per-address rates, and
connections that stall closed. Small limits and timeouts stand in for the defaults."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from qorch.channel import ChannelClient, ChannelServer, ServerLimits
from qorch.channel.handshake import (
    CLIENT_HELLO,
    HELLO_RETRY,
    SERVER_HELLO,
    ClientHandshake,
    decode_message,
    encode_message,
)
from qorch.channel.identity import Identity
from qorch.channel.session import MIN_RECORD_SIZE, RECORD_REQUEST
from tests.unit.channel.conftest import Loopback

pytestmark = pytest.mark.asyncio

Serve = Callable[..., AbstractAsyncContextManager[Loopback]]
HANDSHAKE_PATH, CALL_PATH = "/v1/channel/handshake", "/v1/channel/call"
OTHER_PEER = "127.0.0.2"  # the whole of 127.0.0.0/8 is loopback: another address here


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """One HTTP/1.1 connection written by hand, from a chosen local address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, source: str = "127.0.0.1") -> Raw:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port), local_addr=(source, 0)))

    def send_head(self, path: str, headers: dict[str, str]) -> None:
        lines = [f"POST {path} HTTP/1.1", "Host: node"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def post(self, path: str, body: bytes) -> Reply:
        self.send_head(path, {"Content-Length": str(len(body))})
        self.writer.write(body)
        return await self.reply()

    async def reply(self) -> Reply:
        async with asyncio.timeout(10):
            status_line = await self.reader.readline()
            headers = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Reply(int(status_line.split()[1]), headers, body)

    async def closed_by_peer(self) -> bool:
        """Whether the node closes this connection (within a bound far above any timeout
        the tests configure)."""
        try:
            async with asyncio.timeout(10):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


@dataclass
class Node:
    url: str
    server: ChannelServer
    release: asyncio.Event


@asynccontextmanager
async def node_with(
    loopback: Serve, node_identity: Identity, operator_identity: Identity, **limits: Any
) -> AsyncIterator[Node]:
    release = asyncio.Event()

    async def handler(op: str, payload: dict[str, Any]) -> dict[str, Any]:
        if op == "stall":
            await asyncio.wait_for(release.wait(), 10)
        return {"op": op}

    bounds = ServerLimits(**limits)
    server = ChannelServer(
        node_identity, [operator_identity.public_key], handler, server_limits=bounds
    )
    async with loopback(server.add_routes, **bounds.runner_options()) as served:
        yield Node(served.url, server, release)


def hello_for(operator_identity: Identity, node_identity: Identity) -> bytes:
    return ClientHandshake(operator_identity, node_identity.public_key).hello()


def with_cookie(hello: bytes, hello_retry: bytes) -> bytes:
    cookie = decode_message(hello_retry, HELLO_RETRY)[-1]
    return encode_message(CLIENT_HELLO, [*decode_message(hello, CLIENT_HELLO), cookie])


async def post(url: str, path: str, body: bytes, source: str = "127.0.0.1") -> Reply:
    raw = await Raw.open(url, source)
    try:
        return await raw.post(path, body)
    finally:
        raw.close()


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "declared"),
    [(CALL_PATH, 100 * 1024 * 1024), (HANDSHAKE_PATH, 100 * 1024 * 1024), (HANDSHAKE_PATH, 20_000)],
)
async def test_a_body_above_its_limit_is_refused_from_its_declared_length(
    loopback: Serve,
    node_identity: Identity,
    operator_identity: Identity,
    path: str,
    declared: int,
) -> None:
    """Only the request head is sent: the 413 comes before any byte of the body is read."""
    async with node_with(
        loopback, node_identity, operator_identity, max_record_bytes=1024 * 1024
    ) as node:
        raw = await Raw.open(node.url)
        raw.send_head(path, {"Content-Length": str(declared)})
        reply = await raw.reply()
        if declared > 64 * 1024:  # too much to drain: the node hangs up
            assert await raw.closed_by_peer()
        raw.close()
    assert reply.status == 413
    assert reply.json()["error"] == "MalformedMessage"
    assert node.server.stats["calls"] == 0


async def test_a_body_without_a_declared_length_is_refused(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(loopback, node_identity, operator_identity) as node:
        raw = await Raw.open(node.url)
        raw.send_head(HANDSHAKE_PATH, {"Transfer-Encoding": "chunked"})
        reply = await raw.reply()
        raw.close()
    assert reply.status == 411


async def test_a_record_for_no_live_session_is_refused_after_its_header(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    """A 10 MB record declared, its first 41 bytes sent: refused without waiting for more."""
    async with node_with(loopback, node_identity, operator_identity) as node:
        raw = await Raw.open(node.url)
        raw.send_head(CALL_PATH, {"Content-Length": str(10 * 1024 * 1024)})
        raw.writer.write(bytes([RECORD_REQUEST]) + bytes(MIN_RECORD_SIZE - 1))
        reply = await raw.reply()
        assert await raw.closed_by_peer()
        raw.close()
    assert (reply.status, reply.json()["error"]) == (401, "UnknownSession")


async def test_a_slow_body_is_refused_when_its_time_is_up(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(
        loopback,
        node_identity,
        operator_identity,
        body_timeout_seconds=0.3,
        min_body_bytes_per_second=10**9,
    ) as node:
        raw = await Raw.open(node.url)
        raw.send_head(HANDSHAKE_PATH, {"Content-Length": "2000"})
        raw.writer.write(b"\x01" * 10)
        reply = await raw.reply()
        assert await raw.closed_by_peer()
        raw.close()
    assert reply.status == 408


async def test_a_truncated_body_is_logged_in_one_line_without_a_traceback(
    loopback: Serve,
    node_identity: Identity,
    operator_identity: Identity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with node_with(loopback, node_identity, operator_identity) as node:
        for path in (HANDSHAKE_PATH, CALL_PATH):
            raw = await Raw.open(node.url)
            raw.send_head(path, {"Content-Length": "5000"})
            raw.writer.write(b"\x01" * 20)  # not even a record header
            await raw.writer.drain()
            raw.close()
        async with asyncio.timeout(10):
            while node.server.stats["refusals"] < 2:
                await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
    cut = [r for r in caplog.records if "cut short" in r.getMessage()]
    assert len(cut) == 2 and all(r.levelno == logging.INFO for r in cut)


# --- handshakes: cookies, replays, rates ------------------------------------------------------


async def test_a_hello_without_its_cookie_gets_a_cookie_and_no_signature(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    hello = hello_for(operator_identity, node_identity)
    async with node_with(loopback, node_identity, operator_identity) as node:
        first = await post(node.url, HANDSHAKE_PATH, hello)
        second = await post(node.url, HANDSHAKE_PATH, hello)
        assert node.server.stats["signatures"] == 0
        assert node.server.stats["pending"] == 0  # nothing kept for a cookie
        answered = await post(node.url, HANDSHAKE_PATH, with_cookie(hello, first.body))
        assert node.server.stats["signatures"] == 1
        replayed = await post(node.url, HANDSHAKE_PATH, with_cookie(hello, second.body))
        stats = node.server.stats
    assert [first.status, second.status, answered.status] == [200, 200, 200]
    assert first.body[0] == second.body[0] == HELLO_RETRY
    assert answered.body[0] == SERVER_HELLO
    assert (replayed.status, replayed.json()["error"]) == (409, "ReplayedMessage")
    assert (stats["signatures"], stats["hello_retries"]) == (1, 2)


async def test_a_cookie_is_worth_nothing_from_another_address(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    hello = hello_for(operator_identity, node_identity)
    async with node_with(loopback, node_identity, operator_identity) as node:
        retry = await post(node.url, HANDSHAKE_PATH, hello)
        elsewhere = await post(node.url, HANDSHAKE_PATH, with_cookie(hello, retry.body), OTHER_PEER)
        signatures = node.server.stats["signatures"]
    assert elsewhere.status == 200 and elsewhere.body[0] == HELLO_RETRY
    assert signatures == 0


async def test_signatures_are_rate_limited_per_address(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(
        loopback,
        node_identity,
        operator_identity,
        signatures_per_second=0.01,
        signature_burst=2,
    ) as node:

        async def signed(source: str) -> Reply:
            hello = hello_for(operator_identity, node_identity)
            retry = await post(node.url, HANDSHAKE_PATH, hello, source)
            return await post(node.url, HANDSHAKE_PATH, with_cookie(hello, retry.body), source)

        replies = [await signed("127.0.0.1") for _ in range(3)]
        other = await signed(OTHER_PEER)
        signatures = node.server.stats["signatures"]
    assert [r.status for r in replies] == [200, 200, 429]
    assert replies[2].json()["error"] == "Throttled"
    assert replies[2].json()["retryAfter"] > 0 and "retry-after" in replies[2].headers
    assert other.status == 200 and other.body[0] == SERVER_HELLO
    assert signatures == 3


async def test_a_client_waits_out_throttling_and_its_calls_succeed(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(
        loopback, node_identity, operator_identity, signatures_per_second=2, signature_burst=1
    ) as node:
        clients = [
            ChannelClient(node.url, operator_identity, node_identity.public_key) for _ in range(2)
        ]
        try:
            replies = await asyncio.gather(*(c.call("ping", {}, timeout=10) for c in clients))
        finally:
            for client in clients:
                await client.close()
        stats = node.server.stats
    assert replies == [{"op": "ping"}, {"op": "ping"}]
    assert stats["throttled"] >= 1 and stats["signatures"] == 2


async def test_a_peer_stalling_its_handshakes_does_not_hold_up_another(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(
        loopback, node_identity, operator_identity, max_handshakes_in_flight_per_peer=1
    ) as node:
        stalled = await Raw.open(node.url, OTHER_PEER)
        stalled.send_head(HANDSHAKE_PATH, {"Content-Length": "2000"})  # and no body
        queued = await Raw.open(node.url, OTHER_PEER)
        queued.send_head(HANDSHAKE_PATH, {"Content-Length": "2000"})
        async with ChannelClient(node.url, operator_identity, node_identity.public_key) as client:
            assert await client.call("ping", {}, timeout=10) == {"op": "ping"}
        stalled.close()
        queued.close()


async def test_refusals_past_an_addresss_rate_are_held_back(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with node_with(
        loopback,
        node_identity,
        operator_identity,
        refusals_per_second=0.01,
        refusal_burst=1,
        max_refusal_delay_seconds=0.5,
    ) as node:
        loop = asyncio.get_running_loop()
        junk = b"\x09" * 10
        await post(node.url, HANDSHAKE_PATH, junk)
        began = loop.time()
        held = await post(node.url, HANDSHAKE_PATH, junk)
        held_for = loop.time() - began
        other = await post(node.url, HANDSHAKE_PATH, junk, OTHER_PEER)
    assert held.status == other.status == 400
    assert held_for >= 0.45  # past its one refusal: held for max_refusal_delay_seconds


# --- connections and calls --------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"POST /v1/channel/handshake HTTP/1.1\r\nHost: no", b"X"])
async def test_a_connection_without_a_complete_request_head_is_closed(
    loopback: Serve, node_identity: Identity, operator_identity: Identity, sent: bytes
) -> None:
    async with node_with(
        loopback, node_identity, operator_identity, idle_timeout_seconds=0.3
    ) as node:
        raw = await Raw.open(node.url)
        raw.writer.write(sent)
        assert await raw.closed_by_peer()
        raw.close()


async def test_calls_beyond_the_limit_in_flight_are_refused_before_reading(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    async with (
        node_with(loopback, node_identity, operator_identity, max_calls_in_flight=1) as node,
        ChannelClient(node.url, operator_identity, node_identity.public_key) as client,
    ):
        stalled = asyncio.create_task(client.call("stall", {}, timeout=10))
        async with asyncio.timeout(10):
            while node.server.stats["calls"] < 1:
                await asyncio.sleep(0.01)
        refused = await post(node.url, CALL_PATH, bytes(MIN_RECORD_SIZE))
        node.release.set()
        assert await stalled == {"op": "stall"}
        assert await client.call("ping", {}, timeout=10) == {"op": "ping"}
    assert (refused.status, refused.json()["error"]) == (503, "Throttled")


async def test_an_agent_padding_its_small_replies_is_refused_not_parsed(
    loopback: Serve, node_identity: Identity, operator_identity: Identity
) -> None:
    """A node's agent may be its tenant's to run: a health check answered with megabytes
    would otherwise be read and parsed on the operator's event loop, every check. Replies
    that grow with a job (run, wait) keep the channel's own limit."""
    from qorch.agent_protocol import AgentError
    from qorch.qpu.transport import SecureAgentClient

    async def padded(op: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"op": op, "pad": "x" * (2 << 20)}

    server = ChannelServer(node_identity, [operator_identity.public_key], padded)
    async with loopback(server.add_routes) as served:
        client = SecureAgentClient(served.url, operator_identity, node_identity.public_key)
        vetted = SecureAgentClient(served.url, operator_identity, node_identity.public_key)

        async def attest(call: Any, fingerprint: str | None) -> None:
            await call("attest", {})

        vetted.vet_sessions(attest)  # a new session's attestation: read within the same bound
        try:
            with pytest.raises(AgentError, match="exceeds 1048576 bytes"):
                await client.call("health", {}, timeout=30)
            reply = await client.call("wait", {}, timeout=30)
            with pytest.raises(AgentError, match="exceeds 1048576 bytes"):
                await vetted.call("wait", {}, timeout=30)
        finally:
            await client.close()
            await vetted.close()
    assert reply["op"] == "wait" and len(reply["pad"]) == 2 << 20
