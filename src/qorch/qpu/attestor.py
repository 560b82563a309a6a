"""The agent's side of node attestation: its ML-DSA key sealed to its measurements, and its
answer to the operator's challenge.

Enrolment (`enroll`, behind `qorch tpm enroll`) seals a fresh 32-byte key in the TPM under
a PolicyPCR of the PCR 23 value the agent will have at start (qorch.qpu.tpm), and wraps
the node's ML-DSA-65 private key with it (AES-256-GCM) into a sealed identity file. At
start (`Attestor.start`) the agent measures its code and node file into PCR 23 and asks
the TPM to unseal: with other code or another node file the TPM refuses, and the agent has
no key to answer the channel with.

The sealed identity file (mode 0600) is JSON: `format`, `handle` (of the sealed key),
`nonce` and `ciphertext` (base64). It is useless without the TPM in the right state.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qorch.agent_protocol import AgentError, AttestReply, AttestRequest, ErrorCode
from qorch.channel.attestation import MEASUREMENT_PCR, SHA256_SIZE, qualifying_data
from qorch.channel.identity import Identity, encode_public_key

from .tpm import SEALED_HANDLE, Tpm, TpmError, code_measurement, expected_pcr, file_measurement

log = logging.getLogger(__name__)

SEALED_FORMAT = "qorch-sealed-identity/1"
# Largest sealed identity file read: a PEM private key is a few kB.
MAX_SEALED_FILE_BYTES = 64 * 1024


class SealedIdentityError(ValueError):
    """A sealed identity file that cannot be used; the message says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_sealed_identity(path: Path, identity: Identity, key: bytes) -> None:
    """The identity's private key wrapped by `key`, written atomically with mode 0600."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, identity.private_pem(), SEALED_FORMAT.encode())
    document = {
        "format": SEALED_FORMAT,
        "handle": f"{SEALED_HANDLE:#x}",
        "publicKey": encode_public_key(identity.public_key),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
    }
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, json.dumps(document, indent=1).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)  # a symlink at `path` is replaced, never followed
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_sealed_identity(path: Path, key: bytes) -> Identity:
    """The identity of a sealed identity file, with the key the TPM unsealed."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SEALED_FILE_BYTES + 1)
    except OSError as exc:
        raise SealedIdentityError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_SEALED_FILE_BYTES:
        raise SealedIdentityError(f"{path}: larger than {MAX_SEALED_FILE_BYTES} bytes")
    try:
        document: Any = json.loads(raw)
        if document.get("format") != SEALED_FORMAT:
            raise SealedIdentityError(f"{path}: not a {SEALED_FORMAT} file")
        nonce = base64.b64decode(document["nonce"], validate=True)
        ciphertext = base64.b64decode(document["ciphertext"], validate=True)
    except SealedIdentityError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SealedIdentityError(f"{path}: not a sealed identity file (JSON)") from None
    try:
        pem = AESGCM(key).decrypt(nonce, ciphertext, SEALED_FORMAT.encode())
    except Exception:
        raise SealedIdentityError(
            f"{path}: the key the TPM unsealed does not open it (sealed for another TPM or"
            " enrolment)"
        ) from None
    return Identity.from_pem(pem)


@dataclass(frozen=True)
class Enrolment:
    """What to pin for an enrolled node."""

    public_key: bytes
    ek_public: str
    ak_public: str
    pcr_value: bytes

    def identity_fragment(self) -> dict[str, Any]:
        """`spec.identity` of the QuantumNode, as the operator verifies it."""
        return {
            "publicKey": encode_public_key(self.public_key),
            "attestation": {
                "ekPublic": self.ek_public,
                "akPublic": self.ak_public,
                "pcrs": [{"index": MEASUREMENT_PCR, "sha256": self.pcr_value.hex()}],
            },
        }


def enroll(tpm: Tpm, identity: Identity, node_file: Path, sealed_file: Path) -> Enrolment:
    """Provision the TPM for this node: an AK certified by the EK, and the identity sealed
    to the PCR value the agent will have with this code and `node_file`."""
    pcr_value = expected_pcr(node_file)
    ek_public, ak_public = tpm.enroll_ak()
    key = os.urandom(32)
    tpm.seal(key, pcr_value)
    write_sealed_identity(sealed_file, identity, key)
    return Enrolment(identity.public_key, ek_public, ak_public, pcr_value)


class Attestor:
    """Answers `attest` challenges with quotes of PCR 23 binding the agent's ML-DSA key."""

    def __init__(self, tpm: Tpm, public_key: bytes, node_file: Path, measured: list[bytes]):
        self.tpm = tpm
        self.public_key = public_key
        self.node_file = node_file
        self._measured = measured  # the code's and the node file's, last measured
        self._lock = threading.Lock()  # one challenge at a time: measure, then quote

    @classmethod
    def start(cls, tpm: Tpm, sealed_file: Path, node_file: Path) -> tuple[Attestor, Identity]:
        """Measure the code and node file into PCR 23, then unseal the identity; a TpmError
        or SealedIdentityError says why the agent cannot have its key."""
        measured = [code_measurement(), file_measurement(node_file)]
        tpm.measure(measured)
        identity = read_sealed_identity(sealed_file, tpm.unseal())
        log.info("identity %s unsealed by %r", identity.fingerprint, tpm)
        return cls(tpm, identity.public_key, node_file, measured), identity

    async def attest(self, request: AttestRequest) -> AttestReply:
        try:
            return await asyncio.to_thread(self._attest, request.nonce_bytes)
        except TpmError as exc:
            raise AgentError(ErrorCode.TPM_FAILED, str(exc)) from None

    def _remeasure(self) -> None:
        """Extend PCR 23 with the code or node file if either changed since it was last
        measured: a module imported later, or the node manifest reloaded, would run it. The
        PCR then no longer matches enrolment, and the quote says so."""
        try:
            current = [code_measurement(), file_measurement(self.node_file)]
        except OSError:
            return  # unreadable now: the next challenge looks again
        for what, before, now in zip(("code", "node file"), self._measured, current, strict=True):
            if now != before:
                self.tpm.extend(now)
                log.warning(
                    "%s changed since it was measured: extended PCR %d", what, MEASUREMENT_PCR
                )
        self._measured = current

    def _attest(self, nonce: bytes) -> AttestReply:
        with self._lock:
            self._remeasure()
            message, signature, pcr = self.tpm.quote(qualifying_data(nonce, self.public_key))
        values = {str(MEASUREMENT_PCR): pcr.hex()} if len(pcr) == SHA256_SIZE else {}
        return AttestReply(
            quote=_b64(message),
            signature=_b64(signature),
            nonce=_b64(nonce),
            public_key=encode_public_key(self.public_key),
            pcrs=values,
        )
