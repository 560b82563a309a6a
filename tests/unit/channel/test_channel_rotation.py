"""Key rotation on the channel: a client pins a node's current and next key, each in its
window; a node takes a new key (and a new trusted set) while it serves."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from qorch.channel import (
    ChannelClient,
    ChannelServer,
    KeyNotYetValid,
    KeyPins,
    KeyRetired,
    MalformedMessage,
    PeerKeyMismatch,
    PinnedKey,
    UntrustedPeer,
)
from qorch.channel.handshake import (
    CLIENT_HELLO,
    ClientHandshake,
    ServerHandshake,
    decode_message,
    encode_message,
)
from qorch.channel.identity import Identity, fingerprint_digest

if TYPE_CHECKING:
    from tests.unit.channel.conftest import Loopback

Serve = Callable[[Callable[[web.Application], None]], AbstractAsyncContextManager["Loopback"]]

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


class WallClock:
    """Wall-clock time the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def old() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def new() -> Identity:
    return Identity.generate()


def pins(old: Identity, new: Identity, clock: WallClock) -> KeyPins:
    return KeyPins.rotating(old.public_key, new.public_key, START, END, clock)


def handshake(operator: Identity, node: Identity, key_pins: KeyPins) -> str:
    """The fingerprint the client's session records for the node."""
    client = ClientHandshake(operator, key_pins)
    server = ServerHandshake(node, [operator.public_key])
    server_hello, pending = server.respond(client.hello())
    finish, session = client.finish(server_hello)
    pending.complete(finish)
    return session.peer_fingerprint


def test_inside_the_window_either_key_is_accepted(
    operator_identity: Identity, old: Identity, new: Identity
) -> None:
    clock = WallClock(START + timedelta(minutes=30))
    key_pins = pins(old, new, clock)
    assert handshake(operator_identity, old, key_pins) == old.fingerprint
    assert handshake(operator_identity, new, key_pins) == new.fingerprint
    assert key_pins.fingerprints() == [old.fingerprint, new.fingerprint]


def test_after_the_window_the_old_key_is_refused_as_retired(
    operator_identity: Identity, old: Identity, new: Identity
) -> None:
    clock = WallClock(END + timedelta(seconds=1))
    key_pins = pins(old, new, clock)
    with pytest.raises(KeyRetired, match="retired at 2026-03-01T13:00:00Z") as caught:
        handshake(operator_identity, old, key_pins)
    assert old.fingerprint in str(caught.value)
    assert "outside its rotation window" in str(caught.value)
    assert handshake(operator_identity, new, key_pins) == new.fingerprint
    assert key_pins.fingerprints() == [new.fingerprint]


def test_before_the_window_the_next_key_is_not_yet_valid(
    operator_identity: Identity, old: Identity, new: Identity
) -> None:
    clock = WallClock(START - timedelta(seconds=1))
    key_pins = pins(old, new, clock)
    with pytest.raises(KeyNotYetValid, match="valid only from 2026-03-01T12:00:00Z"):
        handshake(operator_identity, new, key_pins)
    assert handshake(operator_identity, old, key_pins) == old.fingerprint


def test_a_key_never_pinned_is_a_plain_mismatch_naming_both_pins(
    operator_identity: Identity, old: Identity, new: Identity, stranger_identity: Identity
) -> None:
    clock = WallClock(START)
    with pytest.raises(PeerKeyMismatch) as caught:
        handshake(operator_identity, stranger_identity, pins(old, new, clock))
    assert not isinstance(caught.value, KeyRetired | KeyNotYetValid)
    assert old.fingerprint in str(caught.value) and new.fingerprint in str(caught.value)


def test_a_hello_pins_at_most_four_whole_digests(
    operator_identity: Identity, old: Identity, new: Identity
) -> None:
    server = ServerHandshake(old, [operator_identity.public_key])
    hello = ClientHandshake(operator_identity, pins(old, new, WallClock(START))).hello()
    fields = decode_message(hello, CLIENT_HELLO)
    assert fields[-1] == fingerprint_digest(old.public_key) + fingerprint_digest(new.public_key)
    server.screen(hello)  # the node finds its key among the two
    for bad in (fields[-1][:-1], fields[-1] * 3, b""):
        with pytest.raises(MalformedMessage, match="key digests"):
            server.screen(encode_message(CLIENT_HELLO, [*fields[:-1], bad]))


def test_pins_refuse_duplicates_too_many_keys_and_an_empty_window(
    old: Identity, new: Identity
) -> None:
    with pytest.raises(ValueError, match="twice"):
        KeyPins((PinnedKey(old.public_key), PinnedKey(old.public_key)))
    with pytest.raises(ValueError, match="1 to 4"):
        KeyPins(tuple(PinnedKey(Identity.generate().public_key) for _ in range(5)))
    with pytest.raises(ValueError, match="ends after it starts"):
        PinnedKey(new.public_key, not_before=END, not_after=START)


def test_a_node_takes_a_new_trusted_set_for_later_hellos(
    operator_identity: Identity, old: Identity
) -> None:
    next_operator = Identity.generate()
    server = ServerHandshake(old, [operator_identity.public_key])
    server.trust([operator_identity.public_key, next_operator.public_key])
    server.respond(ClientHandshake(next_operator, old.public_key).hello())
    server.trust([next_operator.public_key])  # the old operator key retired
    with pytest.raises(UntrustedPeer):
        server.respond(ClientHandshake(operator_identity, old.public_key).hello())


@pytest.mark.asyncio
async def test_a_node_switching_keys_mid_stream_is_followed_by_a_client_pinning_both(
    loopback: Serve, operator_identity: Identity, old: Identity, new: Identity
) -> None:
    """The node rekeys between calls: its old sessions are forgotten, the client's next call
    re-handshakes once, meets the new key and goes on; after the window the client drops
    its sessions of the retired key even though the node would still take them."""

    async def echo(op: str, payload: dict) -> dict:
        return {"op": op}

    clock = WallClock(START + timedelta(minutes=1))
    server = ChannelServer(old, [operator_identity.public_key], echo)
    async with (
        loopback(server.add_routes) as node,
        ChannelClient(node.url, operator_identity, pins(old, new, clock)) as client,
    ):
        await client.call("a", {})
        assert client.peer_fingerprint == old.fingerprint
        server.rekey(new)
        assert await client.call("b", {}) == {"op": "b"}
        assert client.peer_fingerprint == new.fingerprint
        assert client.handshakes == 2

        # The node goes back to the old key (a stolen key, say) after the window: sessions
        # opened with it are not reused, and a new handshake is refused with the reason.
        server.rekey(old)
        await client.call("c", {})  # inside the window the old key is still fine
        assert client.peer_fingerprint == old.fingerprint
        clock.now = END + timedelta(seconds=1)
        with pytest.raises(KeyRetired):
            await client.call("d", {})
        assert client.handshakes == 3


@pytest.mark.asyncio
async def test_a_client_takes_new_pins_without_losing_its_open_sessions(
    loopback: Serve, operator_identity: Identity, old: Identity, new: Identity
) -> None:
    async def echo(op: str, payload: dict) -> dict:
        return {}

    server = ChannelServer(old, [operator_identity.public_key], echo)
    async with (
        loopback(server.add_routes) as node,
        ChannelClient(node.url, operator_identity, old.public_key) as client,
    ):
        await client.call("a", {})
        client.pin(pins(old, new, WallClock(START)))
        await client.call("b", {})
        assert client.handshakes == 1  # the old key is still accepted: its session too
        client.pin(new.public_key)
        with pytest.raises(PeerKeyMismatch):
            await client.call("c", {})


@pytest.mark.asyncio
async def test_a_node_rekeyed_between_its_server_hello_and_the_finish_costs_one_retry(
    loopback: Serve, operator_identity: Identity, old: Identity, new: Identity
) -> None:
    """The node forgets the half-done handshake of its old key: the client starts over and
    the call goes through on the new key instead of failing."""

    async def echo(op: str, payload: dict) -> dict:
        return {"op": op}

    server = ChannelServer(old, [operator_identity.public_key], echo)
    key_pins = pins(old, new, WallClock(START))

    class RekeyAfterServerHello(ChannelClient):
        rekeyed = False

        async def _post(self, url: str, body: bytes, max_reply_bytes: int | None = None) -> bytes:
            reply = await super()._post(url, body, max_reply_bytes)
            if not self.rekeyed and reply[:1] == b"\x02":  # the first ServerHello
                self.rekeyed = True
                server.rekey(new)
            return reply

    async with (
        loopback(server.add_routes) as node,
        RekeyAfterServerHello(node.url, operator_identity, key_pins) as client,
    ):
        assert await client.call("a", {}) == {"op": "a"}
        assert client.rekeyed and client.peer_fingerprint == new.fingerprint
        assert client.handshakes == 1
