"""The Authorize step: where policy asks, a job runs only when a trusted submitter signed it."""

from __future__ import annotations

from dataclasses import dataclass, field

from qorch.api import DistributedJob
from qorch.api import reasons as R
from qorch.channel.signing import SignatureError, verify_spec


@dataclass(frozen=True)
class AuthorizationPolicy:
    """Whether jobs must be signed, and by whom."""

    require_signature: bool = False
    trusted_keys: tuple[bytes, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    message: str


def authorize(job: DistributedJob, policy: AuthorizationPolicy) -> Decision:
    """Verify the ML-DSA-65 signature over the stored form of the spec."""
    if not policy.require_signature:
        return Decision(True, R.SIGNATURE_NOT_REQUIRED, "no submitter signature policy applies")
    try:
        signer = verify_spec(job.spec.wire(), job.spec.signature, policy.trusted_keys)
    except SignatureError as exc:
        return Decision(False, exc.reason, f"{exc.reason}: {exc}")
    return Decision(True, R.SIGNATURE_VALID, f"signed by {signer.fingerprint}")
