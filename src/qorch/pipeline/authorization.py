"""The Authorize step: where policy asks, a job runs only when a submitter trusted in its
namespace signed it for that namespace and name, the signature is current, and its nonce
admitted no other job."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from qorch.api import DistributedJob
from qorch.api import reasons as R
from qorch.channel.signing import (
    NONCE_REUSED,
    SignatureError,
    TrustedKey,
    now_utc,
    verify_job,
)
from qorch.settings import Settings

from .nonces import MemoryNonces, NonceRecord


class KeySource(Protocol):
    async def keys_for(self, namespace: str) -> list[TrustedKey]:
        """The submitter keys trusted for jobs in `namespace`: cluster-wide and its own."""
        ...


@dataclass(frozen=True)
class StaticKeys:
    """Keys fixed for the driver's life: cluster-wide ones and per-namespace ones."""

    cluster: tuple[TrustedKey, ...] = ()
    namespaces: Mapping[str, tuple[TrustedKey, ...]] = field(default_factory=dict)

    async def keys_for(self, namespace: str) -> list[TrustedKey]:
        return [*self.cluster, *self.namespaces.get(namespace, ())]


@dataclass(frozen=True)
class AuthorizationPolicy:
    """Whether jobs must be signed, by whom, for how long at most, and what was used."""

    require_signature: bool = False
    keys: KeySource = field(default_factory=StaticKeys)
    nonces: NonceRecord = field(default_factory=MemoryNonces)
    max_validity_seconds: float = Settings().max_signature_validity_seconds
    clock: Callable[[], datetime] = now_utc


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    message: str


def holder_of(job: DistributedJob) -> str:
    meta = job.metadata
    return f"{meta.namespace}/{meta.name}/{meta.uid or ''}"


def _described(holder: str) -> str:
    place, _, uid = holder.rpartition("/")
    return f"job {place} (uid {uid})" if uid else f"job {place}"


async def authorize(job: DistributedJob, policy: AuthorizationPolicy) -> Decision:
    """Verify the ML-DSA-65 signature over the stored spec, namespace and name, then
    consume its nonce."""
    if not policy.require_signature:
        return Decision(True, R.SIGNATURE_NOT_REQUIRED, "no submitter signature policy applies")
    ref = job.spec.circuit.config_map_ref
    if ref is not None and (gap := ref.unsigned_source()) is not None:
        return Decision(False, R.CIRCUIT_NOT_PINNED, gap)
    namespace, name = job.metadata.namespace, job.metadata.name
    try:
        keys = await policy.keys.keys_for(namespace)
        signer = verify_job(
            job.spec.wire(),
            namespace,
            name,
            job.spec.signature,
            keys,
            now=policy.clock(),
            max_validity_seconds=policy.max_validity_seconds,
        )
        first = await policy.nonces.claim(signer.nonce, holder_of(job), signer.expires_at)
        if first is not None:
            raise SignatureError(
                NONCE_REUSED,
                f"this signature (nonce {signer.nonce}) already admitted {_described(first)};"
                " a signature admits one job: have this one signed again",
            )
    except SignatureError as exc:
        return Decision(False, exc.reason, f"{exc.reason}: {exc}")
    return Decision(True, R.SIGNATURE_VALID, f"signed by {signer.fingerprint}")
