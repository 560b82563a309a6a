"""Verifying a node's TPM 2.0 quote: which platform holds its ML-DSA key, running what.

A QPU agent with a TPM measures its code and its node file into PCR 23 (see
qorch.qpu.tpm) and answers a challenge (a fresh nonce) with a quote: a TPMS_ATTEST
structure, signed by its attestation key (AK), over the digest of the selected PCRs,
with the qualifying data `SHA-256(nonce || ML-DSA public key)`. The verifier here
checks, in this order, each failure naming its check:

* `format`: the structure parses (bounded: size, counts, no trailing bytes), its magic
  is TPM_GENERATED_VALUE and its type TPM_ST_ATTEST_QUOTE;
* `signature`: the AK pinned in `spec.identity.attestation.akPublic` signed it;
* `nonce` / `key`: its qualifying data is SHA-256(this challenge || the ML-DSA key pinned
  for the node, the one the channel authenticates): not a replay of an earlier answer,
  not a quote binding another key;
* `pcrs`: it covers the pinned PCRs and their digest equals that of the pinned values.

TPM 2.0 signs with RSA or ECC, so a quantum adversary could one day forge quotes; the
session itself stays authenticated by ML-DSA-65. The quote adds platform binding and
tamper evidence, it does not replace the post-quantum layer (README, "Node attestation").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ALG_SHA256 = 0x000B
SHA256_SIZE = 32
# The PCR that the agent measures into (see qorch.qpu.tpm for why this one).
MEASUREMENT_PCR = 23
NONCE_BYTES = 32

# Bounds of an untrusted quote: a real one with a few PCR banks is about 120 bytes.
MAX_QUOTE_BYTES = 1024
MAX_SIGNATURE_BYTES = 1024
MAX_NAME_BYTES = 2 + 64  # TPM2B_NAME: hash algorithm + the largest digest
MAX_EXTRA_DATA_BYTES = 64
MAX_PCR_SELECTIONS = 8
MAX_PCR_SELECT_BYTES = 4  # PCR_SELECT_MAX of a 32-PCR TPM
PCR_COUNT = 24


class AttestationError(Exception):
    """A quote that does not prove what it should; `check` names the failed check."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


@dataclass(frozen=True)
class PcrSelection:
    hash_alg: int
    pcrs: tuple[int, ...]


@dataclass(frozen=True)
class Quote:
    """The fields of a TPMS_ATTEST of type quote (TPM 2.0 Part 2, 10.12)."""

    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    selections: tuple[PcrSelection, ...]
    pcr_digest: bytes


class _Reader:
    """Big-endian fields of a byte string, never reading past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int, what: str) -> bytes:
        if self.at + size > len(self.data):
            raise AttestationError("format", f"quote truncated in {what}")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def sized(self, limit: int, what: str) -> bytes:
        """A TPM2B: a 16-bit size, then that many bytes (at most `limit`)."""
        size = self.uint(2, what)
        if size > limit:
            raise AttestationError("format", f"{what} of {size} bytes (at most {limit})")
        return self.take(size, what)


def parse_quote(data: bytes) -> Quote:
    """A TPMS_ATTEST of type quote, or an AttestationError("format", ...) saying what is
    wrong with it; bounded by MAX_QUOTE_BYTES and the limits above."""
    if len(data) > MAX_QUOTE_BYTES:
        raise AttestationError("format", f"quote of {len(data)} bytes (at most {MAX_QUOTE_BYTES})")
    reader = _Reader(data)
    magic = reader.uint(4, "magic")
    if magic != TPM_GENERATED_VALUE:
        raise AttestationError(
            "format", f"magic {magic:#010x} is not TPM_GENERATED_VALUE: not made by a TPM"
        )
    kind = reader.uint(2, "type")
    if kind != TPM_ST_ATTEST_QUOTE:
        raise AttestationError("format", f"type {kind:#06x} is not TPM_ST_ATTEST_QUOTE")
    signer = reader.sized(MAX_NAME_BYTES, "qualifiedSigner")
    extra = reader.sized(MAX_EXTRA_DATA_BYTES, "extraData")
    clock = reader.uint(8, "clockInfo")
    reset_count = reader.uint(4, "clockInfo")
    restart_count = reader.uint(4, "clockInfo")
    safe = reader.uint(1, "clockInfo")
    firmware = reader.uint(8, "firmwareVersion")
    count = reader.uint(4, "pcrSelect")
    if count > MAX_PCR_SELECTIONS:
        raise AttestationError("format", f"{count} PCR selections (at most {MAX_PCR_SELECTIONS})")
    selections = []
    for _ in range(count):
        hash_alg = reader.uint(2, "pcrSelect")
        size = reader.uint(1, "pcrSelect")
        if size > MAX_PCR_SELECT_BYTES:
            raise AttestationError("format", f"PCR bitmap of {size} bytes")
        bitmap = reader.take(size, "pcrSelect")
        pcrs = tuple(i for i in range(8 * size) if bitmap[i // 8] >> (i % 8) & 1)
        selections.append(PcrSelection(hash_alg, pcrs))
    digest = reader.sized(64, "pcrDigest")
    if reader.at != len(data):
        raise AttestationError("format", f"{len(data) - reader.at} bytes after the quote")
    return Quote(
        qualified_signer=signer,
        extra_data=extra,
        clock=clock,
        reset_count=reset_count,
        restart_count=restart_count,
        safe=bool(safe),
        firmware_version=firmware,
        selections=tuple(selections),
        pcr_digest=digest,
    )


def qualifying_data(nonce: bytes, public_key: bytes) -> bytes:
    """What the quote signs beside the PCRs: the challenge and the node's ML-DSA key."""
    return hashlib.sha256(nonce + public_key).digest()


def extend(pcr: bytes, measurement: bytes) -> bytes:
    """A SHA-256 PCR after extending it with `measurement` (a SHA-256 digest)."""
    return hashlib.sha256(pcr + measurement).digest()


def pcr_after(measurements: list[bytes]) -> bytes:
    """A reset SHA-256 PCR (all zeros) extended with each measurement in turn."""
    value = bytes(SHA256_SIZE)
    for measurement in measurements:
        value = extend(value, measurement)
    return value


def pcr_digest(values: Mapping[int, bytes]) -> bytes:
    """The digest a quote carries: SHA-256 over the PCR values in ascending index order."""
    return hashlib.sha256(b"".join(values[i] for i in sorted(values))).digest()


def load_ak(pem: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The AK public key of a PEM (SubjectPublicKeyInfo); RSA or ECC, as a TPM makes them."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii", "replace"))
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("akPublic is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("akPublic is neither an RSA nor an ECC key")
    return key


def check_signature(ak_pem: str, message: bytes, signature: bytes) -> None:
    """The AK signed `message` (RSASSA-PKCS1-v1_5 or ECDSA DER, SHA-256)."""
    try:
        key = load_ak(ak_pem)
    except ValueError as exc:
        raise AttestationError("signature", str(exc)) from None
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise AttestationError("signature", f"signature of {len(signature)} bytes")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestationError(
            "signature", "the quote is not signed by the pinned attestation key (akPublic)"
        ) from None


def verify_quote(
    *,
    message: bytes,
    signature: bytes,
    ak_pem: str,
    nonce: bytes,
    public_key: bytes,
    expected_pcrs: Mapping[int, bytes],
    reported_pcrs: Mapping[int, bytes] | None = None,
    claimed_nonce: bytes | None = None,
    claimed_key: bytes | None = None,
) -> Quote:
    """Check a quote against the challenge, the pinned keys and the pinned PCR values;
    an AttestationError names the first check that fails (see the module's docstring).

    The agent's own claims only sharpen the message, once shown to agree with what was
    signed: `claimed_nonce` and `claimed_key`, what it says it bound (a replay, or another
    key), and `reported_pcrs`, its reading of its PCRs (which PCR differs)."""
    quote = parse_quote(message)
    check_signature(ak_pem, message, signature)
    if quote.extra_data != qualifying_data(nonce, public_key):
        raise _binding_failure(quote, nonce, public_key, claimed_nonce, claimed_key)
    wanted = tuple(sorted(expected_pcrs))
    selected = [s for s in quote.selections if s.pcrs]
    if len(selected) != 1 or selected[0].hash_alg != TPM_ALG_SHA256 or selected[0].pcrs != wanted:
        got = ", ".join(f"alg {s.hash_alg:#06x} PCRs {list(s.pcrs)}" for s in selected)
        raise AttestationError(
            "pcrs", f"the quote covers {got or 'no PCR'}, not sha256 PCRs {list(wanted)}"
        )
    if quote.pcr_digest != pcr_digest(expected_pcrs):
        raise AttestationError("pcrs", _pcr_mismatch(quote, expected_pcrs, reported_pcrs))
    return quote


def _binding_failure(
    quote: Quote,
    nonce: bytes,
    public_key: bytes,
    claimed_nonce: bytes | None,
    claimed_key: bytes | None,
) -> AttestationError:
    consistent = (
        claimed_nonce is not None
        and claimed_key is not None
        and quote.extra_data == qualifying_data(claimed_nonce, claimed_key)
    )
    if consistent and claimed_nonce != nonce:
        return AttestationError(
            "nonce", "the quote answers an earlier challenge, not this one (replayed)"
        )
    if consistent and claimed_key != public_key and claimed_key is not None:
        return AttestationError(
            "key",
            f"the quote binds ML-DSA key {fingerprint_of(claimed_key)}, not the"
            f" pinned {fingerprint_of(public_key)}",
        )
    return AttestationError(
        "nonce",
        "the quote's qualifying data is not SHA-256(this challenge || the pinned ML-DSA key)"
        " (a replayed quote, or one binding another key)",
    )


def fingerprint_of(public_key: bytes) -> str:
    return "sha256:" + hashlib.sha256(public_key).hexdigest()[:16]


def _pcr_mismatch(
    quote: Quote, expected: Mapping[int, bytes], reported: Mapping[int, bytes] | None
) -> str:
    base = "the quoted PCR digest differs from the pinned PCR values (agent code or node file"
    if reported and set(reported) == set(expected) and pcr_digest(reported) == quote.pcr_digest:
        changed = [i for i in sorted(expected) if reported[i] != expected[i]]
        return f"{base} changed): PCR {', '.join(map(str, changed))} differs"
    return f"{base} changed)"
