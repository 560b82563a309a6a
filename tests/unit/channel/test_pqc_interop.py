"""qorch's PQC providers against independent pure-Python FIPS 203/204 implementations.

kyber-py (ML-KEM) and dilithium-py (ML-DSA) share no code with OpenSSL or liboqs. Keys,
ciphertexts and signatures cross in both directions, with the context strings qorch really
signs under, over the very bytes qorch signs (job specs, handshake transcripts). The liboqs
provider runs the same tests where liboqs is installed, and is skipped, saying why, elsewhere.

The pure-Python side derives its keys from fixed seeds and signs deterministically, so a
failure there reproduces; its encapsulations, and everything the providers do, draw their
randomness from the OS, as in production.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qorch.channel import provider as provider_module
from qorch.channel.handshake import (
    CLIENT_SIGNATURE_CONTEXT,
    SERVER_SIGNATURE_CONTEXT,
    ClientHandshake,
    ServerHandshake,
)
from qorch.channel.identity import Identity
from qorch.channel.provider import (
    MLDSA65_PUBLIC_KEY_SIZE,
    MLDSA65_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    CryptoProvider,
    SigningKey,
)
from qorch.channel.signing import (
    INVALID_SIGNATURE,
    JOB_SIGNATURE_CONTEXT,
    SignatureError,
    TrustedKey,
    canonical_job,
    sign_job,
    verify_job,
)
from qorch.channel.suite import hybrid_suite

from .pqc_reference import (
    PROVIDER_NAMES,
    REFERENCE_ML_DSA_65,
    ReferenceKemKey,
    ReferenceProvider,
    ReferenceSigningKey,
    provider_or_skip,
    seed_from_pkcs8_pem,
)

# Every context string qorch signs under (signing.py, handshake.py).
QORCH_CONTEXTS = [JOB_SIGNATURE_CONTEXT, SERVER_SIGNATURE_CONTEXT, CLIENT_SIGNATURE_CONTEXT]

_SPEC = {
    "circuit": {"format": "openqasm3", "source": "OPENQASM 3.0; qubit[2] q; h q[0];"},
    "shots": 1024,
    "minFidelity": 0.9,
    "nodes": ["qpu-a", "qpu-b"],
}


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _flip_bit(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 0x01
    return bytes(flipped)


# --- qorch's providers ------------------------------------------------------------------------


@pytest.fixture(params=PROVIDER_NAMES)
def provider(request: pytest.FixtureRequest) -> CryptoProvider:
    return provider_or_skip(request.param)


@pytest.fixture
def reference(request: pytest.FixtureRequest) -> ReferenceProvider:
    return ReferenceProvider(request.node.name)


def _reference_key_of(provider: CryptoProvider, key: SigningKey) -> ReferenceSigningKey:
    """Load a provider's private key file into dilithium-py."""
    pem = key.private_pem()
    if provider.name == "cryptography":
        return ReferenceSigningKey.from_seed(seed_from_pkcs8_pem(pem))
    # liboqs key files hold the expanded FIPS 204 secret key, then the public key.
    body = b"".join(pem.strip().splitlines()[1:-1])
    raw = base64.b64decode(body)
    secret, public = raw[:-MLDSA65_PUBLIC_KEY_SIZE], raw[-MLDSA65_PUBLIC_KEY_SIZE:]
    assert REFERENCE_ML_DSA_65.pk_from_sk(secret) == public
    return ReferenceSigningKey(public, secret)


def _provider_key_file(provider: CryptoProvider, key: ReferenceSigningKey) -> bytes:
    """The key file `provider` reads, for a key dilithium-py made."""
    if provider.name == "cryptography":
        return key.private_pem()
    label = provider_module._LIBOQS_PEM_LABEL
    body = base64.encodebytes(key.secret + key.public)
    return b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"


# --- ML-DSA-65 --------------------------------------------------------------------------------


def _assert_verifies_only_as_signed(
    verifier: CryptoProvider | ReferenceProvider,
    public_key: bytes,
    signature: bytes,
    message: bytes,
    context: bytes,
) -> None:
    assert verifier.verify(public_key, signature, message, context)
    for other in [*(c for c in QORCH_CONTEXTS if c != context), b""]:
        assert not verifier.verify(public_key, signature, message, other)
    assert not verifier.verify(public_key, signature, message + b".", context)
    for index in (0, MLDSA65_SIGNATURE_SIZE // 2, MLDSA65_SIGNATURE_SIZE - 1):
        assert not verifier.verify(public_key, _flip_bit(signature, index), message, context)


@pytest.mark.parametrize("context", QORCH_CONTEXTS, ids=lambda c: c.decode())
def test_provider_signatures_verify_with_dilithium_py(
    provider: CryptoProvider, reference: ReferenceProvider, context: bytes
) -> None:
    """It verifies under its own context only, for its message only, with no bit changed."""
    key = provider.generate_signing_key()
    message = b"transcript hash or canonical spec " + context
    signature = key.sign(message, context)
    _assert_verifies_only_as_signed(reference, key.public_bytes(), signature, message, context)


@pytest.mark.parametrize("context", QORCH_CONTEXTS, ids=lambda c: c.decode())
def test_dilithium_py_signatures_verify_with_the_provider(
    provider: CryptoProvider, reference: ReferenceProvider, context: bytes
) -> None:
    key = reference.generate_signing_key()
    message = b"transcript hash or canonical spec " + context
    signature = key.sign(message, context)
    _assert_verifies_only_as_signed(provider, key.public_bytes(), signature, message, context)


def test_private_key_files_carry_the_same_key_across(
    provider: CryptoProvider, reference: ReferenceProvider
) -> None:
    """A provider's key file, read by dilithium-py, is the same key; and back."""
    made_by_provider = provider.generate_signing_key()
    read_by_reference = _reference_key_of(provider, made_by_provider)
    assert read_by_reference.public_bytes() == made_by_provider.public_bytes()
    signature = read_by_reference.sign(b"m", JOB_SIGNATURE_CONTEXT)
    assert provider.verify(made_by_provider.public_bytes(), signature, b"m", JOB_SIGNATURE_CONTEXT)

    made_by_reference = ReferenceSigningKey.from_seed(_seed("a key file made by dilithium-py"))
    loaded = provider.load_signing_key(_provider_key_file(provider, made_by_reference))
    assert loaded.public_bytes() == made_by_reference.public_bytes()
    signature = loaded.sign(b"m", JOB_SIGNATURE_CONTEXT)
    assert reference.verify(made_by_reference.public, signature, b"m", JOB_SIGNATURE_CONTEXT)


def test_job_signatures_cross_both_ways(
    provider: CryptoProvider, reference: ReferenceProvider
) -> None:
    """`qorch sign` with one implementation, `verify_job` with the other."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    place = {"namespace": "team-a", "name": "bell"}
    for signer, verifier in ((provider, reference), (reference, provider)):
        identity = Identity(signer.generate_signing_key())
        trusted = [TrustedKey(identity.public_key)]
        signature = sign_job(_SPEC, identity=identity, expires_at=expires, **place)
        verified = verify_job(
            _SPEC, signature=signature, trusted_keys=trusted, scheme=verifier, **place
        )
        assert verified.fingerprint == identity.fingerprint
        nonce = signature.split(":")[4]
        message = canonical_job(_SPEC, "team-a", "bell", nonce, expires)
        raw = base64.b64decode(signature.rsplit(":", 1)[1])
        assert verifier.verify(identity.public_key, raw, message, JOB_SIGNATURE_CONTEXT)
        changed = {**_SPEC, "shots": 1025}
        with pytest.raises(SignatureError) as refused:
            verify_job(changed, signature=signature, trusted_keys=trusted, scheme=verifier, **place)
        assert refused.value.reason == INVALID_SIGNATURE
        # A job signature is no handshake signature, though the bytes are the same.
        assert not verifier.verify(identity.public_key, raw, message, CLIENT_SIGNATURE_CONTEXT)


# --- ML-KEM-768 -------------------------------------------------------------------------------


def test_kyber_py_encapsulates_to_a_provider_key(
    provider: CryptoProvider, reference: ReferenceProvider
) -> None:
    private = provider.generate_kem_key()
    shared, ciphertext = reference.encapsulate(private.public_bytes())
    assert len(ciphertext) == MLKEM768_CIPHERTEXT_SIZE
    assert private.decapsulate(ciphertext) == shared


def test_the_provider_encapsulates_to_a_kyber_py_key(
    provider: CryptoProvider, reference: ReferenceProvider
) -> None:
    private = reference.generate_kem_key()
    shared, ciphertext = provider.encapsulate(private.public_bytes())
    assert len(shared) == 32
    assert private.decapsulate(ciphertext) == shared


@pytest.mark.parametrize("index", [0, MLKEM768_CIPHERTEXT_SIZE - 1])
def test_a_tampered_ciphertext_is_implicitly_rejected_on_both_sides(
    provider: CryptoProvider, reference: ReferenceProvider, index: int
) -> None:
    """FIPS 203 decapsulation never fails: a changed ciphertext yields an unrelated secret."""
    # kyber-py decapsulates a tampered provider ciphertext to J(z || c), per FIPS 203.
    reference_key = reference.generate_kem_key()
    assert isinstance(reference_key, ReferenceKemKey)
    shared, ciphertext = provider.encapsulate(reference_key.public_bytes())
    tampered = _flip_bit(ciphertext, index)
    rejected = reference_key.decapsulate(tampered)
    assert rejected != shared
    z = reference_key.implicit_rejection_seed
    assert rejected == hashlib.shake_256(z + tampered).digest(32)

    # The provider decapsulates a tampered kyber-py ciphertext to a different secret,
    # the same one each time (its z is secret, so the value itself is checked in the KATs).
    provider_key = provider.generate_kem_key()
    shared, ciphertext = reference.encapsulate(provider_key.public_bytes())
    tampered = _flip_bit(ciphertext, index)
    rejected = provider_key.decapsulate(tampered)
    assert len(rejected) == 32
    assert rejected != shared
    assert provider_key.decapsulate(tampered) == rejected
    assert provider_key.decapsulate(ciphertext) == shared


# --- the whole handshake ----------------------------------------------------------------------


@pytest.mark.parametrize("reference_side", ["operator", "node"])
def test_a_handshake_between_the_provider_and_the_pure_python_side(
    provider: CryptoProvider, reference: ReferenceProvider, reference_side: str
) -> None:
    """Every ML-KEM encapsulation and ML-DSA signature of a real handshake crosses over."""
    operator_provider: Any = reference if reference_side == "operator" else provider
    node_provider: Any = provider if reference_side == "operator" else reference
    operator = Identity.generate(operator_provider)
    node = Identity.generate(node_provider)
    client = ClientHandshake(operator, node.public_key, suite=hybrid_suite(operator_provider))
    server = ServerHandshake(node, [operator.public_key], suite=hybrid_suite(node_provider))
    server_hello, pending = server.respond(client.hello())
    finish, client_session = client.finish(server_hello)
    server_session = pending.complete(finish)
    assert server_session.open(client_session.seal(b"ping")) == b"ping"
    assert client_session.open(server_session.seal(b"pong")) == b"pong"
