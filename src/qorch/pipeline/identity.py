"""Which public keys the pipeline pins for a node: no trust on first use, ever.

A node's spec pins one key, or two while it rotates (`spec.identity.rotation`), each in
its window of wall-clock time (see qorch.channel.pins). A spec that cannot be pinned is
not sent anything: its calls fail with InvalidIdentity, which becomes the node's reason.
"""

from __future__ import annotations

from datetime import datetime

from qorch.api import QuantumNode
from qorch.api import reasons as R
from qorch.api.quantum_node import QuantumNodeStatus
from qorch.channel.identity import decode_public_key
from qorch.channel.pins import KeyPins, PinnedKey, WallClock, utc_now
from qorch.qpu.transport import (
    AgentClient,
    AgentConnections,
    RefusingAgent,
    SecureAgentClient,
    authenticated_fingerprint,
)

from .attestation import session_vet


class InvalidIdentity(ValueError):
    """spec.identity cannot be pinned; the message names the field to fix."""


def _key(text: str, field: str) -> bytes:
    try:
        return decode_public_key(text)
    except ValueError as exc:
        raise InvalidIdentity(f"spec.identity.{field}: {exc}") from None


def _time(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidIdentity(
            f"spec.identity.rotation.{field}: {text[:64]!r} is not an RFC 3339 time,"
            " e.g. 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise InvalidIdentity(
            f"spec.identity.rotation.{field}: {text[:64]!r} has no time zone (end it in Z)"
        )
    return moment


def node_pins(
    node: QuantumNode, managed_key: bytes | None, clock: WallClock = utc_now
) -> KeyPins | None:
    """The keys in the node's spec if set (with the rotation's, each in its window); else,
    for an `aer` node, the key qorch made for it. Raises InvalidIdentity.

    An external node without `spec.identity.publicKey` has no pinned key: nothing is sent.
    """
    spec = node.spec.identity
    if spec.rotation is not None and not spec.public_key:
        raise InvalidIdentity(
            "spec.identity.rotation needs spec.identity.publicKey, the key it rotates from"
        )
    if not spec.public_key:
        return KeyPins.of(managed_key) if node.spec.backend.type == "aer" and managed_key else None
    current = _key(spec.public_key, "publicKey")
    rotation = spec.rotation
    if rotation is None:
        return KeyPins((PinnedKey(current),), clock)
    following = _key(rotation.next_public_key, "rotation.nextPublicKey")
    if following == current:
        raise InvalidIdentity(
            "spec.identity.rotation.nextPublicKey is publicKey itself: a rotation needs a"
            " new key (qorch keygen writes one)"
        )
    not_before = _time(rotation.not_before, "notBefore")
    not_after = _time(rotation.not_after, "notAfter")
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise InvalidIdentity(
            f"spec.identity.rotation.notAfter ({rotation.not_after}) is not after notBefore"
            f" ({rotation.not_before}): the window in which both keys are accepted would"
            " be empty"
        )
    return KeyPins.rotating(current, following, not_before, not_after, clock)


def node_agent(
    connections: AgentConnections,
    node: QuantumNode,
    endpoint: str,
    managed_key: bytes | None,
    clock: WallClock = utc_now,
) -> AgentClient:
    """The channel to the node's agent under its pins; a node whose identity spec cannot be
    pinned gets a client that refuses every call with InvalidIdentity."""
    try:
        pins = node_pins(node, managed_key, clock)
    except InvalidIdentity as exc:
        return RefusingAgent(R.INVALID_IDENTITY, str(exc))
    client = connections.get(node.metadata.name, endpoint, pins, node.metadata.namespace)
    if isinstance(client, SecureAgentClient) and pins is not None:
        attestation = node.spec.identity.attestation
        client.vet_sessions(session_vet(attestation, pins) if attestation else None)
    return client


def accepted_keys(node: QuantumNode, managed_key: bytes | None) -> tuple[bytes, ...]:
    """The node's keys pinned and accepted now (two inside a rotation window), for another
    agent to pin; none when the node has no pin or an invalid identity spec."""
    try:
        pins = node_pins(node, managed_key)
    except InvalidIdentity:
        return ()
    return tuple(key.public_key for key in pins.accepted()) if pins is not None else ()


def record_identity(status: QuantumNodeStatus, client: AgentClient) -> None:
    """Into a node's status: the keys its pins accept now, and the key that authenticated
    the last call that got through (before any did, the key pinned first)."""
    pins = getattr(client, "pins", None)
    accepted = pins.fingerprints() if isinstance(pins, KeyPins) else []
    status.accepted_fingerprints = accepted
    previous = status.identity_fingerprint if status.identity_fingerprint in accepted else None
    status.identity_fingerprint = (
        authenticated_fingerprint(client) or previous or (accepted[0] if accepted else None)
    )
