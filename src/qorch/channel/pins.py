"""The node keys a client pins, each valid in a window of wall-clock time: how a node's
identity rotates without a moment in which neither key is accepted.

During a rotation a node has two pinned keys, the current one retiring at the window's end
(`not_after`) and the next one valid from its start (`not_before`); in between, both are
accepted, so the node may switch to its new key whenever it likes. A key outside its window
is still *known*: the client offers its fingerprint in the ClientHello, so a node that
presents it is answered with a clear refusal (`KeyRetired`, `KeyNotYetValid`) rather than
the bare mismatch a stranger's key gets. It is refused before anything but the hello left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from qorch.channel.errors import KeyNotYetValid, KeyRetired, PeerKeyMismatch
from qorch.channel.identity import fingerprint, fingerprint_digest

# How many node keys one ClientHello may pin: a rotation needs two.
MAX_PINNED_KEYS = 4

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PinnedKey:
    """One node key and the window in which it is accepted (unbounded where None)."""

    public_key: bytes
    not_before: datetime | None = None
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        for moment in (self.not_before, self.not_after):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("a key window's bounds carry a time zone")
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("a key window ends after it starts")

    @property
    def digest(self) -> bytes:
        return fingerprint_digest(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def refusal(self, now: datetime) -> PeerKeyMismatch | None:
        """Why this key is not accepted at `now`, or None when it is."""
        if self.not_after is not None and now > self.not_after:
            return KeyRetired(
                f"node presented key {self.fingerprint}, retired at {rfc3339(self.not_after)}"
                " (outside its rotation window)"
            )
        if self.not_before is not None and now < self.not_before:
            return KeyNotYetValid(
                f"node presented key {self.fingerprint}, valid only from"
                f" {rfc3339(self.not_before)} (outside its rotation window)"
            )
        return None


@dataclass(frozen=True)
class KeyPins:
    """The keys a client knows for one node, in order of preference; hashable, so a driver
    can tell when a node's pins changed."""

    keys: tuple[PinnedKey, ...]
    clock: WallClock = utc_now

    def __post_init__(self) -> None:
        if not 0 < len(self.keys) <= MAX_PINNED_KEYS:
            raise ValueError(f"pin 1 to {MAX_PINNED_KEYS} node keys, not {len(self.keys)}")
        if len({k.public_key for k in self.keys}) != len(self.keys):
            raise ValueError("the same node key is pinned twice")

    @classmethod
    def of(cls, public_key: bytes | KeyPins) -> KeyPins:
        """One key accepted at all times, as a plain pin is."""
        return public_key if isinstance(public_key, KeyPins) else cls((PinnedKey(public_key),))

    @classmethod
    def rotating(
        cls,
        current: bytes,
        following: bytes,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        clock: WallClock = utc_now,
    ) -> KeyPins:
        """`current` until `not_after`, `following` from `not_before`."""
        return cls(
            (PinnedKey(current, not_after=not_after), PinnedKey(following, not_before=not_before)),
            clock,
        )

    def offered(self) -> list[bytes]:
        """Digests for the ClientHello: every known key, so that a node presenting one
        outside its window hears why it is refused."""
        return [key.digest for key in self.keys]

    def accepted(self) -> list[PinnedKey]:
        now = self.clock()
        return [key for key in self.keys if key.refusal(now) is None]

    def accepts(self, fingerprint_: str) -> bool:
        """Whether the key of this fingerprint is accepted now (for reusing a session)."""
        return any(key.fingerprint == fingerprint_ for key in self.accepted())

    def key_for(self, digest: bytes) -> bytes:
        """The pinned key of `digest` if it is accepted now; else the reason it is not."""
        for key in self.keys:
            if key.digest == digest:
                refusal = key.refusal(self.clock())
                if refusal is not None:
                    raise refusal
                return key.public_key
        pinned = ", ".join(key.fingerprint for key in self.keys)
        raise PeerKeyMismatch(
            f"node presented key sha256:{digest.hex()}, but the pinned key"
            f"{'s are' if len(self.keys) > 1 else ' is'} {pinned}"
        )

    def fingerprints(self) -> list[str]:
        """Fingerprints of the keys accepted now, in order of preference."""
        return [key.fingerprint for key in self.accepted()]
