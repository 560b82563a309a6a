"""The record of used signature nonces: one signed job per signature.

Each entry names the job that consumed the nonce (namespace/name/uid), so the same job
re-admitted after a driver restart is not a replay, and is kept until its signature's
expiry plus the clock skew allowance: after that the signature is refused as expired
anyway. The record is bounded in entries and in bytes (the operator keeps it in a
ConfigMap, at most 1 MiB), and one namespace's jobs hold at most a share of its entries;
when it (or the share) is full of unexpired entries new signed jobs are refused
(NonceRecordFull) rather than the record forgetting a nonce.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from qorch.channel.signing import (
    CLOCK_SKEW_SECONDS,
    EXPIRED,
    NONCE_RECORD_FULL,
    SignatureError,
    now_utc,
)

DEFAULT_MAX_ENTRIES = 2000
DEFAULT_MAX_BYTES = 768 * 1024
#: The share of the record's entries the jobs of one namespace may hold: the record is the
#: cluster's, and one tenant's signed jobs (applied, then deleted) must not fill it for all.
NAMESPACE_SHARE = 0.25


class NonceRecord(Protocol):
    async def claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        """Record `holder` as the job that used `nonce`; None when it may (first use, or
        the same holder again), else the holder that used it first."""
        ...


def _entry_bytes(nonce: str, holder: str, expires: int) -> int:
    return len(json.dumps({nonce: [holder, expires]}, separators=(",", ":")))


@dataclass
class NonceBook:
    """Used nonces -> (holder, unix time they may be forgotten), as plain data."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    entries: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def from_json(
        cls,
        text: str | None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> NonceBook:
        book = cls(max_entries, max_bytes)
        if not text:
            return book
        try:
            data = json.loads(text)
            book.entries = {
                str(nonce): (str(holder), int(expires)) for nonce, (holder, expires) in data.items()
            }
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"the nonce record is not {{nonce: [holder, expiry]}}: {exc}"
            ) from None
        return book

    def to_json(self) -> str:
        return json.dumps(
            {nonce: [holder, expires] for nonce, (holder, expires) in sorted(self.entries.items())},
            separators=(",", ":"),
        )

    def prune(self, now: datetime) -> None:
        moment = int(now.timestamp())
        self.entries = {n: e for n, e in self.entries.items() if e[1] >= moment}

    def claim(self, nonce: str, holder: str, expires_at: datetime, now: datetime) -> str | None:
        self.prune(now)
        existing = self.entries.get(nonce)
        if existing is not None:
            return None if existing[0] == holder else existing[0]
        forget_at = int((expires_at + timedelta(seconds=CLOCK_SKEW_SECONDS)).timestamp())
        if forget_at < int(now.timestamp()):
            # Verified in time, but claimed after the record may have forgotten the nonce's
            # first use (a slow API server): refused as any signature that late would be.
            raise SignatureError(
                EXPIRED,
                f"the signature expired at {expires_at:%Y-%m-%dT%H:%M:%SZ} before its nonce"
                " could be recorded: have the job signed again",
            )
        size = len(self.to_json()) + _entry_bytes(nonce, holder, forget_at)
        if len(self.entries) >= self.max_entries or size > self.max_bytes:
            soonest = min((e[1] for e in self.entries.values()), default=forget_at)
            raise SignatureError(
                NONCE_RECORD_FULL,
                f"the record of used nonces is full ({len(self.entries)} unexpired signatures,"
                f" {size} bytes): the next entry expires at"
                f" {datetime.fromtimestamp(soonest, UTC):%Y-%m-%dT%H:%M:%SZ}; submit again"
                " then, or have the operator's limits raised or its maximum validity lowered",
            )
        namespace = holder.split("/", 1)[0]
        own = [(n, e) for n, e in self.entries.items() if e[0].split("/", 1)[0] == namespace]
        own_bytes = sum(_entry_bytes(n, h, e) for n, (h, e) in own)
        new_bytes = _entry_bytes(nonce, holder, forget_at)
        if len(own) >= max(1, int(self.max_entries * NAMESPACE_SHARE)) or (
            own and own_bytes + new_bytes > self.max_bytes * NAMESPACE_SHARE  # one always fits
        ):
            raise SignatureError(
                NONCE_RECORD_FULL,
                f"namespace {namespace} holds {len(own)} of the {self.max_entries} entries"
                f" ({own_bytes} bytes) of the record of used nonces, its share"
                f" ({NAMESPACE_SHARE:.0%}) until they expire: sign jobs for a shorter time"
                " (qorch sign --valid-for), or raise the limit (QORCH_NONCE_RECORD_MAX_ENTRIES)",
            )
        self.entries[nonce] = (holder, forget_at)
        return None


class MemoryNonces:
    """A NonceRecord of one process: `qorch run`, and tests."""

    def __init__(self, book: NonceBook | None = None) -> None:
        self.book = book or NonceBook()
        self._lock = asyncio.Lock()

    async def claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        async with self._lock:
            return self.book.claim(nonce, holder, expires_at, now_utc())
