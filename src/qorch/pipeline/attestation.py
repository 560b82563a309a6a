"""Node attestation: the agent's TPM quotes a fresh nonce bound to its ML-DSA key, checked
against `spec.identity.attestation` (the quote itself: qorch.channel.attestation).

A node is challenged on every new channel session before anything else is sent over it
(`session_vet`), and again at each node check, so a node tampered with while a session
stays open is caught within a check period.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from qorch.agent_protocol import AgentError, AttestRequest, Caller, ErrorCode, ask
from qorch.api import reasons as R
from qorch.api.quantum_node import AttestationSpec
from qorch.channel.attestation import NONCE_BYTES, AttestationError, verify_quote
from qorch.channel.errors import SessionRefused
from qorch.channel.http import SessionCall, SessionVet
from qorch.channel.pins import KeyPins
from qorch.qpu.transport import SessionCaller

# An agent bounds each TPM command by its --tpm-timeout (10 s by default); this bounds the
# whole challenge, the agent included.
ATTEST_TIMEOUT_SECONDS = 15.0


def bound_key(pins: KeyPins, authenticated: str | None) -> bytes:
    """The key a quote must bind: the one that authenticated the channel (one of two while
    the node's key rotates), else the first one the pins accept."""
    accepted = pins.accepted() or list(pins.keys)
    return next(
        (p.public_key for p in accepted if p.fingerprint == authenticated),
        accepted[0].public_key,
    )


async def attest(pinned: AttestationSpec, key: bytes, client: Caller) -> str | None:
    """Challenge with a fresh nonce; None when the quote holds, else what failed."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    request = AttestRequest(nonce=base64.b64encode(nonce).decode("ascii"))
    try:
        reply = await ask(client, request, timeout=ATTEST_TIMEOUT_SECONDS)
    except AgentError as exc:
        if exc.code == ErrorCode.TIMEOUT:
            return f"no answer to the TPM challenge within {ATTEST_TIMEOUT_SECONDS:g} s"
        return f"the agent could not attest: {exc.code}: {exc.message}"
    try:
        message = base64.b64decode(reply.quote, validate=True)
        signature = base64.b64decode(reply.signature, validate=True)
        claimed_nonce = base64.b64decode(reply.nonce, validate=True)
        claimed_key = base64.b64decode(reply.public_key, validate=True)
    except binascii.Error:
        return "the attest reply is not valid base64"
    reported = {int(i): bytes.fromhex(v) for i, v in reply.pcrs.items() if i.isdigit()}
    try:
        verify_quote(
            message=message,
            signature=signature,
            ak_pem=pinned.ak_public,
            nonce=nonce,
            public_key=key,
            expected_pcrs={p.index: bytes.fromhex(p.sha256) for p in pinned.pcrs},
            reported_pcrs=reported,
            claimed_nonce=claimed_nonce,
            claimed_key=claimed_key,
        )
    except AttestationError as exc:
        return f"TPM quote failed the {exc.check} check: {exc.message}"
    return None


def session_vet(pinned: AttestationSpec, pins: KeyPins) -> SessionVet:
    """A check of each new session: a quote over it binding the key that authenticated it,
    or the session is refused (AttestationFailed) and nothing is sent over it."""

    async def vet(call: SessionCall, fingerprint: str) -> None:
        failure = await attest(
            pinned, bound_key(pins, fingerprint), SessionCaller(call, fingerprint)
        )
        if failure is not None:
            raise SessionRefused(R.ATTESTATION_FAILED, f"new session refused: {failure}")

    return vet
