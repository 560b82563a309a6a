"""The one cipher suite the channel runs, and the benchmark baseline.

There is no negotiation: each side is built with exactly one suite, its id is
the first field of both hellos and part of the signed transcript and of the key
derivation, and a hello carrying any other id is refused. So there is nothing
to downgrade to.
"""

from __future__ import annotations

from dataclasses import dataclass

from qorch.channel.provider import (
    ML_DSA_65,
    ML_KEM_768,
    ClassicalProvider,
    CryptoProvider,
    Kem,
    SignatureScheme,
    X25519Kem,
    get_provider,
)

HYBRID_SUITE_ID = b"qorch-channel-v1/MLKEM768+X25519/MLDSA65/HKDF-SHA256/AES256GCM"
CLASSICAL_BENCHMARK_SUITE_ID = b"qorch-channel-v1/X25519/Ed25519/HKDF-SHA256/AES256GCM/benchmark"


@dataclass(frozen=True)
class Suite:
    id: bytes
    signatures: SignatureScheme
    # Shared secrets are concatenated in this order (ML-KEM first, as TLS's X25519MLKEM768).
    kems: tuple[Kem, ...]


def hybrid_suite(provider: CryptoProvider | None = None) -> Suite:
    """ML-KEM-768 + X25519 key agreement, ML-DSA-65 authentication."""
    provider = provider or get_provider()
    if provider.signature_algorithm != ML_DSA_65 or provider.kem_algorithm != ML_KEM_768:
        raise ValueError(
            f"the channel runs ML-DSA-65 and ML-KEM-768; provider {provider.name!r} offers "
            f"{provider.signature_algorithm} and {provider.kem_algorithm}"
        )
    return Suite(HYBRID_SUITE_ID, provider, (provider, X25519Kem()))


def classical_benchmark_suite() -> Suite:
    """Ed25519 + X25519 only: the baseline the benchmark compares against. Never deploy."""
    return Suite(CLASSICAL_BENCHMARK_SUITE_ID, ClassicalProvider(), (X25519Kem(),))
