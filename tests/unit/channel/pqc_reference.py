"""The independent side of the PQC tests: kyber-py and dilithium-py behind qorch's provider
interface, and the seed-form key file of the default provider, encoded by hand."""

from __future__ import annotations

import base64
import hashlib

import pytest
from dilithium_py.ml_dsa import ML_DSA_65 as REFERENCE_ML_DSA_65
from kyber_py.ml_kem import ML_KEM_768 as REFERENCE_ML_KEM_768

from qorch.channel.errors import ProviderUnavailable
from qorch.channel.provider import (
    ML_DSA_65,
    ML_KEM_768,
    MLDSA65_PUBLIC_KEY_SIZE,
    MLDSA65_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    CryptographyProvider,
    CryptoProvider,
    KemPrivateKey,
    LiboqsProvider,
    SigningKey,
)

__all__ = [
    "PROVIDER_NAMES",
    "REFERENCE_ML_DSA_65",
    "REFERENCE_ML_KEM_768",
    "ReferenceKemKey",
    "ReferenceProvider",
    "ReferenceSigningKey",
    "provider_or_skip",
    "seed_from_pkcs8_pem",
    "seed_pkcs8_pem",
]

PROVIDER_NAMES = ["cryptography", "liboqs"]


def provider_or_skip(name: str) -> CryptoProvider:
    if name == "cryptography":
        return CryptographyProvider()
    # Not importorskip("oqs"): importing oqs without liboqs starts a download and build.
    try:
        return LiboqsProvider()
    except ProviderUnavailable as exc:
        pytest.skip(f"{exc}; the liboqs side of this test needs it")


# RFC 9881 PKCS#8 for an ML-DSA-65 private key in seed form: this prefix, then the 32-byte seed.
_SEED_PKCS8_PREFIX = bytes.fromhex("3034020100300b060960864801650304031204228020")


def seed_pkcs8_pem(seed: bytes) -> bytes:
    """The default provider's key file for an ML-DSA-65 seed, encoded by hand."""
    body = base64.encodebytes(_SEED_PKCS8_PREFIX + seed)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


def seed_from_pkcs8_pem(pem: bytes) -> bytes:
    lines = pem.strip().splitlines()
    assert lines[0] == b"-----BEGIN PRIVATE KEY-----"
    assert lines[-1] == b"-----END PRIVATE KEY-----"
    der = base64.b64decode(b"".join(lines[1:-1]))
    assert der.startswith(_SEED_PKCS8_PREFIX), "not an RFC 9881 seed-form ML-DSA-65 key"
    seed = der[len(_SEED_PKCS8_PREFIX) :]
    assert len(seed) == 32
    return seed


class ReferenceSigningKey:
    """An ML-DSA-65 key held by dilithium-py (deterministic signing)."""

    algorithm = ML_DSA_65

    def __init__(self, public: bytes, secret: bytes, seed: bytes | None = None) -> None:
        self.public, self.secret, self.seed = public, secret, seed

    @classmethod
    def from_seed(cls, seed: bytes) -> ReferenceSigningKey:
        public, secret = REFERENCE_ML_DSA_65.key_derive(seed)
        return cls(public, secret, seed)

    def public_bytes(self) -> bytes:
        return self.public

    def sign(self, message: bytes, context: bytes) -> bytes:
        signature: bytes = REFERENCE_ML_DSA_65.sign(
            self.secret, message, context, deterministic=True
        )
        return signature

    def private_pem(self) -> bytes:
        assert self.seed is not None, "an expanded key has no seed-form key file"
        return seed_pkcs8_pem(self.seed)


class ReferenceKemKey:
    """An ML-KEM-768 decapsulation key held by kyber-py."""

    def __init__(self, seed: bytes) -> None:
        self.public, self.secret = REFERENCE_ML_KEM_768.key_derive(seed)

    @property
    def implicit_rejection_seed(self) -> bytes:
        return self.secret[-32:]  # z, the last field of the FIPS 203 decapsulation key

    def public_bytes(self) -> bytes:
        return self.public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        shared: bytes = REFERENCE_ML_KEM_768.decaps(self.secret, ciphertext)
        return shared


class ReferenceProvider:
    """qorch's CryptoProvider interface over kyber-py and dilithium-py."""

    name = "kyber-py+dilithium-py"
    signature_algorithm = ML_DSA_65
    public_key_size = MLDSA65_PUBLIC_KEY_SIZE
    kem_algorithm = ML_KEM_768
    kem_public_key_size = MLKEM768_PUBLIC_KEY_SIZE
    kem_ciphertext_size = MLKEM768_CIPHERTEXT_SIZE

    def __init__(self, label: str) -> None:
        self._label = label
        self._keys = 0

    def _next_seed(self, kind: str, size: int) -> bytes:
        self._keys += 1
        return hashlib.shake_256(f"{self._label}/{kind}/{self._keys}".encode()).digest(size)

    def generate_signing_key(self) -> SigningKey:
        return ReferenceSigningKey.from_seed(self._next_seed("ml-dsa", 32))

    def load_signing_key(self, pem: bytes) -> SigningKey:
        return ReferenceSigningKey.from_seed(seed_from_pkcs8_pem(pem))

    def check_public_key(self, public_key: bytes) -> None:
        if len(public_key) != MLDSA65_PUBLIC_KEY_SIZE:
            raise ValueError(f"an ML-DSA-65 public key is {MLDSA65_PUBLIC_KEY_SIZE} bytes long")

    def verify(self, public_key: bytes, signature: bytes, message: bytes, context: bytes) -> bool:
        if len(public_key) != MLDSA65_PUBLIC_KEY_SIZE:
            return False
        if len(signature) != MLDSA65_SIGNATURE_SIZE:
            return False
        return bool(REFERENCE_ML_DSA_65.verify(public_key, message, signature, context))

    def generate_kem_key(self) -> KemPrivateKey:
        return ReferenceKemKey(self._next_seed("ml-kem", 64))

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        shared, ciphertext = REFERENCE_ML_KEM_768.encaps(public_key)
        return shared, ciphertext
