"""Known-answer tests of ML-KEM-768 and ML-DSA-65 on qorch's default provider.

Vectors (kat/README.md names their sources): `nist_acvp.json` holds NIST ACVP cases,
`pqca_kat.json` the reference-implementation KATs that also give a seed and a ciphertext for
the same ML-KEM key. The same vectors run on kyber-py and dilithium-py, the independent side
of test_pqc_interop.py, so the two sides are checked against the standard, not just each other.

`cryptography` (the default provider's library) cannot run these parts of the KATs:
- ML-KEM encapsulation with the vector's randomness m: OpenSSL draws m itself. The provider's
  encapsulation to the vector's key is checked by decapsulating it with the vector's key.
- ML-DSA signing to the vector's signature: it signs hedged, with fresh randomness each time
  and no deterministic mode, so the vector's signature is verified, not reproduced.
- The expanded ML-KEM decapsulation key and ML-DSA secret key: it exports the seed form only.
  The seed -> public key mapping is compared byte for byte, and the z inside the decapsulation
  key through implicit rejection; the expanded keys' SHA-256 is checked on kyber-py and
  dilithium-py.
- The provider generates ML-KEM keys itself and loads none; a seed reaches it by standing in
  for `MLKEM768PrivateKey.generate` (see `kem_keys_from`).
NIST's ML-DSA sigVer vectors of ACVP v1.1.0.35 are for the internal interface (no context), which
the provider does not expose: those go to `cryptography`'s verify_mu with mu computed here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from qorch.channel.identity import Identity
from qorch.channel.provider import MLDSA65_SIGNATURE_SIZE, CryptographyProvider, CryptoProvider
from qorch.channel.signing import JOB_SIGNATURE_CONTEXT

from .pqc_reference import (
    PROVIDER_NAMES,
    REFERENCE_ML_DSA_65,
    REFERENCE_ML_KEM_768,
    provider_or_skip,
    seed_pkcs8_pem,
)

KAT_DIR = Path(__file__).parent / "kat"
ACVP: dict[str, Any] = json.loads((KAT_DIR / "nist_acvp.json").read_text())
PQCA: dict[str, Any] = json.loads((KAT_DIR / "pqca_kat.json").read_text())


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


def _implicit_rejection(z: bytes, ciphertext: bytes) -> bytes:
    """FIPS 203's K-bar = J(z || c) = SHAKE256(z || c, 32 bytes)."""
    return hashlib.shake_256(z + ciphertext).digest(32)


@pytest.fixture
def kem_keys_from(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], None]:
    """Make the provider's next ML-KEM keys the one derived from a 64-byte seed d || z."""

    def install(seed: bytes) -> None:
        key = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        monkeypatch.setattr(mlkem.MLKEM768PrivateKey, "generate", staticmethod(lambda: key))

    return install


@pytest.fixture(params=PROVIDER_NAMES)
def provider(request: pytest.FixtureRequest) -> CryptoProvider:
    return provider_or_skip(request.param)


# --- ML-KEM-768 -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACVP["ml_kem_768_keygen"], ids=lambda c: f"tcId{c['tcId']}")
def test_ml_kem_768_keygen_from_seed_nist_acvp(
    case: dict[str, Any], kem_keys_from: Callable[[bytes], None]
) -> None:
    d, z = _hex(case["d"]), _hex(case["z"])
    kem_keys_from(d + z)
    provider = CryptographyProvider()
    key = provider.generate_kem_key()
    assert key.public_bytes() == _hex(case["ek"])
    # The decapsulation key holds the vector's z: a changed ciphertext decapsulates to J(z || c).
    shared, ciphertext = provider.encapsulate(key.public_bytes())
    assert key.decapsulate(ciphertext) == shared
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert key.decapsulate(tampered) == _implicit_rejection(z, tampered)

    ek, dk = REFERENCE_ML_KEM_768.key_derive(d + z)
    assert ek == _hex(case["ek"])
    assert hashlib.sha256(dk).hexdigest() == case["dk_sha256"]


def test_ml_kem_768_decapsulation_kat(kem_keys_from: Callable[[bytes], None]) -> None:
    case = PQCA["ml_kem_768"]
    d, z = _hex(case["d"]), _hex(case["z"])
    kem_keys_from(d + z)
    key = CryptographyProvider().generate_kem_key()
    assert key.public_bytes() == _hex(case["pk"])
    assert key.decapsulate(_hex(case["ct"])) == _hex(case["ss"])
    # The vector's invalid ciphertext: implicit rejection, to the vector's secret.
    assert key.decapsulate(_hex(case["ct_n"])) == _hex(case["ss_n"])
    assert _hex(case["ss_n"]) == _implicit_rejection(z, _hex(case["ct_n"]))

    ek, dk = REFERENCE_ML_KEM_768.key_derive(d + z)
    assert ek == _hex(case["pk"])
    assert hashlib.sha256(dk).hexdigest() == case["sk_sha256"]
    assert REFERENCE_ML_KEM_768.decaps(dk, _hex(case["ct_n"])) == _hex(case["ss_n"])
    # Only the pure-Python side can take the encapsulation randomness m.
    assert REFERENCE_ML_KEM_768._encaps_internal(ek, _hex(case["msg"])) == (
        _hex(case["ss"]),
        _hex(case["ct"]),
    )


def test_the_provider_encapsulates_to_the_kat_key(provider: CryptoProvider) -> None:
    case = PQCA["ml_kem_768"]
    _, dk = REFERENCE_ML_KEM_768.key_derive(_hex(case["d"]) + _hex(case["z"]))
    assert hashlib.sha256(dk).hexdigest() == case["sk_sha256"]
    shared, ciphertext = provider.encapsulate(_hex(case["pk"]))
    assert REFERENCE_ML_KEM_768.decaps(dk, ciphertext) == shared


# --- ML-DSA-65 --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACVP["ml_dsa_65_keygen"], ids=lambda c: f"tcId{c['tcId']}")
def test_ml_dsa_65_keygen_from_seed_nist_acvp(case: dict[str, Any]) -> None:
    seed = _hex(case["seed"])
    # Through the key file qorch reads (`qorch keygen` writes this format).
    identity = Identity.from_pem(seed_pkcs8_pem(seed), CryptographyProvider())
    assert identity.public_key == _hex(case["pk"])

    pk, sk = REFERENCE_ML_DSA_65.key_derive(seed)
    assert pk == _hex(case["pk"])
    assert hashlib.sha256(sk).hexdigest() == case["sk_sha256"]


def test_ml_dsa_65_signature_kat_with_context(provider: CryptoProvider) -> None:
    """Deterministic pure ML-DSA-65 with a context string: verified by the provider."""
    case = PQCA["ml_dsa_65_det_pure"]
    pk, message, context = _hex(case["pk"]), _hex(case["msg"]), _hex(case["ctx"])
    signature = _hex(case["signature"])
    assert len(signature) == MLDSA65_SIGNATURE_SIZE
    assert provider.verify(pk, signature, message, context)
    assert not provider.verify(pk, signature, message, b"")
    assert not provider.verify(pk, signature, message, JOB_SIGNATURE_CONTEXT)
    assert not provider.verify(pk, signature, message + b"\x00", context)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not provider.verify(pk, tampered, message, context)


def test_ml_dsa_65_signature_kat_keygen_and_signing() -> None:
    case = PQCA["ml_dsa_65_det_pure"]
    xi, message, context = _hex(case["xi"]), _hex(case["msg"]), _hex(case["ctx"])
    key = CryptographyProvider().load_signing_key(seed_pkcs8_pem(xi))
    assert key.public_bytes() == _hex(case["pk"])
    # Hedged, so not the vector's bytes, but a valid signature under the vector's key.
    fresh = key.sign(message, context)
    assert fresh != _hex(case["signature"])
    assert REFERENCE_ML_DSA_65.verify(_hex(case["pk"]), message, fresh, context)

    _, sk = REFERENCE_ML_DSA_65.key_derive(xi)
    assert hashlib.sha256(sk).hexdigest() == case["sk_sha256"]
    assert REFERENCE_ML_DSA_65.sign(sk, message, context, deterministic=True) == _hex(
        case["signature"]
    )


SIGVER = ACVP["ml_dsa_65_sigver_internal"]


@pytest.mark.parametrize(
    "case", SIGVER["tests"], ids=lambda c: f"tcId{c['tcId']}-{c['reason'].replace(' ', '-')}"
)
def test_ml_dsa_65_sigver_nist_acvp(case: dict[str, Any]) -> None:
    """NIST's accept and reject cases, on the verification core of both implementations."""
    pk, message, signature = _hex(SIGVER["pk"]), _hex(case["message"]), _hex(case["signature"])
    # FIPS 204 Algorithm 8: mu = H(H(pk, 64) || M', 64) for the internal message M'.
    mu = hashlib.shake_256(hashlib.shake_256(pk).digest(64) + message).digest(64)
    try:
        mldsa.MLDSA65PublicKey.from_public_bytes(pk).verify_mu(signature, mu)
    except InvalidSignature:
        accepted = False
    else:
        accepted = True
    assert accepted is case["testPassed"]
    assert REFERENCE_ML_DSA_65._verify_internal(pk, message, signature) is case["testPassed"]
