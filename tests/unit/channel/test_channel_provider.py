"""Crypto providers: the default, the optional liboqs one, and the baseline nobody may select."""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from qorch.channel import provider as provider_module
from qorch.channel.errors import ProviderUnavailable
from qorch.channel.handshake import ClientHandshake, ServerHandshake
from qorch.channel.identity import Identity
from qorch.channel.provider import (
    ML_DSA_65,
    ML_KEM_768,
    MLDSA65_PUBLIC_KEY_SIZE,
    MLDSA65_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    CryptographyProvider,
    CryptoProvider,
    LiboqsProvider,
    get_provider,
)
from qorch.channel.suite import hybrid_suite

CONTEXT = b"qorch-test"


class _StandInSignature:
    """liboqs-python's `oqs.Signature` API (0.12+), computed with OpenSSL."""

    def __init__(self, algorithm: str, secret_key: bytes | None = None) -> None:
        assert algorithm == ML_DSA_65
        self._seed = secret_key

    def generate_keypair(self) -> bytes:
        key = mldsa.MLDSA65PrivateKey.generate()
        self._seed = key.private_bytes_raw()
        return key.public_key().public_bytes_raw()

    def export_secret_key(self) -> bytes:
        assert self._seed is not None
        return self._seed

    def sign_with_ctx_str(self, message: bytes, context: bytes) -> bytes:
        assert self._seed is not None
        return mldsa.MLDSA65PrivateKey.from_seed_bytes(self._seed).sign(message, context)

    def verify_with_ctx_str(
        self, message: bytes, signature: bytes, context: bytes, public_key: bytes
    ) -> bool:
        try:
            mldsa.MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message, context)
        except (InvalidSignature, ValueError):
            return False
        return True


class _StandInKeyEncapsulation:
    """liboqs-python's `oqs.KeyEncapsulation` API: note (ciphertext, secret) order."""

    def __init__(self, algorithm: str) -> None:
        assert algorithm == ML_KEM_768
        self._key: mlkem.MLKEM768PrivateKey | None = None

    def __enter__(self) -> _StandInKeyEncapsulation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.free()

    def generate_keypair(self) -> bytes:
        self._key = mlkem.MLKEM768PrivateKey.generate()
        return self._key.public_key().public_bytes_raw()

    def encap_secret(self, public_key: bytes) -> tuple[bytes, bytes]:
        secret, ciphertext = mlkem.MLKEM768PublicKey.from_public_bytes(public_key).encapsulate()
        return ciphertext, secret

    def decap_secret(self, ciphertext: bytes) -> bytes:
        assert self._key is not None
        return self._key.decapsulate(ciphertext)

    def free(self) -> None:
        pass


@pytest.fixture
def stand_in_oqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """Install a stand-in `oqs` module and pretend liboqs.so is present."""
    module: Any = types.ModuleType("oqs")
    module.__spec__ = importlib.machinery.ModuleSpec("oqs", None)
    module.Signature = _StandInSignature
    module.KeyEncapsulation = _StandInKeyEncapsulation
    module.get_enabled_sig_mechanisms = lambda: (ML_DSA_65,)
    module.get_enabled_kem_mechanisms = lambda: (ML_KEM_768,)
    monkeypatch.setitem(sys.modules, "oqs", module)
    libc = ctypes.util.find_library("c") or "libc.so.6"
    monkeypatch.setattr(provider_module, "_liboqs_library_candidates", lambda: [Path(libc)])
    yield module


def _liboqs_or_skip() -> LiboqsProvider:
    # Not pytest.importorskip("oqs"): importing oqs without liboqs starts a download and build.
    try:
        return LiboqsProvider()
    except ProviderUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["cryptography", "liboqs", "liboqs-adapter"])
def provider(request: pytest.FixtureRequest) -> CryptoProvider:
    if request.param == "cryptography":
        return CryptographyProvider()
    if request.param == "liboqs":
        return _liboqs_or_skip()
    request.getfixturevalue("stand_in_oqs")
    return LiboqsProvider()


def test_the_default_provider_is_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QORCH_CRYPTO_PROVIDER", raising=False)
    assert get_provider().name == "cryptography"
    assert get_provider(None).name == "cryptography"


def test_the_environment_selects_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QORCH_CRYPTO_PROVIDER", "Cryptography")
    assert get_provider().name == "cryptography"


@pytest.mark.parametrize("name", ["classical-benchmark", "classical", "ed25519", "none"])
def test_no_other_provider_can_be_selected(name: str) -> None:
    with pytest.raises(ProviderUnavailable, match="unknown crypto provider"):
        get_provider(name)


def test_liboqs_without_its_library_is_a_clear_error_not_a_build() -> None:
    try:
        LiboqsProvider()
    except ProviderUnavailable as exc:
        assert "liboqs" in str(exc)
    else:
        pytest.skip("liboqs is installed here")


def test_oqs_is_never_imported_when_the_liboqs_library_is_missing(
    stand_in_oqs: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing liboqs-python without liboqs.so would clone and compile liboqs."""
    monkeypatch.setattr(
        provider_module, "_liboqs_library_candidates", lambda: [Path("/nonexistent/liboqs.so")]
    )

    def forbidden(name: str) -> None:
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(importlib, "import_module", forbidden)
    with pytest.raises(ProviderUnavailable, match="shared library was not found"):
        LiboqsProvider()


def test_a_liboqs_build_without_ml_dsa_65_is_refused(stand_in_oqs: Any) -> None:
    stand_in_oqs.get_enabled_sig_mechanisms = lambda: ("Falcon-512",)
    with pytest.raises(ProviderUnavailable, match="ML-DSA-65"):
        LiboqsProvider()


def test_signatures_verify_and_bind_message_and_context(provider: CryptoProvider) -> None:
    key = provider.generate_signing_key()
    public = key.public_bytes()
    signature = key.sign(b"message", CONTEXT)
    assert len(public) == MLDSA65_PUBLIC_KEY_SIZE
    assert len(signature) == MLDSA65_SIGNATURE_SIZE
    assert provider.verify(public, signature, b"message", CONTEXT)
    assert not provider.verify(public, signature, b"messagE", CONTEXT)
    assert not provider.verify(public, signature, b"message", b"other context")
    other = provider.generate_signing_key().public_bytes()
    assert not provider.verify(other, signature, b"message", CONTEXT)


def test_verify_answers_false_for_malformed_input(provider: CryptoProvider) -> None:
    key = provider.generate_signing_key()
    signature = key.sign(b"m", CONTEXT)
    assert not provider.verify(key.public_bytes()[:-1], signature, b"m", CONTEXT)
    assert not provider.verify(key.public_bytes(), signature[:-1], b"m", CONTEXT)


def test_kem_encapsulation_agrees_on_a_secret(provider: CryptoProvider) -> None:
    private = provider.generate_kem_key()
    assert len(private.public_bytes()) == MLKEM768_PUBLIC_KEY_SIZE
    shared, ciphertext = provider.encapsulate(private.public_bytes())
    assert len(ciphertext) == MLKEM768_CIPHERTEXT_SIZE
    assert len(shared) == 32
    assert private.decapsulate(ciphertext) == shared


def test_private_keys_round_trip_through_pem(provider: CryptoProvider) -> None:
    key = provider.generate_signing_key()
    loaded = provider.load_signing_key(key.private_pem())
    assert loaded.public_bytes() == key.public_bytes()
    assert provider.verify(key.public_bytes(), loaded.sign(b"m", CONTEXT), b"m", CONTEXT)


def test_a_key_file_names_the_provider_that_can_load_it(stand_in_oqs: types.ModuleType) -> None:
    liboqs_pem = LiboqsProvider().generate_signing_key().private_pem()
    with pytest.raises(ValueError, match="liboqs"):
        CryptographyProvider().load_signing_key(liboqs_pem)
    seed_pem = CryptographyProvider().generate_signing_key().private_pem()
    with pytest.raises(ValueError, match="seed-form"):
        LiboqsProvider().load_signing_key(seed_pem)


def test_a_liboqs_node_and_an_openssl_operator_complete_a_handshake(
    stand_in_oqs: types.ModuleType,
) -> None:
    liboqs = LiboqsProvider()
    operator = Identity.generate(CryptographyProvider())
    node = Identity.generate(liboqs)
    client = ClientHandshake(operator, node.public_key, suite=hybrid_suite(CryptographyProvider()))
    server = ServerHandshake(node, [operator.public_key], suite=hybrid_suite(liboqs))
    server_hello, pending = server.respond(client.hello())
    finish, client_session = client.finish(server_hello)
    server_session = pending.complete(finish)
    assert server_session.open(client_session.seal(b"ping")) == b"ping"


def test_the_default_key_file_is_standard_pkcs8() -> None:
    pem = CryptographyProvider().generate_signing_key().private_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_liboqs_and_cryptography_interoperate() -> None:
    """Raw public keys, signatures and KEM ciphertexts cross between providers."""
    oqs_provider = _liboqs_or_skip()
    ossl_provider = CryptographyProvider()
    for signer, verifier in ((ossl_provider, oqs_provider), (oqs_provider, ossl_provider)):
        key = signer.generate_signing_key()
        signature = key.sign(b"spec", CONTEXT)
        assert verifier.verify(key.public_bytes(), signature, b"spec", CONTEXT)
        assert not verifier.verify(key.public_bytes(), signature, b"spec", b"other")
    for receiver, sender in ((ossl_provider, oqs_provider), (oqs_provider, ossl_provider)):
        private = receiver.generate_kem_key()
        shared, ciphertext = sender.encapsulate(private.public_bytes())
        assert private.decapsulate(ciphertext) == shared
