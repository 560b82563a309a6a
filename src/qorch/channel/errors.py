"""Exceptions of the control channel.

Messages name fingerprints, sizes, sequence numbers and session-id prefixes;
never key material or plaintext.
"""

from __future__ import annotations


class ChannelError(Exception):
    """The channel could not deliver a message securely."""


class ProviderUnavailable(ChannelError):
    """The requested crypto provider cannot be used on this machine."""


class MalformedMessage(ChannelError):
    """A handshake message or record does not parse (wrong length, truncated, bad field)."""


class HandshakeError(ChannelError):
    """The handshake failed."""


class UnsupportedSuite(HandshakeError):
    """The peer offered a suite other than the one this side runs (no negotiation, no downgrade)."""


class PeerKeyMismatch(HandshakeError):
    """The node presented (or expects) a key other than the pinned one."""


class KeyRetired(PeerKeyMismatch):
    """The node presented a pinned key whose rotation window has ended."""


class KeyNotYetValid(PeerKeyMismatch):
    """The node presented a pinned key whose rotation window has not begun."""


class SessionRefused(HandshakeError):
    """The client's own check of a new session failed (see ChannelClient `vet`); `reason`
    is a CamelCase constant saying which check."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthenticationFailed(HandshakeError):
    """A handshake signature did not verify, or the peer is not trusted."""


class UntrustedPeer(AuthenticationFailed):
    """The client's key is not in the server's trusted set."""


class RecordError(ChannelError):
    """An application record was rejected."""


class TamperedMessage(RecordError):
    """AEAD authentication failed: ciphertext, tag or header was modified."""


class ReplayedMessage(RecordError):
    """A record arrived with a sequence number that was already consumed."""


class OutOfOrderMessage(RecordError):
    """A record arrived ahead of its turn (a record before it was dropped or reordered)."""


class SessionExpired(ChannelError):
    """The session reached its lifetime or message limit; a fresh handshake is needed."""


class UnknownSession(ChannelError):
    """The session id is unknown to the server (expired, evicted, or the server restarted)."""


class Throttled(ChannelError):
    """The node refused the request before doing anything with it: too many requests from
    this address, or too much in flight. The same bytes may be sent again after
    `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransportError(ChannelError):
    """The HTTP exchange failed (connection, unexpected status, bad response)."""


class ChannelTimeout(TransportError, TimeoutError):
    """The call did not complete within its timeout."""


class RemoteError(Exception):
    """The remote handler raised: the channel worked, the operation failed.

    Deliberately not a ChannelError, so callers can tell "the node refused the
    op" from "the channel is broken".
    """

    def __init__(self, op: str, error_type: str, message: str) -> None:
        super().__init__(f"{op}: remote {error_type}: {message}")
        self.op = op
        self.error_type = error_type
        self.remote_message = message


#: Refusals that say a peer failed to prove who it is (untrusted or mismatched key, a bad
#: signature or key confirmation), as opposed to malformed, stale or throttled traffic.
AUTHENTICATION_FAILURES: tuple[type[ChannelError], ...] = (
    PeerKeyMismatch,
    AuthenticationFailed,
    UntrustedPeer,
)

# Error codes a server may send in a refusal; the client maps them back to classes.
REFUSAL_CODES: dict[str, type[ChannelError]] = {
    cls.__name__: cls
    for cls in (
        MalformedMessage,
        UnsupportedSuite,
        PeerKeyMismatch,
        AuthenticationFailed,
        UntrustedPeer,
        TamperedMessage,
        ReplayedMessage,
        OutOfOrderMessage,
        SessionExpired,
        UnknownSession,
        Throttled,
    )
}
