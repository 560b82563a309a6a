"""What a node lets an unauthenticated peer make it spend (sans-IO).

Before a handshake completes, a peer is only an address. These gates bound what
such a peer can cost the node, each for a few microseconds and a few bytes:

* `HelloCookies`: stateless retry tokens, as DTLS's HelloVerifyRequest and
  QUIC's Retry. The node signs a ServerHello (an ML-DSA-65 signature, ~1 ms)
  only for a ClientHello that carries a cookie it issued to that address within
  the last one or two windows.
* `RecentHellos`: a ClientHello is signed for at most once, so replaying a
  captured hello (cookie and all) costs the node no signature.
* `PeerRates`: token buckets per peer address (handshake requests, signatures).
* `PeerQueue`: a peer's handshake requests take turns, a few at a time and at
  its rate. Waiting costs the node a connection and a coroutine but no reading,
  so a flood from one address slows to that address's rate instead of taking
  the node's time, and a peer refused nothing has no reason to reconnect.
* Refusals past a peer's rate are held back before they are sent (a tarpit):
  the connection is not read meanwhile, so TCP stops the sender, and a peer that
  reconnects at once after every refusal gets few.
* `PeerSlots`: requests in flight, refused beyond the limit.
* `ByteBudget`: bytes of request bodies held in memory at once.

Peers are told apart by address only; the number of peers tracked is bounded,
and the least recently seen is forgotten first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable

Clock = Callable[[], float]

COOKIE_LABEL = b"qorch-channel-v1 hello cookie"
_WINDOW = struct.Struct("!Q")
_COOKIE_MAC_SIZE = 16
COOKIE_SIZE = _WINDOW.size + _COOKIE_MAC_SIZE


class HelloCookies:
    """HMAC-SHA256 cookies over (time window, peer address, ClientHello without cookie).

    Valid in the window it was issued in and the next one, so for `window_seconds`
    to twice that. The key is random per process: a restarted node asks again.
    """

    def __init__(
        self,
        window_seconds: float = 10.0,
        *,
        key: bytes | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = window_seconds
        self._key = key if key is not None else secrets.token_bytes(32)
        self._clock = clock

    def _window(self) -> int:
        return int(self._clock() // self.window_seconds)

    def _mac(self, window: int, peer: str, hello: bytes) -> bytes:
        address = peer.encode()
        message = b"".join(
            [
                COOKIE_LABEL,
                _WINDOW.pack(window),
                struct.pack("!I", len(address)),
                address,
                hashlib.sha256(hello).digest(),
            ]
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_COOKIE_MAC_SIZE]

    def issue(self, hello: bytes, peer: str) -> bytes:
        window = self._window()
        return _WINDOW.pack(window) + self._mac(window, peer, hello)

    def valid(self, cookie: bytes | None, hello: bytes, peer: str) -> bool:
        if cookie is None or len(cookie) != COOKIE_SIZE:
            return False
        (window,) = _WINDOW.unpack_from(cookie)
        if window not in (self._window(), self._window() - 1):
            return False
        return hmac.compare_digest(cookie[_WINDOW.size :], self._mac(window, peer, hello))


class RecentHellos:
    """Digests of the ClientHellos signed for within `horizon_seconds` (a cookie's life)."""

    def __init__(
        self, horizon_seconds: float, max_entries: int = 65_536, *, clock: Clock = time.monotonic
    ) -> None:
        self._horizon = horizon_seconds
        self._max = max_entries
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # digest -> when, oldest first

    def seen(self, hello: bytes) -> bool:
        self._sweep()
        return hashlib.sha256(hello).digest() in self._seen

    def add(self, hello: bytes) -> None:
        self._seen[hashlib.sha256(hello).digest()] = self._clock()
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def _sweep(self) -> None:
        horizon = self._clock() - self._horizon
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)


class PeerRates:
    """A token bucket per peer: `burst` at once, then `per_second`."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_peers: int = 4096,
        clock: Clock = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._max_peers = max_peers
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def take(self, peer: str) -> float:
        """0 when `peer` may go ahead (a token is spent); else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.pop(peer, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.per_second
        self._store(peer, tokens, now)
        return wait

    def reserve(self, peer: str, max_due: float = math.inf) -> float:
        """Spend a token now or, in debt, a future one: the seconds until it is due. A token
        due after `max_due` is not taken (no debt beyond it) and `max_due` is returned."""
        now = self._clock()
        tokens, then = self._buckets.pop(peer, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        due = max(0.0, (1 - tokens) / self.per_second)
        if due > max_due:
            self._store(peer, tokens, now)
            return max_due
        self._store(peer, tokens - 1, now)
        return due

    def _store(self, peer: str, tokens: float, now: float) -> None:
        self._buckets[peer] = (tokens, now)
        while len(self._buckets) > self._max_peers:
            self._buckets.popitem(last=False)


class _PeerTurns:
    def __init__(self, concurrent: int) -> None:
        self.turns = asyncio.Semaphore(concurrent)
        self.users = 0


class PeerQueue:
    """Lets requests in at most `concurrent_per_peer` of a peer's and `concurrent` in all at
    once, each peer's at `rate`; the others wait. At most `max_waiting` wait in all: `enter`
    refuses beyond. A request waits for its peer's turn, then for a token of its peer's
    rate, then for a place among all; so a request sleeping for a token holds no place,
    and a peer can hold at most `concurrent_per_peer` places whatever it sends.

    The caller bounds the wait (a timeout around `enter`) and calls `leave` once done.
    """

    def __init__(
        self, *, concurrent: int, concurrent_per_peer: int, rate: PeerRates, max_waiting: int
    ) -> None:
        self.concurrent_per_peer = concurrent_per_peer
        self.max_waiting = max_waiting
        self._rate = rate
        self._all = asyncio.Semaphore(concurrent)
        self._peers: dict[str, _PeerTurns] = {}
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def enter(self, peer: str) -> bool:
        """Wait for the turn of a request from `peer`; False, at once, when too many wait."""
        if self._waiting >= self.max_waiting:
            return False
        self._waiting += 1
        state = self._peers.setdefault(peer, _PeerTurns(self.concurrent_per_peer))
        state.users += 1
        held: list[asyncio.Semaphore] = []
        try:
            await state.turns.acquire()
            held.append(state.turns)
            due = self._rate.reserve(peer)
            if due:
                await asyncio.sleep(due)
            await self._all.acquire()
            held.append(self._all)
        except BaseException:
            for semaphore in held:
                semaphore.release()
            self._forget(peer, state)
            raise
        finally:
            self._waiting -= 1
        return True

    def leave(self, peer: str) -> None:
        state = self._peers[peer]
        self._all.release()
        state.turns.release()
        self._forget(peer, state)

    def _forget(self, peer: str, state: _PeerTurns) -> None:
        state.users -= 1
        if state.users == 0:
            del self._peers[peer]


class PeerSlots:
    """Requests in flight: at most `total`, and at most `per_peer` from one peer."""

    def __init__(self, total: int, per_peer: int | None = None) -> None:
        self.total = total
        self.per_peer = per_peer if per_peer is not None else total
        self._busy: dict[str, int] = {}
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def acquire(self, peer: str) -> bool:
        held = self._busy.get(peer, 0)
        if self._in_use >= self.total or held >= self.per_peer:
            return False
        self._busy[peer] = held + 1
        self._in_use += 1
        return True

    def release(self, peer: str) -> None:
        held = self._busy.get(peer, 0)
        if held <= 0:
            raise RuntimeError(f"no slot held by {peer}")
        if held == 1:
            del self._busy[peer]
        else:
            self._busy[peer] = held - 1
        self._in_use -= 1


class ByteBudget:
    """Bytes of bodies held at once, taken before a body is read and given back after."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    def take(self, size: int) -> bool:
        if size < 0 or self._used + size > self.total:
            return False
        self._used += size
        return True

    def give_back(self, size: int) -> None:
        self._used = max(0, self._used - size)


def retry_after_header(seconds: float) -> str:
    """Retry-After counts whole seconds (RFC 9110)."""
    return str(max(1, math.ceil(seconds)))
