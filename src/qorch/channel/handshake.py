"""The mutual handshake (sans-IO): ClientHello, [HelloRetry, ClientHello], ServerHello,
ClientFinish.

Wire encoding of a handshake message: one type byte, then each field as a
4-byte big-endian length followed by its bytes. Parsing is strict (field count,
fixed sizes, no trailing bytes), so every message has exactly one encoding.

    ClientHello  (0x01) = suite id, client random (32), ML-KEM-768 public key,
                          X25519 public key, SHA-256(client key),
                          SHA-256 of each pinned node key (1 to 4, concatenated)
                          [, cookie]
    HelloRetry   (0x04) = suite id, cookie (at most 64 bytes)
    ServerHello  (0x02) = suite id, server random (32), ML-KEM-768 ciphertext,
                          X25519 public key, session id (16), max age (ms, u32),
                          max requests (u32), SHA-256(node key), signature
    ClientFinish (0x03) = session id (16), signature

The node signs only for a ClientHello that carries a cookie it issued, as DTLS's
HelloVerifyRequest and QUIC's Retry do: a first ClientHello gets a HelloRetry
with a cookie (an HMAC the node can check without keeping any state, see
`qorch.channel.admission.HelloCookies`), and the client sends the same hello
again with the cookie appended. The ClientHello of the transcript is that second
one, cookie included. A node that asks for no cookie answers the first hello
with a ServerHello, and the client takes that too.

    server signature = ML-DSA-65(node key, SHA-256(CH || SH without signature),
                                 context "qorch-channel-v1 server signature")
    client signature = ML-DSA-65(operator key, SHA-256(CH || SH),
                                 context "qorch-channel-v1 client signature")
    (each message hashed with a 4-byte length prefix)

    ikm  = ML-KEM shared secret || X25519 shared secret
    okm  = HKDF-SHA256(salt = SHA-256(CH || SH), ikm,
                       info = "qorch-channel-v1 traffic keys " + suite id, 88 bytes)
         = client->server key (32) || server->client key (32)
           || client->server IV (12) || server->client IV (12)

The client checks the node's fingerprint against its pins and the node's
signature before it produces ClientFinish, so a wrong node learns nothing but
the ClientHello. A client pins one key, or several while the node's key rotates
(`qorch.channel.pins`); the node answers with its key when the hello pins it.
The node refuses unknown clients at ClientHello, before any key-agreement work,
and accepts the session only once ClientFinish verifies.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qorch.channel.errors import (
    AuthenticationFailed,
    HandshakeError,
    MalformedMessage,
    PeerKeyMismatch,
    UnsupportedSuite,
    UntrustedPeer,
)
from qorch.channel.identity import FINGERPRINT_PREFIX, Identity, fingerprint, fingerprint_digest
from qorch.channel.pins import MAX_PINNED_KEYS, KeyPins
from qorch.channel.provider import KemPrivateKey
from qorch.channel.session import (
    IV_SIZE,
    KEY_SIZE,
    SESSION_ID_SIZE,
    Clock,
    Session,
    SessionLimits,
    TrafficKeys,
)
from qorch.channel.suite import Suite, hybrid_suite

CLIENT_HELLO = 0x01
SERVER_HELLO = 0x02
CLIENT_FINISH = 0x03
HELLO_RETRY = 0x04
RANDOM_SIZE = 32
DIGEST_SIZE = 32
MAX_COOKIE_SIZE = 64
SERVER_SIGNATURE_CONTEXT = b"qorch-channel-v1 server signature"
CLIENT_SIGNATURE_CONTEXT = b"qorch-channel-v1 client signature"
TRAFFIC_KEYS_LABEL = b"qorch-channel-v1 traffic keys "

_LENGTH = struct.Struct("!I")
_U32 = struct.Struct("!I")
_MESSAGE_NAMES = {
    CLIENT_HELLO: "ClientHello",
    SERVER_HELLO: "ServerHello",
    CLIENT_FINISH: "Finish",
    HELLO_RETRY: "HelloRetry",
}


def encode_message(message_type: int, fields: Iterable[bytes]) -> bytes:
    parts = [bytes([message_type])]
    for value in fields:
        parts += [_LENGTH.pack(len(value)), value]
    return b"".join(parts)


def decode_message(data: bytes, message_type: int) -> list[bytes]:
    name = _MESSAGE_NAMES[message_type]
    if not data or data[0] != message_type:
        raise MalformedMessage(f"expected a {name}")
    fields: list[bytes] = []
    offset = 1
    while offset < len(data):
        if offset + _LENGTH.size > len(data):
            raise MalformedMessage(f"{name} truncated in a field length")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + length > len(data):
            raise MalformedMessage(f"{name} truncated: field {len(fields)} is cut short")
        fields.append(data[offset : offset + length])
        offset += length
    return fields


def message_type(data: bytes) -> int | None:
    return data[0] if data else None


def finish_session_id(client_finish: bytes) -> bytes:
    """The session a ClientFinish belongs to (for routing on the server)."""
    fields = decode_message(client_finish, CLIENT_FINISH)
    if len(fields) != 2 or len(fields[0]) != SESSION_ID_SIZE:
        raise MalformedMessage("Finish has the wrong shape")
    return fields[0]


def encode_hello_retry(suite: Suite, cookie: bytes) -> bytes:
    if not 0 < len(cookie) <= MAX_COOKIE_SIZE:
        raise ValueError(f"a cookie has 1 to {MAX_COOKIE_SIZE} bytes")
    return encode_message(HELLO_RETRY, [suite.id, cookie])


@dataclass(frozen=True)
class ScreenedHello:
    """A ClientHello that parses, offers this node's suite, pins this node's key and names a
    trusted client: what a node may learn before doing any public-key operation."""

    without_cookie: bytes  # the hello as first sent, which the cookie is computed over
    cookie: bytes | None
    client_key: bytes


def _check_suite(offered: bytes, suite: Suite, message: str) -> None:
    if offered != suite.id:
        shown = offered[:96].decode("ascii", "replace")
        raise UnsupportedSuite(
            f"{message} offers suite {shown!r}; this side runs only {suite.id.decode()!r}"
        )


def _check_shape(fields: list[bytes], sizes: list[int | None], message: str) -> None:
    if len(fields) != len(sizes):
        raise MalformedMessage(f"{message} has {len(fields)} fields, expected {len(sizes)}")
    for index, (value, size) in enumerate(zip(fields, sizes, strict=True)):
        if size is not None and len(value) != size:
            raise MalformedMessage(
                f"{message} field {index} is {len(value)} bytes, expected {size}"
            )


def _transcript_hash(*messages: bytes) -> bytes:
    digest = hashlib.sha256()
    for message in messages:
        digest.update(_LENGTH.pack(len(message)))
        digest.update(message)
    return digest.digest()


def _traffic_keys(
    suite: Suite, shared_secrets: list[bytes], transcript: bytes, client: bool
) -> TrafficKeys:
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * (KEY_SIZE + IV_SIZE),
        salt=transcript,
        info=TRAFFIC_KEYS_LABEL + suite.id,
    ).derive(b"".join(shared_secrets))
    c2s_key, s2c_key = okm[:KEY_SIZE], okm[KEY_SIZE : 2 * KEY_SIZE]
    c2s_iv, s2c_iv = okm[2 * KEY_SIZE : 2 * KEY_SIZE + IV_SIZE], okm[2 * KEY_SIZE + IV_SIZE :]
    if client:
        return TrafficKeys(c2s_key, c2s_iv, s2c_key, s2c_iv)
    return TrafficKeys(s2c_key, s2c_iv, c2s_key, c2s_iv)


def _hex(digest: bytes) -> str:
    return FINGERPRINT_PREFIX + digest.hex()


def _check_identity(identity: Identity, suite: Suite) -> None:
    if identity.algorithm != suite.signatures.signature_algorithm:
        raise ValueError(
            f"identity is {identity.algorithm}, suite signs with "
            f"{suite.signatures.signature_algorithm}"
        )


class ClientHandshake:
    """The operator's side: pins the node key (or the keys of a rotation), authenticates
    with its own identity."""

    def __init__(
        self,
        identity: Identity,
        pinned_server_key: bytes | KeyPins,
        *,
        suite: Suite | None = None,
        limits: SessionLimits | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._suite = suite or hybrid_suite()
        _check_identity(identity, self._suite)
        self._pins = KeyPins.of(pinned_server_key)
        for pin in self._pins.keys:
            self._suite.signatures.check_public_key(pin.public_key)
        self._identity = identity
        self._limits = limits
        self._clock = clock
        self._kem_keys: list[KemPrivateKey] = []
        self._hello: bytes | None = None
        self._retried = False

    def hello(self) -> bytes:
        if self._hello is not None:
            raise RuntimeError("a handshake object runs one handshake")
        self._kem_keys = [kem.generate_kem_key() for kem in self._suite.kems]
        self._hello = encode_message(
            CLIENT_HELLO,
            [
                self._suite.id,
                secrets.token_bytes(RANDOM_SIZE),
                *(key.public_bytes() for key in self._kem_keys),
                fingerprint_digest(self._identity.public_key),
                b"".join(self._pins.offered()),
            ],
        )
        return self._hello

    def retry(self, hello_retry: bytes) -> bytes:
        """The same ClientHello again, with the cookie of the node's HelloRetry appended;
        the transcript holds this one. A node asks at most once."""
        if self._hello is None:
            raise RuntimeError("call hello() first")
        fields = decode_message(hello_retry, HELLO_RETRY)
        if fields:
            _check_suite(fields[0], self._suite, "HelloRetry")
        _check_shape(fields, [None, None], "HelloRetry")
        cookie = fields[1]
        if not 0 < len(cookie) <= MAX_COOKIE_SIZE:
            raise MalformedMessage(f"HelloRetry cookie is {len(cookie)} bytes")
        if self._retried:
            raise HandshakeError("the node asked for a cookie twice")
        self._retried = True
        self._hello += _LENGTH.pack(len(cookie)) + cookie
        return self._hello

    def finish(self, server_hello: bytes) -> tuple[bytes, Session]:
        """Verify the ServerHello; return (ClientFinish, the client's session)."""
        if self._hello is None:
            raise RuntimeError("call hello() first")
        fields = decode_message(server_hello, SERVER_HELLO)
        if fields:
            _check_suite(fields[0], self._suite, "ServerHello")
        kems = self._suite.kems
        _check_shape(
            fields,
            [
                None,
                RANDOM_SIZE,
                *(kem.kem_ciphertext_size for kem in kems),
                SESSION_ID_SIZE,
                _U32.size,
                _U32.size,
                DIGEST_SIZE,
                None,
            ],
            "ServerHello",
        )
        ciphertexts = fields[2 : 2 + len(kems)]
        session_id, max_age_ms, max_requests, node_digest, signature = fields[2 + len(kems) :]
        # A known key outside its rotation window is refused here, with the reason.
        node_key = self._pins.key_for(node_digest)
        signed = _transcript_hash(self._hello, encode_message(SERVER_HELLO, fields[:-1]))
        if not self._suite.signatures.verify(node_key, signature, signed, SERVER_SIGNATURE_CONTEXT):
            raise AuthenticationFailed(
                f"node signature does not verify with the pinned key {_hex(node_digest)}"
            )
        try:
            shared = [
                key.decapsulate(ct) for key, ct in zip(self._kem_keys, ciphertexts, strict=True)
            ]
        except ValueError:
            raise HandshakeError("node sent an invalid key share") from None
        transcript = _transcript_hash(self._hello, server_hello)
        (max_age,), (max_count,) = _U32.unpack(max_age_ms), _U32.unpack(max_requests)
        if not max_age or not max_count:
            raise MalformedMessage("ServerHello carries zero session limits")
        limits = SessionLimits(max_age / 1000, max_count)
        if self._limits is not None:
            limits = limits.tighter(self._limits)
        session = Session(
            role="client",
            session_id=session_id,
            keys=_traffic_keys(self._suite, shared, transcript, client=True),
            limits=limits,
            peer_fingerprint=fingerprint(node_key),
            clock=self._clock,
        )
        self._kem_keys = []  # ephemeral secrets are not needed any more
        client_finish = encode_message(
            CLIENT_FINISH,
            [session_id, self._identity.sign(transcript, CLIENT_SIGNATURE_CONTEXT)],
        )
        return client_finish, session


@dataclass(repr=False)
class PendingSession:
    """A node-side session between ServerHello and a verified ClientFinish."""

    session_id: bytes
    client_key: bytes
    created_at: float
    _suite: Suite
    _transcript: bytes
    _keys: TrafficKeys
    _limits: SessionLimits
    _clock: Clock
    _completed: bool = field(default=False)

    @property
    def client_fingerprint(self) -> str:
        return fingerprint(self.client_key)

    def complete(self, client_finish: bytes) -> Session:
        if self._completed:
            raise MalformedMessage("this handshake is already complete")
        fields = decode_message(client_finish, CLIENT_FINISH)
        _check_shape(fields, [SESSION_ID_SIZE, None], "Finish")
        session_id, signature = fields
        if session_id != self.session_id:
            raise MalformedMessage("Finish is for another session")
        if not self._suite.signatures.verify(
            self.client_key, signature, self._transcript, CLIENT_SIGNATURE_CONTEXT
        ):
            raise AuthenticationFailed(
                f"client signature does not verify for {self.client_fingerprint}"
            )
        self._completed = True
        return Session(
            role="server",
            session_id=self.session_id,
            keys=self._keys,
            limits=self._limits,
            peer_fingerprint=self.client_fingerprint,
            clock=self._clock,
            established_at=self.created_at,
        )


class ServerHandshake:
    """The node's side: answers ClientHellos from trusted clients only."""

    def __init__(
        self,
        identity: Identity,
        trusted_client_keys: Iterable[bytes],
        *,
        suite: Suite | None = None,
        limits: SessionLimits | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._suite = suite or hybrid_suite()
        self.rekey(identity)
        self.trust(trusted_client_keys)
        self.limits = limits or SessionLimits()
        self._clock = clock

    def rekey(self, identity: Identity) -> None:
        """Answer later hellos with this identity (a node switching to its next key)."""
        _check_identity(identity, self._suite)
        self._identity = identity
        self._own_digest = fingerprint_digest(identity.public_key)

    def trust(self, trusted_client_keys: Iterable[bytes]) -> None:
        """Admit later hellos from these client keys only (e.g. the operator's current and
        next key while it rotates); every key is checked before any is taken up."""
        trusted: dict[bytes, bytes] = {}
        for key in trusted_client_keys:
            self._suite.signatures.check_public_key(key)
            trusted[fingerprint_digest(key)] = bytes(key)
        self._trusted = trusted

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def trusted_keys(self) -> list[bytes]:
        return list(self._trusted.values())

    @property
    def suite(self) -> Suite:
        return self._suite

    def screen(self, client_hello: bytes) -> ScreenedHello:
        """The checks that cost no public-key operation: shape, suite, pin, trusted client.
        Raises what `respond` would raise for these."""
        fields = decode_message(client_hello, CLIENT_HELLO)
        if fields:
            _check_suite(fields[0], self._suite, "ClientHello")
        kems = self._suite.kems
        shape: list[int | None] = [
            None,
            RANDOM_SIZE,
            *(kem.kem_public_key_size for kem in kems),
            DIGEST_SIZE,
            None,
        ]
        cookie = None
        if len(fields) == len(shape) + 1:
            cookie = fields.pop()
            if not 0 < len(cookie) <= MAX_COOKIE_SIZE:
                raise MalformedMessage(f"ClientHello cookie is {len(cookie)} bytes")
        _check_shape(fields, shape, "ClientHello")
        client_digest, pinned = fields[-2:]
        count, rest = divmod(len(pinned), DIGEST_SIZE)
        if rest or not 0 < count <= MAX_PINNED_KEYS:
            raise MalformedMessage(
                f"ClientHello pins {len(pinned)} bytes of key digests: 1 to {MAX_PINNED_KEYS}"
                f" digests of {DIGEST_SIZE} bytes"
            )
        digests = [pinned[i : i + DIGEST_SIZE] for i in range(0, len(pinned), DIGEST_SIZE)]
        if self._own_digest not in digests:
            shown = ", ".join(_hex(d) for d in digests)
            raise PeerKeyMismatch(
                f"client pinned node key {shown}, but this node's key is {_hex(self._own_digest)}"
            )
        client_key = self._trusted.get(client_digest)
        if client_key is None:
            raise UntrustedPeer(f"client key {_hex(client_digest)} is not trusted by this node")
        without_cookie = client_hello if cookie is None else encode_message(CLIENT_HELLO, fields)
        return ScreenedHello(without_cookie, cookie, client_key)

    def respond(self, client_hello: bytes) -> tuple[bytes, PendingSession]:
        """Answer a ClientHello (with or without a cookie: checking it is the caller's
        business, before this costly step); return (ServerHello, the pending session)."""
        screened = self.screen(client_hello)
        fields = decode_message(screened.without_cookie, CLIENT_HELLO)
        kems = self._suite.kems
        client_key = screened.client_key
        try:
            encapsulated = [
                kem.encapsulate(public_key)
                for kem, public_key in zip(kems, fields[2 : 2 + len(kems)], strict=True)
            ]
        except ValueError:
            raise HandshakeError("client sent an invalid key share") from None
        session_id = secrets.token_bytes(SESSION_ID_SIZE)
        body = [
            self._suite.id,
            secrets.token_bytes(RANDOM_SIZE),
            *(ciphertext for _, ciphertext in encapsulated),
            session_id,
            _U32.pack(min(int(self.limits.max_age_seconds * 1000), 2**32 - 1)),
            _U32.pack(self.limits.max_messages),
            self._own_digest,
        ]
        signed = _transcript_hash(client_hello, encode_message(SERVER_HELLO, body))
        signature = self._identity.sign(signed, SERVER_SIGNATURE_CONTEXT)
        server_hello = encode_message(SERVER_HELLO, [*body, signature])
        transcript = _transcript_hash(client_hello, server_hello)
        shared = [shared_secret for shared_secret, _ in encapsulated]
        pending = PendingSession(
            session_id=session_id,
            client_key=client_key,
            created_at=self._clock(),
            _suite=self._suite,
            _transcript=transcript,
            _keys=_traffic_keys(self._suite, shared, transcript, client=False),
            _limits=self.limits,
            _clock=self._clock,
        )
        return server_hello, pending
