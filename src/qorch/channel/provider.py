"""Crypto providers: ML-DSA-65 signatures and ML-KEM-768 encapsulation.

`CryptographyProvider` (the default) uses the OpenSSL build shipped with
`cryptography`. `LiboqsProvider` uses liboqs-python where the liboqs C library
is installed. Select one with `get_provider(name)` or `QORCH_CRYPTO_PROVIDER`.

Public keys cross the provider boundary as raw FIPS 203/204 bytes, so keys and
signatures made by one provider verify with the other. Private keys stay inside
the provider that made them (see `SigningKey.private_pem`).

`ClassicalProvider` (Ed25519 + X25519) is the benchmark baseline only:
`get_provider` never returns it and the channel refuses its suite id.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519

from qorch.channel.errors import ProviderUnavailable

ML_DSA_65 = "ML-DSA-65"
ML_KEM_768 = "ML-KEM-768"
X25519 = "X25519"
ED25519 = "Ed25519"

MLDSA65_PUBLIC_KEY_SIZE = 1952
MLDSA65_SIGNATURE_SIZE = 3309
MLKEM768_PUBLIC_KEY_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088

PROVIDER_ENV = "QORCH_CRYPTO_PROVIDER"
DEFAULT_PROVIDER = "cryptography"


class SigningKey(Protocol):
    """A private signature key held by a provider."""

    @property
    def algorithm(self) -> str: ...

    def public_bytes(self) -> bytes: ...

    def sign(self, message: bytes, context: bytes) -> bytes: ...

    def private_pem(self) -> bytes:
        """The private key as PEM, in the provider's own encoding."""
        ...


class KemPrivateKey(Protocol):
    """An ephemeral decapsulation key."""

    def public_bytes(self) -> bytes: ...

    def decapsulate(self, ciphertext: bytes) -> bytes: ...


class SignatureScheme(Protocol):
    @property
    def signature_algorithm(self) -> str: ...

    @property
    def public_key_size(self) -> int: ...

    def generate_signing_key(self) -> SigningKey: ...

    def load_signing_key(self, pem: bytes) -> SigningKey: ...

    def check_public_key(self, public_key: bytes) -> None:
        """Raise ValueError unless `public_key` imports as a raw public key."""
        ...

    def verify(
        self, public_key: bytes, signature: bytes, message: bytes, context: bytes
    ) -> bool: ...


class Kem(Protocol):
    @property
    def kem_algorithm(self) -> str: ...

    @property
    def kem_public_key_size(self) -> int: ...

    @property
    def kem_ciphertext_size(self) -> int: ...

    def generate_kem_key(self) -> KemPrivateKey: ...

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        """Return (shared_secret, ciphertext) for the peer's raw public key."""
        ...


class CryptoProvider(SignatureScheme, Kem, Protocol):
    @property
    def name(self) -> str: ...


# --- cryptography (OpenSSL) -------------------------------------------------------------------


class _CryptographyMLDSAKey:
    algorithm = ML_DSA_65

    def __init__(self, key: mldsa.MLDSA65PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()

    def public_bytes(self) -> bytes:
        return self._public

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self._key.sign(message, context)

    def private_pem(self) -> bytes:
        # PKCS#8 seed form (RFC 9881): standard, 32-byte seed, readable by `openssl pkey`.
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return "<ML-DSA-65 signing key>"


class _CryptographyMLKEMKey:
    def __init__(self) -> None:
        self._key = mlkem.MLKEM768PrivateKey.generate()

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._key.decapsulate(ciphertext)


class CryptographyProvider:
    """ML-DSA-65 and ML-KEM-768 from `cryptography` (its OpenSSL build)."""

    name = "cryptography"
    signature_algorithm = ML_DSA_65
    public_key_size = MLDSA65_PUBLIC_KEY_SIZE
    kem_algorithm = ML_KEM_768
    kem_public_key_size = MLKEM768_PUBLIC_KEY_SIZE
    kem_ciphertext_size = MLKEM768_CIPHERTEXT_SIZE

    def generate_signing_key(self) -> SigningKey:
        return _CryptographyMLDSAKey(mldsa.MLDSA65PrivateKey.generate())

    def load_signing_key(self, pem: bytes) -> SigningKey:
        if _LIBOQS_PEM_LABEL in pem:
            raise ValueError(
                "this is a liboqs-format ML-DSA-65 key; load it with QORCH_CRYPTO_PROVIDER=liboqs"
            )
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError as exc:  # encrypted: keys are kept unencrypted, in Secrets
            raise ValueError(f"an encrypted private key: {exc}") from None
        except ValueError:  # the library's words name neither the file nor what it wants
            raise ValueError(
                "not a PEM private key: give PREFIX.key as `qorch keygen` writes it"
                " (PREFIX.pub is the public half)"
            ) from None
        if not isinstance(key, mldsa.MLDSA65PrivateKey):
            raise ValueError(f"expected an ML-DSA-65 private key, found {type(key).__name__}")
        return _CryptographyMLDSAKey(key)

    def check_public_key(self, public_key: bytes) -> None:
        mldsa.MLDSA65PublicKey.from_public_bytes(public_key)

    def verify(self, public_key: bytes, signature: bytes, message: bytes, context: bytes) -> bool:
        try:
            mldsa.MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message, context)
        except (InvalidSignature, ValueError):
            return False
        return True

    def generate_kem_key(self) -> KemPrivateKey:
        return _CryptographyMLKEMKey()

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        shared_secret, ciphertext = mlkem.MLKEM768PublicKey.from_public_bytes(
            public_key
        ).encapsulate()
        return shared_secret, ciphertext


# --- liboqs -----------------------------------------------------------------------------------

# liboqs exports the expanded FIPS 204 secret key, not the seed, and liboqs-python cannot derive
# a key from a seed, so its private keys get their own PEM label: base64(secret key || public).
_LIBOQS_PEM_LABEL = b"QORCH ML-DSA-65 LIBOQS PRIVATE KEY"


def _liboqs_library_candidates() -> list[Path]:
    """Where liboqs-python itself looks for liboqs.so (see oqs/oqs.py `_load_liboqs`)."""
    candidates: list[Path] = []
    found = ctypes.util.find_library("oqs")
    if found:
        candidates.append(Path(found))
    install_dir = Path(os.environ.get("OQS_INSTALL_PATH", Path.home() / "_oqs"))
    for libdir in ("lib", "lib64"):
        for name in ("liboqs.so", "liboqs.dylib"):
            candidates.append(install_dir / libdir / name)
    return candidates


def _import_oqs() -> Any:
    """Import liboqs-python without letting it download and build liboqs.

    `import oqs` clones and compiles liboqs when the shared library is missing
    (then exits the process if that fails), so locate the library first.
    """
    if importlib.util.find_spec("oqs") is None:
        raise ProviderUnavailable(
            "liboqs provider: liboqs-python is not installed (pip install 'qorch[liboqs]')"
        )
    for candidate in _liboqs_library_candidates():
        try:
            ctypes.CDLL(str(candidate))
        except OSError:
            continue
        break
    else:
        raise ProviderUnavailable(
            "liboqs provider: the liboqs shared library was not found; install liboqs and "
            "set OQS_INSTALL_PATH or LD_LIBRARY_PATH (qorch does not let liboqs-python "
            "build it at import time)"
        )
    try:
        return importlib.import_module("oqs")
    except (Exception, SystemExit) as exc:
        raise ProviderUnavailable(f"liboqs provider: import oqs failed ({exc})") from None


class _LiboqsMLDSAKey:
    algorithm = ML_DSA_65

    def __init__(self, oqs: Any, secret_key: bytes, public_key: bytes) -> None:
        self._signer = oqs.Signature(ML_DSA_65, secret_key)
        self._secret = secret_key
        self._public = public_key

    def public_bytes(self) -> bytes:
        return self._public

    def sign(self, message: bytes, context: bytes) -> bytes:
        return bytes(self._signer.sign_with_ctx_str(message, context))

    def private_pem(self) -> bytes:
        body = base64.encodebytes(self._secret + self._public)
        label = _LIBOQS_PEM_LABEL
        return b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"

    def __repr__(self) -> str:
        return "<ML-DSA-65 signing key (liboqs)>"


class _LiboqsMLKEMKey:
    def __init__(self, oqs: Any) -> None:
        self._kem = oqs.KeyEncapsulation(ML_KEM_768)
        self._public = bytes(self._kem.generate_keypair())

    def public_bytes(self) -> bytes:
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) != MLKEM768_CIPHERTEXT_SIZE:
            raise ValueError("invalid ML-KEM-768 ciphertext length")
        return bytes(self._kem.decap_secret(ciphertext))

    def __del__(self) -> None:
        free = getattr(getattr(self, "_kem", None), "free", None)
        if free is not None:
            free()  # cleanses the secret key in native memory


class LiboqsProvider:
    """ML-DSA-65 and ML-KEM-768 from liboqs through liboqs-python."""

    name = "liboqs"
    signature_algorithm = ML_DSA_65
    public_key_size = MLDSA65_PUBLIC_KEY_SIZE
    kem_algorithm = ML_KEM_768
    kem_public_key_size = MLKEM768_PUBLIC_KEY_SIZE
    kem_ciphertext_size = MLKEM768_CIPHERTEXT_SIZE

    def __init__(self) -> None:
        oqs = _import_oqs()
        if ML_DSA_65 not in oqs.get_enabled_sig_mechanisms():
            raise ProviderUnavailable("liboqs provider: this liboqs build lacks ML-DSA-65")
        if ML_KEM_768 not in oqs.get_enabled_kem_mechanisms():
            raise ProviderUnavailable("liboqs provider: this liboqs build lacks ML-KEM-768")
        if not hasattr(oqs.Signature, "sign_with_ctx_str"):
            raise ProviderUnavailable("liboqs provider: liboqs-python >= 0.12 is required")
        self._oqs = oqs
        self._verifier = oqs.Signature(ML_DSA_65)

    def generate_signing_key(self) -> SigningKey:
        signer = self._oqs.Signature(ML_DSA_65)
        public = bytes(signer.generate_keypair())
        return _LiboqsMLDSAKey(self._oqs, bytes(signer.export_secret_key()), public)

    def load_signing_key(self, pem: bytes) -> SigningKey:
        begin = b"-----BEGIN " + _LIBOQS_PEM_LABEL + b"-----"
        end = b"-----END " + _LIBOQS_PEM_LABEL + b"-----"
        text = pem.strip()
        if not (text.startswith(begin) and text.endswith(end)):
            raise ValueError(
                "liboqs cannot load a seed-form (PKCS#8) ML-DSA-65 key; "
                "use the cryptography provider for keys it generated"
            )
        raw = base64.b64decode(text[len(begin) : -len(end)])
        public = raw[-MLDSA65_PUBLIC_KEY_SIZE:]
        return _LiboqsMLDSAKey(self._oqs, raw[:-MLDSA65_PUBLIC_KEY_SIZE], public)

    def check_public_key(self, public_key: bytes) -> None:
        if len(public_key) != MLDSA65_PUBLIC_KEY_SIZE:
            raise ValueError(f"an ML-DSA-65 public key is {MLDSA65_PUBLIC_KEY_SIZE} bytes long")

    def verify(self, public_key: bytes, signature: bytes, message: bytes, context: bytes) -> bool:
        if len(public_key) != MLDSA65_PUBLIC_KEY_SIZE:
            return False  # liboqs would zero-pad a short key rather than reject it
        return bool(self._verifier.verify_with_ctx_str(message, signature, context, public_key))

    def generate_kem_key(self) -> KemPrivateKey:
        return _LiboqsMLKEMKey(self._oqs)

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        if len(public_key) != MLKEM768_PUBLIC_KEY_SIZE:
            raise ValueError("invalid ML-KEM-768 public key length")
        with self._oqs.KeyEncapsulation(ML_KEM_768) as kem:
            ciphertext, shared_secret = kem.encap_secret(public_key)
        return bytes(shared_secret), bytes(ciphertext)


# --- X25519 and the classical benchmark baseline ----------------------------------------------


class _X25519Key:
    def __init__(self) -> None:
        self._key = x25519.X25519PrivateKey.generate()

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._key.exchange(x25519.X25519PublicKey.from_public_bytes(ciphertext))


class X25519Kem:
    """X25519 as a KEM: the "ciphertext" is the encapsulator's ephemeral public key.

    OpenSSL refuses an all-zero shared secret (low-order peer point) with ValueError.
    """

    kem_algorithm = X25519
    kem_public_key_size = 32
    kem_ciphertext_size = 32

    def generate_kem_key(self) -> KemPrivateKey:
        return _X25519Key()

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        ephemeral = x25519.X25519PrivateKey.generate()
        shared = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(public_key))
        return shared, ephemeral.public_key().public_bytes_raw()


class _Ed25519Key:
    algorithm = ED25519

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self._key.sign(_ed25519_input(message, context))

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _ed25519_input(message: bytes, context: bytes) -> bytes:
    # Pure Ed25519 has no context string; prefix it the way ML-DSA's M' does.
    return bytes([0, len(context)]) + context + message


class ClassicalProvider(X25519Kem):
    """Ed25519 + X25519: the benchmark baseline. Never selectable, never negotiable."""

    name = "classical-benchmark"
    signature_algorithm = ED25519
    public_key_size = 32

    def generate_signing_key(self) -> SigningKey:
        return _Ed25519Key(ed25519.Ed25519PrivateKey.generate())

    def load_signing_key(self, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("expected an Ed25519 private key")
        return _Ed25519Key(key)

    def check_public_key(self, public_key: bytes) -> None:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key)

    def verify(self, public_key: bytes, signature: bytes, message: bytes, context: bytes) -> bool:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(
                signature, _ed25519_input(message, context)
            )
        except (InvalidSignature, ValueError):
            return False
        return True


# --- selection --------------------------------------------------------------------------------

_PROVIDERS: dict[str, Callable[[], CryptoProvider]] = {
    "cryptography": CryptographyProvider,
    "liboqs": LiboqsProvider,
}
_instances: dict[str, CryptoProvider] = {}


def available_providers() -> list[str]:
    return sorted(_PROVIDERS)


def get_provider(name: str | None = None) -> CryptoProvider:
    """Return the named provider, else `$QORCH_CRYPTO_PROVIDER`, else `cryptography`.

    Raises ProviderUnavailable for an unknown name or a provider that cannot load.
    """
    chosen = (name or os.environ.get(PROVIDER_ENV) or DEFAULT_PROVIDER).strip().lower()
    factory = _PROVIDERS.get(chosen)
    if factory is None:
        raise ProviderUnavailable(
            f"unknown crypto provider {chosen!r}; choose one of {', '.join(available_providers())}"
        )
    if chosen not in _instances:
        _instances[chosen] = factory()
    return _instances[chosen]
