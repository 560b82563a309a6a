"""Established sessions: AES-256-GCM records with strict per-direction sequence numbers.

Record = header || AES-256-GCM(key, nonce, plaintext, associated_data=header)

    header = type (1: 0x17 request, 0x18 reply) || session id (16) || seq (8, big-endian)
    nonce  = direction IV (12) XOR seq (right-aligned), as in TLS 1.3

Each direction has its own key and IV. The receiver accepts exactly the next
sequence number: an older one is a replay, a newer one means a record was
dropped or reordered. Counters only advance after the AEAD tag verifies, so a
forged record cannot desynchronise the session. The server seals one reply per
request, in order; a client accepts a reply only to a request it sent. (The
HTTP binding keeps one request in flight per session, and a pool of sessions
for concurrency, because HTTP requests can overtake each other.)

Limits gate new requests only (a request accepted just before expiry still gets
its reply): after `max_age_seconds` or `max_messages` requests the session is
spent and the client runs a fresh handshake (no in-session key update).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qorch.channel.errors import (
    MalformedMessage,
    OutOfOrderMessage,
    ReplayedMessage,
    SessionExpired,
    TamperedMessage,
)

RECORD_REQUEST = 0x17
RECORD_REPLY = 0x18
SESSION_ID_SIZE = 16
KEY_SIZE = 32
IV_SIZE = 12
TAG_SIZE = 16
_HEADER = struct.Struct("!B16sQ")
HEADER_SIZE = _HEADER.size
MIN_RECORD_SIZE = HEADER_SIZE + TAG_SIZE

Role = Literal["client", "server"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class SessionLimits:
    """How long a session may carry requests before a fresh handshake is required."""

    max_age_seconds: float = 600.0
    max_messages: int = 10_000

    def __post_init__(self) -> None:
        if self.max_age_seconds <= 0 or self.max_messages <= 0:
            raise ValueError("session limits must be positive")
        if self.max_messages >= 2**32:
            raise ValueError("max_messages must stay far below the AES-GCM nonce space")

    def tighter(self, other: SessionLimits) -> SessionLimits:
        return SessionLimits(
            min(self.max_age_seconds, other.max_age_seconds),
            min(self.max_messages, other.max_messages),
        )


@dataclass(frozen=True, repr=False)
class TrafficKeys:
    send_key: bytes
    send_iv: bytes
    receive_key: bytes
    receive_iv: bytes

    def __repr__(self) -> str:
        return "TrafficKeys(<redacted>)"


@dataclass(frozen=True)
class RecordHeader:
    record_type: int
    session_id: bytes
    seq: int

    @classmethod
    def parse(cls, record: bytes) -> RecordHeader:
        if len(record) < MIN_RECORD_SIZE:
            raise MalformedMessage(
                f"record truncated: {len(record)} bytes, a record has at least {MIN_RECORD_SIZE}"
            )
        return cls(*_HEADER.unpack_from(record))


def _nonce(iv: bytes, seq: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(IV_SIZE, "big")


@dataclass(repr=False)
class Session:
    """One side of an established session (sans-IO)."""

    role: Role
    session_id: bytes
    keys: TrafficKeys
    limits: SessionLimits
    peer_fingerprint: str
    clock: Clock = time.monotonic
    established_at: float = field(default=-1.0)
    _sent: int = 0
    _received: int = 0

    def __post_init__(self) -> None:
        if self.established_at < 0:
            self.established_at = self.clock()
        self._sealer = AESGCM(self.keys.send_key)
        self._opener = AESGCM(self.keys.receive_key)
        self._send_type = RECORD_REQUEST if self.role == "client" else RECORD_REPLY
        self._receive_type = RECORD_REPLY if self.role == "client" else RECORD_REQUEST

    @property
    def short_id(self) -> str:
        return self.session_id.hex()[:8]

    @property
    def requests(self) -> int:
        """Requests carried so far (sealed by a client, opened by a server)."""
        return self._sent if self.role == "client" else self._received

    def age(self) -> float:
        return self.clock() - self.established_at

    def expired(self) -> bool:
        """No new request may use this session."""
        return (
            self.age() >= self.limits.max_age_seconds or self.requests >= self.limits.max_messages
        )

    def near_expiry(self, margin_seconds: float) -> bool:
        """The client rotates a little early so the server never has to refuse."""
        return self.expired() or self.age() >= self.limits.max_age_seconds - margin_seconds

    def _check_usable(self) -> None:
        if self.expired():
            raise SessionExpired(
                f"session {self.short_id} is spent after {self.requests} requests "
                f"and {self.age():.0f} s"
            )

    def seal(self, plaintext: bytes) -> bytes:
        if self.role == "client":
            self._check_usable()
        elif self._sent >= self._received:
            raise RuntimeError("a server seals exactly one reply per request")
        header = _HEADER.pack(self._send_type, self.session_id, self._sent)
        record = header + self._sealer.encrypt(
            _nonce(self.keys.send_iv, self._sent), plaintext, header
        )
        self._sent += 1
        return record

    def open(self, record: bytes) -> bytes:
        header = RecordHeader.parse(record)
        if header.record_type != self._receive_type:
            raise MalformedMessage(f"unexpected record type 0x{header.record_type:02x}")
        if header.session_id != self.session_id:
            raise MalformedMessage(f"record is not for session {self.short_id}")
        if self.role == "server":
            self._check_usable()
        self._check_sequence(header.seq)
        try:
            plaintext = self._opener.decrypt(
                _nonce(self.keys.receive_iv, header.seq),
                record[HEADER_SIZE:],
                record[:HEADER_SIZE],
            )
        except InvalidTag:
            raise TamperedMessage(
                f"record {header.seq} of session {self.short_id} failed authentication"
            ) from None
        self._received += 1
        return plaintext

    def _check_sequence(self, seq: int) -> None:
        expected = self._received
        if seq < expected:
            raise ReplayedMessage(
                f"record {seq} of session {self.short_id} was already received "
                f"(expecting {expected})"
            )
        if seq > expected or (self.role == "client" and seq >= self._sent):
            raise OutOfOrderMessage(
                f"record {seq} of session {self.short_id} arrived out of order "
                f"(expecting {expected})"
            )
