"""Records on an established session: confidentiality aside, every alteration is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from qorch.channel.errors import (
    ChannelError,
    MalformedMessage,
    OutOfOrderMessage,
    ReplayedMessage,
    SessionExpired,
    TamperedMessage,
)
from qorch.channel.handshake import ClientHandshake, ServerHandshake
from qorch.channel.identity import Identity
from qorch.channel.session import HEADER_SIZE, MIN_RECORD_SIZE, Session, SessionLimits

if TYPE_CHECKING:
    from tests.unit.channel.conftest import FakeClock


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture
def sessions(
    operator_identity: Identity, node_identity: Identity, clock: FakeClock
) -> tuple[Session, Session]:
    """(client session, server session) after a real handshake."""
    limits = SessionLimits(max_age_seconds=60, max_messages=5)
    client = ClientHandshake(operator_identity, node_identity.public_key, clock=clock)
    server = ServerHandshake(
        node_identity, [operator_identity.public_key], limits=limits, clock=clock
    )
    server_hello, pending = server.respond(client.hello())
    finish, client_session = client.finish(server_hello)
    return client_session, pending.complete(finish)


def test_requests_and_replies_round_trip_in_both_directions(
    sessions: tuple[Session, Session],
) -> None:
    client, server = sessions
    for n in range(3):
        assert server.open(client.seal(f"request {n}".encode())) == f"request {n}".encode()
        assert client.open(server.seal(f"reply {n}".encode())) == f"reply {n}".encode()


def test_plaintext_does_not_appear_in_the_record(sessions: tuple[Session, Session]) -> None:
    client, _ = sessions
    secret = b"OPENQASM 2.0; qreg secret_register[5];"
    assert secret not in client.seal(secret)


@pytest.mark.parametrize("where", ["first ciphertext byte", "last ciphertext byte", "tag"])
def test_a_flipped_ciphertext_or_tag_byte_is_tampering(
    sessions: tuple[Session, Session], where: str
) -> None:
    client, server = sessions
    record = client.seal(b"x" * 64)
    index = {"first ciphertext byte": HEADER_SIZE, "last ciphertext byte": -17, "tag": -1}[where]
    with pytest.raises(TamperedMessage):
        server.open(_flip(record, index % len(record)))


@pytest.mark.parametrize("index", range(HEADER_SIZE))
def test_a_flipped_header_byte_is_refused(sessions: tuple[Session, Session], index: int) -> None:
    """The header (type, session id, sequence number) is the AEAD's associated data."""
    client, server = sessions
    with pytest.raises(ChannelError):
        server.open(_flip(client.seal(b"payload"), index))


def test_a_flipped_sequence_number_is_out_of_order(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    with pytest.raises(OutOfOrderMessage):
        server.open(_flip(client.seal(b"payload"), HEADER_SIZE - 1))


def test_a_replayed_request_is_refused(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    record = client.seal(b"run job 7")
    server.open(record)
    client.open(server.seal(b"ok"))
    with pytest.raises(ReplayedMessage):
        server.open(record)


def test_a_replayed_reply_is_refused(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    server.open(client.seal(b"first"))
    old_reply = server.seal(b"first reply")
    client.open(old_reply)
    server.open(client.seal(b"second"))
    with pytest.raises(ReplayedMessage):
        client.open(old_reply)


def test_reordered_requests_are_refused_until_the_missing_one_arrives(
    sessions: tuple[Session, Session],
) -> None:
    client, server = sessions
    first, second = client.seal(b"first"), client.seal(b"second")
    with pytest.raises(OutOfOrderMessage):
        server.open(second)
    assert server.open(first) == b"first"
    assert server.open(second) == b"second"


def test_a_reply_to_a_request_never_sent_is_refused(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    server.open(client.seal(b"one"))
    client.open(server.seal(b"reply one"))
    with pytest.raises(RuntimeError):
        server.seal(b"an unsolicited reply")  # the server side refuses to produce one


def test_a_forged_record_does_not_advance_the_sequence(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    record = client.seal(b"genuine")
    with pytest.raises(TamperedMessage):
        server.open(_flip(record, -1))
    assert server.open(record) == b"genuine"


@pytest.mark.parametrize("keep", [0, 1, HEADER_SIZE, MIN_RECORD_SIZE - 1])
def test_a_record_cut_below_header_and_tag_is_malformed(
    sessions: tuple[Session, Session], keep: int
) -> None:
    client, server = sessions
    with pytest.raises(MalformedMessage):
        server.open(client.seal(b"payload")[:keep])


@pytest.mark.parametrize("cut", [1, 16, 40])
def test_a_truncated_record_fails_authentication(
    sessions: tuple[Session, Session], cut: int
) -> None:
    client, server = sessions
    with pytest.raises(TamperedMessage):
        server.open(client.seal(b"p" * 64)[:-cut])


def test_a_record_reflected_back_to_its_sender_is_refused(
    sessions: tuple[Session, Session],
) -> None:
    client, _ = sessions
    with pytest.raises(MalformedMessage):
        client.open(client.seal(b"echo me"))


def test_a_record_from_another_session_is_refused(
    sessions: tuple[Session, Session], operator_identity: Identity, node_identity: Identity
) -> None:
    client, _ = sessions
    other_client = ClientHandshake(operator_identity, node_identity.public_key)
    hello, pending = ServerHandshake(node_identity, [operator_identity.public_key]).respond(
        other_client.hello()
    )
    finish, _ = other_client.finish(hello)
    other_server = pending.complete(finish)
    with pytest.raises(MalformedMessage):
        other_server.open(client.seal(b"wrong session"))


def test_the_session_is_spent_after_its_message_limit(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    for _ in range(5):
        server.open(client.seal(b"."))
        client.open(server.seal(b"."))
    assert client.expired() and server.expired()
    with pytest.raises(SessionExpired):
        client.seal(b"one too many")


def test_the_server_refuses_requests_after_the_session_lifetime(
    sessions: tuple[Session, Session], clock: FakeClock
) -> None:
    client, server = sessions
    record = client.seal(b"late")
    clock.advance(61)
    with pytest.raises(SessionExpired):
        server.open(record)


def test_a_request_accepted_before_expiry_still_gets_its_reply(
    sessions: tuple[Session, Session], clock: FakeClock
) -> None:
    client, server = sessions
    server.open(client.seal(b"long job"))
    clock.advance(120)
    assert client.open(server.seal(b"result")) == b"result"


def test_session_reprs_and_exceptions_never_show_keys(sessions: tuple[Session, Session]) -> None:
    client, server = sessions
    text = repr(client) + repr(client.keys) + str(client.__dict__.get("keys"))
    for secret in (client.keys.send_key, client.keys.receive_key):
        assert secret.hex() not in text
    record = client.seal(b"top secret payload")
    try:
        server.open(_flip(record, -1))
    except TamperedMessage as exc:
        assert "top secret" not in str(exc)
        assert client.keys.send_key.hex() not in str(exc)
