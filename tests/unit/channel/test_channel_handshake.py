"""The mutual handshake: who may talk to whom, and what an attacker can change (nothing)."""

from __future__ import annotations

import pytest

from qorch.channel.errors import (
    AuthenticationFailed,
    ChannelError,
    HandshakeError,
    MalformedMessage,
    PeerKeyMismatch,
    UnsupportedSuite,
    UntrustedPeer,
)
from qorch.channel.handshake import (
    CLIENT_HELLO,
    HELLO_RETRY,
    MAX_COOKIE_SIZE,
    SERVER_HELLO,
    ClientHandshake,
    ServerHandshake,
    decode_message,
    encode_hello_retry,
    encode_message,
)
from qorch.channel.identity import Identity, fingerprint, fingerprint_digest
from qorch.channel.provider import ClassicalProvider, CryptographyProvider
from qorch.channel.session import Session
from qorch.channel.suite import (
    HYBRID_SUITE_ID,
    classical_benchmark_suite,
    hybrid_suite,
)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _replace_field(message: bytes, kind: int, index: int, value: bytes) -> bytes:
    fields = decode_message(message, kind)
    fields[index] = value
    return encode_message(kind, fields)


def _handshake(client: ClientHandshake, server: ServerHandshake) -> tuple[Session, Session]:
    server_hello, pending = server.respond(client.hello())
    finish, client_session = client.finish(server_hello)
    return client_session, pending.complete(finish)


@pytest.fixture
def client(operator_identity: Identity, node_identity: Identity) -> ClientHandshake:
    return ClientHandshake(operator_identity, node_identity.public_key)


@pytest.fixture
def server(operator_identity: Identity, node_identity: Identity) -> ServerHandshake:
    return ServerHandshake(node_identity, [operator_identity.public_key])


def test_both_sides_derive_the_same_keys_and_know_each_other(
    client: ClientHandshake,
    server: ServerHandshake,
    operator_identity: Identity,
    node_identity: Identity,
) -> None:
    client_session, server_session = _handshake(client, server)
    assert client_session.session_id == server_session.session_id
    assert client_session.keys.send_key == server_session.keys.receive_key
    assert client_session.keys.receive_key == server_session.keys.send_key
    assert client_session.keys.send_key != client_session.keys.receive_key
    assert client_session.peer_fingerprint == node_identity.fingerprint
    assert server_session.peer_fingerprint == operator_identity.fingerprint


def test_every_handshake_yields_fresh_keys(
    operator_identity: Identity, node_identity: Identity, server: ServerHandshake
) -> None:
    first, _ = _handshake(ClientHandshake(operator_identity, node_identity.public_key), server)
    second, _ = _handshake(ClientHandshake(operator_identity, node_identity.public_key), server)
    assert first.session_id != second.session_id
    assert first.keys.send_key != second.keys.send_key


def test_the_suite_is_ml_kem_768_plus_x25519_with_ml_dsa_65() -> None:
    suite = hybrid_suite(CryptographyProvider())
    assert suite.id == HYBRID_SUITE_ID
    assert [kem.kem_algorithm for kem in suite.kems] == ["ML-KEM-768", "X25519"]
    assert suite.signatures.signature_algorithm == "ML-DSA-65"


# --- pinning and trust ------------------------------------------------------------------------


def test_a_node_with_another_key_refuses_a_client_that_pinned_a_different_key(
    operator_identity: Identity, node_identity: Identity, stranger_identity: Identity
) -> None:
    client = ClientHandshake(operator_identity, stranger_identity.public_key)
    with pytest.raises(PeerKeyMismatch, match=stranger_identity.fingerprint):
        ServerHandshake(node_identity, [operator_identity.public_key]).respond(client.hello())


def test_a_client_detects_an_impostor_node_before_producing_anything_more(
    operator_identity: Identity, node_identity: Identity, stranger_identity: Identity
) -> None:
    """A man in the middle answers with its own key; the pin catches it."""
    client = ClientHandshake(operator_identity, node_identity.public_key)
    hello = client.hello()
    # The impostor rewrites the pinned-key hint so its own handshake code goes along.
    forwarded = _replace_field(
        hello, CLIENT_HELLO, -1, fingerprint_digest(stranger_identity.public_key)
    )
    impostor = ServerHandshake(stranger_identity, [operator_identity.public_key])
    server_hello, _ = impostor.respond(forwarded)
    with pytest.raises(PeerKeyMismatch) as raised:
        client.finish(server_hello)
    assert stranger_identity.fingerprint in str(raised.value)
    assert node_identity.fingerprint in str(raised.value)


def test_an_impostor_claiming_the_pinned_fingerprint_fails_the_signature_check(
    operator_identity: Identity, node_identity: Identity, stranger_identity: Identity
) -> None:
    client = ClientHandshake(operator_identity, node_identity.public_key)
    hello = client.hello()
    forwarded = _replace_field(
        hello, CLIENT_HELLO, -1, fingerprint_digest(stranger_identity.public_key)
    )
    server_hello, _ = ServerHandshake(stranger_identity, [operator_identity.public_key]).respond(
        forwarded
    )
    claimed = _replace_field(
        server_hello, SERVER_HELLO, -2, fingerprint_digest(node_identity.public_key)
    )
    with pytest.raises(AuthenticationFailed):
        client.finish(claimed)


def test_a_node_refuses_an_operator_key_it_does_not_trust(
    node_identity: Identity, stranger_identity: Identity, operator_identity: Identity
) -> None:
    client = ClientHandshake(stranger_identity, node_identity.public_key)
    with pytest.raises(UntrustedPeer, match=stranger_identity.fingerprint):
        ServerHandshake(node_identity, [operator_identity.public_key]).respond(client.hello())


def test_claiming_a_trusted_fingerprint_without_its_private_key_fails_at_finish(
    operator_identity: Identity, node_identity: Identity, stranger_identity: Identity
) -> None:
    """A stranger names the operator's fingerprint, but cannot sign as the operator."""
    server = ServerHandshake(node_identity, [operator_identity.public_key])
    liar = ClientHandshake(stranger_identity, node_identity.public_key)
    hello = _replace_field(
        liar.hello(), CLIENT_HELLO, -2, fingerprint_digest(operator_identity.public_key)
    )
    liar._hello = hello  # the liar keeps its transcript consistent with what it sent
    server_hello, pending = server.respond(hello)
    finish, _ = liar.finish(server_hello)
    with pytest.raises(AuthenticationFailed, match=operator_identity.fingerprint):
        pending.complete(finish)


def test_a_finish_is_accepted_once(client: ClientHandshake, server: ServerHandshake) -> None:
    server_hello, pending = server.respond(client.hello())
    finish, _ = client.finish(server_hello)
    pending.complete(finish)
    with pytest.raises(MalformedMessage):
        pending.complete(finish)


# --- tampering --------------------------------------------------------------------------------


def _sample_positions(message: bytes) -> list[int]:
    """Every byte of the first 200, then every 97th: covers each field and the signature."""
    return sorted(set(range(min(200, len(message)))) | set(range(0, len(message), 97)))


def test_any_flipped_byte_in_the_client_hello_breaks_the_handshake(
    operator_identity: Identity, node_identity: Identity
) -> None:
    reference = ClientHandshake(operator_identity, node_identity.public_key).hello()
    server = ServerHandshake(node_identity, [operator_identity.public_key])
    for index in _sample_positions(reference):
        client = ClientHandshake(operator_identity, node_identity.public_key)
        tampered = _flip(client.hello(), index)
        try:
            server_hello, pending = server.respond(tampered)
            finish, _ = client.finish(server_hello)
            pending.complete(finish)
        except ChannelError:
            continue
        pytest.fail(f"a flipped ClientHello byte at {index} went unnoticed")


def test_any_flipped_byte_in_the_server_hello_is_refused_by_the_client(
    operator_identity: Identity, node_identity: Identity
) -> None:
    server = ServerHandshake(node_identity, [operator_identity.public_key])
    reference, _ = server.respond(
        ClientHandshake(operator_identity, node_identity.public_key).hello()
    )
    for index in _sample_positions(reference):
        client = ClientHandshake(operator_identity, node_identity.public_key)
        server_hello, _ = server.respond(client.hello())
        with pytest.raises(ChannelError):
            client.finish(_flip(server_hello, index))


def test_any_flipped_byte_in_the_finish_is_refused_by_the_node(
    operator_identity: Identity, node_identity: Identity
) -> None:
    server = ServerHandshake(node_identity, [operator_identity.public_key])
    for index in range(0, 3334, 7):  # a Finish is 3334 bytes: session id and signature
        client = ClientHandshake(operator_identity, node_identity.public_key)
        server_hello, pending = server.respond(client.hello())
        finish, _ = client.finish(server_hello)
        assert len(finish) == 3334
        with pytest.raises(ChannelError):
            pending.complete(_flip(finish, index))


@pytest.mark.parametrize("cut", [1, 5, 100])
def test_truncated_handshake_messages_are_malformed(
    client: ClientHandshake, server: ServerHandshake, cut: int
) -> None:
    hello = client.hello()
    with pytest.raises(MalformedMessage):
        server.respond(hello[:-cut])
    server_hello, _ = server.respond(hello)
    with pytest.raises(MalformedMessage):
        client.finish(server_hello[:-cut])


def test_trailing_bytes_after_a_hello_are_refused(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    with pytest.raises(MalformedMessage):
        server.respond(client.hello() + b"\x00")


# --- no downgrade -----------------------------------------------------------------------------


def test_a_node_refuses_a_client_offering_the_classical_suite(
    operator_identity: Identity, node_identity: Identity
) -> None:
    classical_operator = Identity.generate(ClassicalProvider())
    classical_node = Identity.generate(ClassicalProvider())
    downgraded = ClientHandshake(
        classical_operator, classical_node.public_key, suite=classical_benchmark_suite()
    )
    with pytest.raises(UnsupportedSuite):
        ServerHandshake(node_identity, [operator_identity.public_key]).respond(downgraded.hello())


def test_a_node_refuses_any_suite_id_but_its_own(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    weaker = HYBRID_SUITE_ID.replace(b"AES256GCM", b"AES128GCM")
    with pytest.raises(UnsupportedSuite):
        server.respond(_replace_field(client.hello(), CLIENT_HELLO, 0, weaker))


def test_a_client_refuses_a_server_hello_with_another_suite(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    server_hello, _ = server.respond(client.hello())
    with pytest.raises(UnsupportedSuite):
        client.finish(_replace_field(server_hello, SERVER_HELLO, 0, b"qorch-channel-v0/none"))


def test_the_channel_cannot_be_built_on_the_classical_provider() -> None:
    with pytest.raises(ValueError, match="ML-DSA-65"):
        hybrid_suite(ClassicalProvider())


def test_an_identity_of_the_wrong_algorithm_is_rejected_up_front(
    node_identity: Identity,
) -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        ClientHandshake(Identity.generate(ClassicalProvider()), node_identity.public_key)


def test_a_malformed_pinned_key_is_rejected_up_front(operator_identity: Identity) -> None:
    with pytest.raises(ValueError):
        ClientHandshake(operator_identity, b"\x00" * 32)


def test_fingerprints_in_errors_are_the_public_fingerprint_format(
    operator_identity: Identity, stranger_identity: Identity, node_identity: Identity
) -> None:
    client = ClientHandshake(stranger_identity, node_identity.public_key)
    with pytest.raises(UntrustedPeer) as raised:
        ServerHandshake(node_identity, [operator_identity.public_key]).respond(client.hello())
    assert fingerprint(stranger_identity.public_key) in str(raised.value)
    assert stranger_identity.public_key.hex()[:64] not in str(raised.value)


# --- the cookie round trip --------------------------------------------------------------------


def test_a_hello_sent_again_with_its_cookie_completes_the_handshake(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    first = client.hello()
    screened = server.screen(first)
    assert screened.cookie is None and screened.without_cookie == first
    second = client.retry(encode_hello_retry(server.suite, b"c" * 24))
    assert second.startswith(first)  # the same hello: same random, same key shares
    again = server.screen(second)
    assert again.cookie == b"c" * 24 and again.without_cookie == first
    server_hello, pending = server.respond(second)
    finish, client_session = client.finish(server_hello)
    server_session = pending.complete(finish)
    assert client_session.keys.send_key == server_session.keys.receive_key


def test_the_cookie_is_part_of_the_signed_transcript(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    """A ServerHello for the hello without its cookie does not verify for the client."""
    first = client.hello()
    client.retry(encode_hello_retry(server.suite, b"c" * 24))
    server_hello, _ = server.respond(first)
    with pytest.raises(AuthenticationFailed):
        client.finish(server_hello)


def test_a_node_may_ask_for_a_cookie_only_once(
    client: ClientHandshake, server: ServerHandshake
) -> None:
    client.hello()
    retry = encode_hello_retry(server.suite, b"c" * 24)
    client.retry(retry)
    with pytest.raises(HandshakeError, match="twice"):
        client.retry(retry)


def test_a_hello_retry_for_another_suite_is_refused(client: ClientHandshake) -> None:
    client.hello()
    with pytest.raises(UnsupportedSuite):
        client.retry(encode_hello_retry(classical_benchmark_suite(), b"c" * 24))


@pytest.mark.parametrize("size", [0, MAX_COOKIE_SIZE + 1])
def test_a_cookie_of_the_wrong_size_is_malformed(
    client: ClientHandshake, server: ServerHandshake, size: int
) -> None:
    fields = decode_message(client.hello(), CLIENT_HELLO)
    with pytest.raises(MalformedMessage, match="cookie"):
        server.screen(encode_message(CLIENT_HELLO, [*fields, b"c" * size]))
    forged_retry = encode_message(HELLO_RETRY, [server.suite.id, b"c" * size])
    with pytest.raises(MalformedMessage, match="cookie"):
        client.retry(forged_retry)


def test_screening_refuses_what_respond_refuses_without_any_signature(
    operator_identity: Identity, node_identity: Identity, stranger_identity: Identity
) -> None:
    server = ServerHandshake(node_identity, [operator_identity.public_key])
    with pytest.raises(UntrustedPeer):
        server.screen(ClientHandshake(stranger_identity, node_identity.public_key).hello())
    with pytest.raises(PeerKeyMismatch):
        server.screen(ClientHandshake(operator_identity, stranger_identity.public_key).hello())
