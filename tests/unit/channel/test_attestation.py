"""The quote verifier, on quotes made by a real TPM 2.0 (swtpm) and on hostile input."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from qorch.channel.attestation import (
    MAX_QUOTE_BYTES,
    MEASUREMENT_PCR,
    AttestationError,
    parse_quote,
    pcr_after,
    qualifying_data,
    verify_quote,
)
from qorch.qpu.tpm import Tpm, TpmError, TpmTimeout
from tests.tpm_support import Swtpm, requires_swtpm

pytestmark = requires_swtpm

MEASUREMENTS = [bytes([1]) * 32, bytes([2]) * 32]
ML_DSA_KEY = bytes(range(256)) * 8  # stands for a public key: only its bytes are hashed


@dataclass
class Quoted:
    """A real quote and what it should verify against."""

    tpm: Tpm
    ak_pem: str
    ek_pem: str
    nonce: bytes
    message: bytes
    signature: bytes
    pcr: bytes

    def verify(self, **changes: object) -> None:
        args: dict[str, object] = {
            "message": self.message,
            "signature": self.signature,
            "ak_pem": self.ak_pem,
            "nonce": self.nonce,
            "public_key": ML_DSA_KEY,
            "expected_pcrs": {MEASUREMENT_PCR: pcr_after(MEASUREMENTS)},
        }
        verify_quote(**{**args, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def quoted() -> Iterator[Quoted]:
    emulator = Swtpm().start()
    try:
        tpm = Tpm(emulator.tcti)
        ek_pem, ak_pem = tpm.enroll_ak()
        tpm.measure(MEASUREMENTS)
        nonce = os.urandom(32)
        message, signature, pcr = tpm.quote(qualifying_data(nonce, ML_DSA_KEY))
        yield Quoted(tpm, ak_pem, ek_pem, nonce, message, signature, pcr)
    finally:
        emulator.stop()


def test_a_real_quote_verifies_and_parses(quoted: Quoted) -> None:
    quoted.verify()
    quote = parse_quote(quoted.message)
    assert quote.extra_data == qualifying_data(quoted.nonce, ML_DSA_KEY)
    assert [(s.hash_alg, s.pcrs) for s in quote.selections] == [(0x000B, (MEASUREMENT_PCR,))]
    assert quoted.pcr == pcr_after(MEASUREMENTS)  # the TPM extends as pcr_after computes


def test_the_tpm_holds_the_measured_value(quoted: Quoted) -> None:
    assert quoted.tpm.read_pcr() == pcr_after(MEASUREMENTS)


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"nonce": b"\0" * 32}, "nonce"),  # a quote of an earlier challenge
        ({"public_key": b"another key"}, "nonce"),  # binds another ML-DSA key
        ({"expected_pcrs": {MEASUREMENT_PCR: b"\0" * 32}}, "pcrs"),
        ({"expected_pcrs": {16: b"\0" * 32}}, "pcrs"),  # covers another PCR
        ({"expected_pcrs": {16: b"\0" * 32, MEASUREMENT_PCR: pcr_after(MEASUREMENTS)}}, "pcrs"),
    ],
)
def test_a_quote_fails_the_check_it_breaks(quoted: Quoted, change: dict, check: str) -> None:
    with pytest.raises(AttestationError) as caught:
        quoted.verify(**change)
    assert caught.value.check == check


def test_the_agents_claims_name_a_replay_or_another_key(quoted: Quoted) -> None:
    with pytest.raises(AttestationError, match="earlier challenge") as caught:
        quoted.verify(nonce=os.urandom(32), claimed_nonce=quoted.nonce, claimed_key=ML_DSA_KEY)
    assert caught.value.check == "nonce"
    with pytest.raises(AttestationError, match="binds ML-DSA key") as caught:
        quoted.verify(public_key=b"pinned", claimed_nonce=quoted.nonce, claimed_key=ML_DSA_KEY)
    assert caught.value.check == "key"
    # Claims the signature does not back change nothing.
    with pytest.raises(AttestationError, match="qualifying data") as caught:
        quoted.verify(public_key=b"pinned", claimed_nonce=quoted.nonce, claimed_key=b"pinned")


def test_a_pcr_mismatch_names_the_pcr_when_the_reading_backs_it(quoted: Quoted) -> None:
    expected = {MEASUREMENT_PCR: b"\1" * 32}
    with pytest.raises(AttestationError, match=f"PCR {MEASUREMENT_PCR} differs"):
        quoted.verify(expected_pcrs=expected, reported_pcrs={MEASUREMENT_PCR: quoted.pcr})
    with pytest.raises(AttestationError) as caught:  # a reading that is not what was signed
        quoted.verify(expected_pcrs=expected, reported_pcrs={MEASUREMENT_PCR: b"\2" * 32})
    assert f"PCR {MEASUREMENT_PCR} differs" not in caught.value.message


def test_another_attestation_key_is_refused(quoted: Quoted) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(AttestationError, match="not signed by the pinned") as caught:
        quoted.verify(ak_pem=pem)
    assert caught.value.check == "signature"
    with pytest.raises(AttestationError, match="not a PEM"):
        quoted.verify(ak_pem="garbage")


def test_the_ek_is_not_the_ak(quoted: Quoted) -> None:
    with pytest.raises(AttestationError) as caught:
        quoted.verify(ak_pem=quoted.ek_pem)
    assert caught.value.check == "signature"


def test_a_signature_with_a_flipped_bit_is_refused(quoted: Quoted) -> None:
    signature = bytearray(quoted.signature)
    signature[7] ^= 0x10
    with pytest.raises(AttestationError) as caught:
        quoted.verify(signature=bytes(signature))
    assert caught.value.check == "signature"
    with pytest.raises(AttestationError, match="signature of"):
        quoted.verify(signature=b"\0" * 5000)


def test_a_changed_quote_no_longer_matches_its_signature(quoted: Quoted) -> None:
    message = bytearray(quoted.message)
    message[-1] ^= 1  # the PCR digest
    with pytest.raises(AttestationError) as caught:
        quoted.verify(message=bytes(message))
    assert caught.value.check == "signature"


# -- hostile blobs: every one is a `format` AttestationError, nothing else ----------------


def test_every_truncation_is_refused_as_such(quoted: Quoted) -> None:
    for size in range(len(quoted.message)):
        with pytest.raises(AttestationError) as caught:
            parse_quote(quoted.message[:size])
        assert caught.value.check == "format", size


def test_oversized_and_trailing_bytes_are_refused(quoted: Quoted) -> None:
    with pytest.raises(AttestationError, match="at most"):
        parse_quote(quoted.message + b"\0" * MAX_QUOTE_BYTES)
    with pytest.raises(AttestationError, match="1 bytes after"):
        parse_quote(quoted.message + b"\0")


def test_wrong_magic_and_type_are_refused(quoted: Quoted) -> None:
    with pytest.raises(AttestationError, match="not TPM_GENERATED_VALUE"):
        parse_quote(b"\xde\xad\xbe\xef" + quoted.message[4:])
    certify = quoted.message[:4] + struct.pack(">H", 0x8017) + quoted.message[6:]
    with pytest.raises(AttestationError, match="not TPM_ST_ATTEST_QUOTE"):
        parse_quote(certify)


def test_lengths_beyond_their_bounds_are_refused(quoted: Quoted) -> None:
    header = quoted.message[:6]
    with pytest.raises(AttestationError, match="qualifiedSigner of 65535 bytes"):
        parse_quote(header + b"\xff\xff" + b"\0" * 200)
    signer = quoted.message[6 : 8 + int.from_bytes(quoted.message[6:8], "big")]
    with pytest.raises(AttestationError, match="extraData of 4096 bytes"):
        parse_quote(header + signer + b"\x10\x00" + b"\0" * 200)
    # A selection count of 2^32 - 1 is refused before anything is allocated for it.
    after_extra = 8 + len(signer) - 2 + 2 + 32 + 17 + 8
    blob = quoted.message[:after_extra] + b"\xff\xff\xff\xff"
    with pytest.raises(AttestationError, match="PCR selections"):
        parse_quote(blob)


def test_seeded_garbage_is_refused_as_format(quoted: Quoted) -> None:
    rng = random.Random(20261206)
    for _ in range(2000):
        size = rng.randrange(0, 300)
        blob = bytes(rng.randrange(256) for _ in range(size))
        if rng.random() < 0.5:  # a plausible header, so the parser goes deeper
            blob = quoted.message[:6] + blob
        with pytest.raises(AttestationError) as caught:
            parse_quote(blob)
        assert caught.value.check == "format"


def test_sealed_data_comes_back_only_with_the_pcr_it_was_sealed_to(swtpm) -> None:
    tpm = Tpm(swtpm().tcti)
    tpm.measure(MEASUREMENTS)
    tpm.seal(b"k" * 32, pcr_after(MEASUREMENTS))
    assert tpm.unseal() == b"k" * 32
    tpm.extend(b"\3" * 32)
    with pytest.raises(TpmError, match="refuses to unseal"):
        tpm.unseal()
    tpm.measure(MEASUREMENTS)  # back to the enrolled state
    assert tpm.unseal() == b"k" * 32


def test_a_tpm_can_be_enrolled_again(swtpm) -> None:
    """Re-enrolment replaces the AK and the sealed key; no TPM slot is left taken."""
    tpm = Tpm(swtpm().tcti)
    keys = [tpm.enroll_ak() for _ in range(4)]
    assert len({ek for ek, _ in keys}) == 1  # the same EK: from the TPM's endorsement seed
    assert len({ak for _, ak in keys}) == 4  # a new AK each time
    for secret in (b"a" * 32, b"b" * 32, b"c" * 32):
        tpm.measure(MEASUREMENTS)
        tpm.seal(secret, pcr_after(MEASUREMENTS))
        assert tpm.unseal() == secret


def test_a_tpm_that_stops_answering_times_out_and_recovers(swtpm) -> None:
    emulator = swtpm()
    tpm = Tpm(emulator.tcti)
    tpm.enroll_ak()  # an RSA key: seconds on a loaded machine, so the default timeout
    tpm.measure(MEASUREMENTS)
    tpm.timeout = 1
    emulator.pause()
    with pytest.raises(TpmTimeout, match="did not answer tpm2_quote within 1 s"):
        tpm.quote(b"q" * 32)
    # Not asked twice per operation: the next one gives up at its first unanswered command.
    with pytest.raises(TpmTimeout, match="nor since an earlier timeout"):
        tpm.quote(b"q" * 32)
    emulator.resume()
    tpm.timeout = 30
    message, _, pcr = tpm.quote(b"q" * 32)
    assert parse_quote(message).extra_data == b"q" * 32
    assert pcr == pcr_after(MEASUREMENTS)
