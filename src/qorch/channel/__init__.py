"""Post-quantum authenticated control channel between the operator and QPU nodes.

Identities are ML-DSA-65 key pairs (FIPS 204). The operator pins each node's
public key (from its QuantumNode spec); each node trusts the operator's key.

Handshake (one suite, never negotiated:
"qorch-channel-v1/MLKEM768+X25519/MLDSA65/HKDF-SHA256/AES256GCM"):

    operator -> node  ClientHello   suite id, random, ephemeral ML-KEM-768 and
                                    X25519 public keys, SHA-256 of the operator
                                    key, SHA-256 of each pinned node key
                                    (two while the node's key rotates)
    node -> operator  HelloRetry    suite id, cookie: an HMAC over the hello, the
                                    operator's address and a time window, which
                                    the node can check without keeping any state
    operator -> node  ClientHello   the same hello with the cookie appended
    node -> operator  ServerHello   suite id, random, ML-KEM ciphertext, X25519
                                    public key, session id, session limits,
                                    SHA-256 of the node key, ML-DSA-65 signature
                                    over SHA-256(ClientHello || ServerHello body)
    operator -> node  ClientFinish  session id, ML-DSA-65 signature over
                                    SHA-256(ClientHello || ServerHello)

The operator checks the node's key against its pin and the node's signature
before sending anything else; the node refuses operators outside its trusted
set at ClientHello and opens the session only when ClientFinish verifies. The
node signs only for a hello that returns with a valid cookie (as DTLS's
HelloVerifyRequest and QUIC's Retry), at most once per hello, and at a bounded
rate per address: a peer that knows the operator's public key, or replays its
hellos, cannot make the node sign at will. The second ClientHello, cookie
included, is the one in the transcript.

Key schedule: the ML-KEM-768 and X25519 shared secrets are concatenated (ML-KEM
first, as TLS's X25519MLKEM768 does) and fed to HKDF-SHA256 with the transcript
hash SHA-256(ClientHello || ServerHello) as salt and "qorch-channel-v1 traffic
keys" + suite id as info, giving one AES-256-GCM key and IV per direction.

Records: header (type, session id, 64-bit sequence number) as associated data,
nonce = IV XOR sequence number; each side accepts exactly the next sequence
number, so replayed, reordered, truncated and modified records are refused.
A session carries at most `SessionLimits.max_messages` requests for at most
`max_age_seconds`; then the client runs a fresh handshake (new ephemeral keys,
no in-session key update). Inside records travels JSON:
{"op", "payload", "trace"} out, {"ok", "result" | "error"} back.

Modules: `provider` (crypto back ends), `identity` (keys, files, fingerprints),
`pins` (the node keys a client accepts, in rotation windows), `suite`, `handshake` and
`session` (sans-IO protocol), `admission` (what a peer
without a key can make a node spend), `envelope` (JSON and trace context),
`http` (aiohttp binding, `ServerLimits`), `signing` (signed DistributedJob specs).
"""

from qorch.channel.envelope import current_trace
from qorch.channel.errors import (
    AuthenticationFailed,
    ChannelError,
    ChannelTimeout,
    HandshakeError,
    KeyNotYetValid,
    KeyRetired,
    MalformedMessage,
    OutOfOrderMessage,
    PeerKeyMismatch,
    ProviderUnavailable,
    RecordError,
    RemoteError,
    ReplayedMessage,
    SessionExpired,
    TamperedMessage,
    Throttled,
    TransportError,
    UnknownSession,
    UnsupportedSuite,
    UntrustedPeer,
)
from qorch.channel.handshake import ClientHandshake, PendingSession, ServerHandshake
from qorch.channel.http import ChannelClient, ChannelServer, ServerLimits
from qorch.channel.identity import (
    Identity,
    decode_public_key,
    encode_public_key,
    fingerprint,
    load_public_key,
)
from qorch.channel.pins import KeyPins, PinnedKey
from qorch.channel.provider import (
    CryptographyProvider,
    CryptoProvider,
    LiboqsProvider,
    get_provider,
)
from qorch.channel.session import Session, SessionLimits
from qorch.channel.signing import (
    SignatureError,
    TrustedKey,
    VerifiedSigner,
    canonical_job,
    sign_command,
    sign_job,
    verify_command,
    verify_job,
)

__all__ = [
    "AuthenticationFailed",
    "ChannelClient",
    "ChannelError",
    "ChannelServer",
    "ChannelTimeout",
    "ClientHandshake",
    "CryptoProvider",
    "CryptographyProvider",
    "HandshakeError",
    "Identity",
    "KeyNotYetValid",
    "KeyPins",
    "KeyRetired",
    "LiboqsProvider",
    "MalformedMessage",
    "OutOfOrderMessage",
    "PeerKeyMismatch",
    "PendingSession",
    "PinnedKey",
    "ProviderUnavailable",
    "RecordError",
    "RemoteError",
    "ReplayedMessage",
    "ServerHandshake",
    "ServerLimits",
    "Session",
    "SessionExpired",
    "SessionLimits",
    "SignatureError",
    "TamperedMessage",
    "Throttled",
    "TransportError",
    "TrustedKey",
    "UnknownSession",
    "UnsupportedSuite",
    "UntrustedPeer",
    "VerifiedSigner",
    "canonical_job",
    "current_trace",
    "decode_public_key",
    "encode_public_key",
    "fingerprint",
    "get_provider",
    "load_public_key",
    "sign_command",
    "sign_job",
    "verify_command",
    "verify_job",
]
