"""The channel over HTTP (aiohttp).

    POST {prefix}/handshake   body ClientHello -> 200 HelloRetry (no valid cookie)
                                                 200 ServerHello
                              body ClientFinish -> 204
    POST {prefix}/call        body request record -> 200 reply record

Bodies are `application/octet-stream` with a Content-Length. A refusal (bad
record, unknown or expired session, untrusted client...) is a 4xx or 5xx with a
JSON body `{"error": "<ChannelError subclass>", "message": "..."}` that names no
secret and no plaintext; the client raises that class. An exception in the
handler is not a refusal: it travels back encrypted as an error reply and the
client raises `RemoteError`.

Before a session exists a peer is only an address, and `ServerLimits` bounds
what it can make the node spend: a body is refused from its declared length
(413, or 411 without one) before a byte of it is read, and a record is read
past its header only for a live session; bodies must arrive in time (408) and
idle or half-sent connections are closed; handshake requests of an address take
turns at a bounded rate; too much in flight is refused (429 from this address,
503 in all, both `Throttled` with a `retryAfter` the client waits out before
sending the same bytes again: nothing was done with them). A refused body that
is large or late is not read on: the node answers and hangs up.

The server refuses a record on an unknown or expired session before the handler
runs, so the client retries such a call once on a fresh session. An on-path
attacker could forge that refusal after dropping a real reply, exactly as it
could drop the reply and let the caller retry: ops must be idempotent either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import hdrs, web

from qorch.channel.admission import (
    ByteBudget,
    HelloCookies,
    PeerQueue,
    PeerRates,
    PeerSlots,
    RecentHellos,
    retry_after_header,
)
from qorch.channel.envelope import (
    JSONDict,
    TraceContext,
    current_trace,
    decode_reply,
    decode_request,
    encode_error,
    encode_request,
    encode_result,
)
from qorch.channel.errors import (
    AUTHENTICATION_FAILURES,
    REFUSAL_CODES,
    AuthenticationFailed,
    ChannelError,
    ChannelTimeout,
    MalformedMessage,
    OutOfOrderMessage,
    PeerKeyMismatch,
    RemoteError,
    ReplayedMessage,
    SessionExpired,
    Throttled,
    TransportError,
    UnknownSession,
)
from qorch.channel.handshake import (
    CLIENT_FINISH,
    CLIENT_HELLO,
    HELLO_RETRY,
    ClientHandshake,
    PendingSession,
    ServerHandshake,
    encode_hello_retry,
    finish_session_id,
    message_type,
)
from qorch.channel.identity import Identity, fingerprint
from qorch.channel.pins import KeyPins
from qorch.channel.session import MIN_RECORD_SIZE, Clock, RecordHeader, Session, SessionLimits
from qorch.channel.suite import Suite

logger = logging.getLogger(__name__)

Handler = Callable[[str, JSONDict], Awaitable[JSONDict]]

DEFAULT_PREFIX = "/v1/channel"
OCTET_STREAM = "application/octet-stream"
MAX_BODY_BYTES = 64 * 1024 * 1024
# A node's handshake replies (a ServerHello: a signature, a key share; a cookie) are a few KB.
HANDSHAKE_REPLY_BYTES = 64 * 1024
# A refused body no larger than this is still read to its end (aiohttp's lingering close),
# so that the peer reads the refusal; beyond it the node hangs up instead of reading on.
DRAIN_LIMIT_BYTES = 64 * 1024
# How long a client keeps an idle pooled connection: well under the node's idle timeout,
# so that it never sends on a connection the node is closing (a POST is not retried).
CLIENT_POOL_SECONDS = 10.0
# A refusal for throttling is retried this many times, waiting as the node asks (capped).
THROTTLED_ATTEMPTS = 3
MAX_RETRY_AFTER_SECONDS = 2.0


class _BodyTooLarge(MalformedMessage):
    status = 413


class _LengthRequired(MalformedMessage):
    status = 411


class _BodyTimeout(MalformedMessage):
    status = 408


class _BodyCutShort(MalformedMessage):
    """The peer closed the connection before its body was complete."""


class _Busy(Throttled):
    """Too much in flight for the node as a whole (rather than from this peer)."""

    status = 503


@dataclass(frozen=True)
class ServerLimits:
    """What a peer can make a node spend, before and after it authenticates.

    Sizes are checked against Content-Length before a byte of the body is read. A
    handshake message is a few KB (ClientHello 1.4, Finish 3.3); a record of a session
    may be large, but only a live session's header earns the node reading more than the
    header, and the records held at once share `max_buffered_record_bytes`.

    Handshake requests of a peer address take turns (`PeerQueue`): a few at a time, at
    `handshake_requests_per_second` after a burst; at most `max_handshakes_waiting` wait
    in all, the rest are refused. Each address also gets at most `signatures_per_second`
    ServerHellos (refused beyond). Calls of live sessions are refused beyond
    `max_calls_in_flight`. Refusals to an address past `refusals_per_second` are held
    back, up to `max_refusal_delay_seconds` (at most `max_refusals_held` at once), before
    they are sent.

    A body, with the wait for its turn, must arrive within `body_timeout_seconds` plus
    its size at `min_body_bytes_per_second`; a connection that has not sent a complete
    request head `idle_timeout_seconds` after it opened, or after its last response, is
    closed (`runner_options`).
    """

    max_handshake_bytes: int = 16 * 1024
    max_record_bytes: int = MAX_BODY_BYTES
    max_buffered_record_bytes: int = 4 * MAX_BODY_BYTES
    max_calls_in_flight: int = 256
    max_handshakes_in_flight: int = 64
    max_handshakes_in_flight_per_peer: int = 4
    max_handshakes_waiting: int = 1024
    handshake_requests_per_second: float = 20.0
    handshake_request_burst: int = 60
    signatures_per_second: float = 10.0
    signature_burst: int = 20
    refusals_per_second: float = 10.0
    refusal_burst: int = 20
    max_refusal_delay_seconds: float = 2.0
    max_refusals_held: int = 1024
    cookie_window_seconds: float = 10.0
    idle_timeout_seconds: float = 20.0
    body_timeout_seconds: float = 10.0
    min_body_bytes_per_second: float = 1024 * 1024
    max_peers_tracked: int = 4096
    # For the listening socket (web.TCPSite's backlog): connections a burst may open before
    # the node accepts them, rather than have the kernel drop them for a second's retry.
    listen_backlog: int = 1024

    def body_deadline(self, size: int) -> float:
        return self.body_timeout_seconds + size / self.min_body_bytes_per_second

    def runner_options(self) -> dict[str, Any]:
        """Keyword arguments for the `web.AppRunner` of an app that serves the channel."""
        return {
            # aiohttp closes a connection idle this long, also one that opened, or was
            # answered, and has not completed its next request head since (slowloris).
            "keepalive_timeout": self.idle_timeout_seconds,
            "lingering_time": 1.0,  # for draining refused bodies up to DRAIN_LIMIT_BYTES
            "auto_decompress": False,  # bodies are limited as sent: no decompression bomb
            "max_line_size": 4096,
            "max_field_size": 4096,
            "max_headers": 32,
        }


def _client_of(session: Session | PendingSession) -> str:
    return session.peer_fingerprint if isinstance(session, Session) else session.client_fingerprint


def _peer(request: web.Request) -> str:
    return request.remote or "unknown"


def _declared_length(request: web.Request, limit: int) -> int:
    """The body's Content-Length, refused before reading when absent or above `limit`."""
    length = request.content_length
    if length is None or hdrs.TRANSFER_ENCODING in request.headers:
        raise _LengthRequired("a body needs a Content-Length")
    if length > limit:
        raise _BodyTooLarge(f"body of {length} bytes exceeds {limit} bytes")
    return length


async def _read_exactly(request: web.Request, size: int) -> bytes:
    try:
        return await request.content.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise _BodyCutShort(f"body ended after {len(exc.partial)} of {size} bytes") from None
    except (ConnectionError, web.RequestPayloadError) as exc:
        raise _BodyCutShort(f"body cut short ({type(exc).__name__})") from None


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal_status(exc: ChannelError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, Throttled):
        return 429
    if isinstance(exc, AuthenticationFailed | PeerKeyMismatch):
        return 403
    if isinstance(exc, UnknownSession | SessionExpired):
        return 401
    if isinstance(exc, ReplayedMessage | OutOfOrderMessage):
        return 409
    return 400


def _refusal_code(exc: ChannelError) -> str:
    """The most specific class name the client knows (REFUSAL_CODES)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in REFUSAL_CODES:
            return cls.__name__
    return "ChannelError"


class ChannelServer:
    """Node side: authenticated, encrypted `op(payload) -> reply` over aiohttp.

    Only clients whose public key is in `trusted_client_keys` (the operator's)
    can open a session. `handler(op, payload)` runs with `current_trace` set.
    `refresh_keys`, when given, runs before each hello and each call is looked at: the
    place to take up a new identity or trusted set (`rekey`, `trust`) as their files
    change, so that a node's new key is met on the next call.
    `server_limits` bounds what any peer can make the node spend; serve the app
    with `web.AppRunner(app, **server.server_limits.runner_options())`.
    """

    def __init__(
        self,
        identity: Identity,
        trusted_client_keys: Iterable[bytes],
        handler: Handler,
        *,
        limits: SessionLimits | None = None,
        server_limits: ServerLimits | None = None,
        prefix: str = DEFAULT_PREFIX,
        handshake_timeout: float = 10.0,
        max_sessions: int = 1024,
        max_pending_handshakes: int = 256,
        suite: Suite | None = None,
        clock: Clock = time.monotonic,
        refresh_keys: Callable[[], None] | None = None,
    ) -> None:
        self._refresh_keys = refresh_keys
        self._handshake = ServerHandshake(
            identity, trusted_client_keys, suite=suite, limits=limits, clock=clock
        )
        self._handler = handler
        self._prefix = prefix.rstrip("/")
        self._handshake_timeout = handshake_timeout
        self._max_sessions = max_sessions
        self._max_pending = max_pending_handshakes
        self._clock = clock
        self.server_limits = bounds = server_limits or ServerLimits()
        self._cookies = HelloCookies(bounds.cookie_window_seconds, clock=clock)
        # A cookie lives at most two windows: a hello older than that fails its cookie.
        self._signed_hellos = RecentHellos(2 * bounds.cookie_window_seconds, clock=clock)
        self._handshake_queue = PeerQueue(
            concurrent=bounds.max_handshakes_in_flight,
            concurrent_per_peer=bounds.max_handshakes_in_flight_per_peer,
            rate=PeerRates(
                bounds.handshake_requests_per_second,
                bounds.handshake_request_burst,
                max_peers=bounds.max_peers_tracked,
                clock=clock,
            ),
            max_waiting=bounds.max_handshakes_waiting,
        )
        self._signature_rate = PeerRates(
            bounds.signatures_per_second,
            bounds.signature_burst,
            max_peers=bounds.max_peers_tracked,
            clock=clock,
        )
        self._call_slots = PeerSlots(bounds.max_calls_in_flight)
        self._refusal_rate = PeerRates(
            bounds.refusals_per_second,
            bounds.refusal_burst,
            max_peers=bounds.max_peers_tracked,
            clock=clock,
        )
        self._held_refusals = 0
        self._buffered = ByteBudget(bounds.max_buffered_record_bytes)
        # Insertion order is creation order, so the oldest entries are evicted first.
        self._pending: OrderedDict[bytes, PendingSession] = OrderedDict()
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._busy: set[bytes] = set()
        self._counters = {
            "handshakes": 0,
            "refusals": 0,
            "auth_failures": 0,
            "calls": 0,
            "handler_errors": 0,
            "hello_retries": 0,
            "signatures": 0,
            "throttled": 0,
        }

    @property
    def identity(self) -> Identity:
        return self._handshake.identity

    def rekey(self, identity: Identity) -> None:
        """Serve new sessions with `identity`. Sessions opened with the previous key are
        forgotten: a client's next call on one is refused as unknown and it re-handshakes
        (once, at once), so it meets the new key now rather than when its sessions expire.
        Nothing a handler runs is tied to a session, so no work is lost."""
        if identity.public_key == self._handshake.identity.public_key:
            return
        self._handshake.rekey(identity)
        self._pending.clear()
        self._sessions.clear()
        logger.info("channel identity is now %s", identity.fingerprint)

    def trust(self, trusted_client_keys: Iterable[bytes]) -> None:
        """Open sessions only for these client keys; sessions of a key no longer trusted
        are forgotten."""
        self._handshake.trust(trusted_client_keys)
        kept = {fingerprint(key) for key in self._handshake.trusted_keys}
        for table in (self._sessions, self._pending):
            for session_id in [i for i, s in table.items() if _client_of(s) not in kept]:
                del table[session_id]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{self._prefix}/handshake", self._handle_handshake)
        app.router.add_post(f"{self._prefix}/call", self._handle_call)

    @property
    def stats(self) -> dict[str, int]:
        """Counters for metrics: handshakes, refusals (of which throttled, and of which
        authentication failures), calls, handler errors, hello retries (cookies sent),
        signatures (ServerHellos signed), live and pending sessions."""
        return {**self._counters, "sessions": len(self._sessions), "pending": len(self._pending)}

    async def _handle_handshake(self, request: web.Request) -> web.StreamResponse:
        peer = _peer(request)
        bounds = self.server_limits
        entered = False
        try:
            length = _declared_length(request, bounds.max_handshake_bytes)
            async with asyncio.timeout(bounds.body_deadline(length)):
                # Nothing is read until this peer's turn comes.
                entered = await self._handshake_queue.enter(peer)
                if not entered:
                    raise _Busy("too many handshakes waiting")
                body = await _read_exactly(request, length)
            kind = message_type(body)
            if kind == CLIENT_HELLO:
                return self._hello(body, peer)
            if kind == CLIENT_FINISH:
                return self._finish(body)
            raise MalformedMessage("not a handshake message")
        except TimeoutError:
            if not entered:
                waited = Throttled("too many handshake requests from this address")
                return await self._refuse(waited, request)
            return await self._refuse(_BodyTimeout("body not received in time"), request)
        except ChannelError as exc:
            return await self._refuse(exc, request)
        finally:
            if entered:
                self._handshake_queue.leave(peer)

    def _hello(self, body: bytes, peer: str) -> web.Response:
        if self._refresh_keys is not None:
            self._refresh_keys()
        screened = self._handshake.screen(body)
        if not self._cookies.valid(screened.cookie, screened.without_cookie, peer):
            # Stateless: nothing is kept until the hello returns with this cookie.
            self._counters["hello_retries"] += 1
            cookie = self._cookies.issue(screened.without_cookie, peer)
            retry = encode_hello_retry(self._handshake.suite, cookie)
            return web.Response(body=retry, content_type=OCTET_STREAM)
        if self._signed_hellos.seen(body):
            raise ReplayedMessage("this ClientHello was answered already")
        wait = self._signature_rate.take(peer)
        if wait:
            raise Throttled(
                f"more than {self.server_limits.signatures_per_second:g} handshakes a second"
                " from this address",
                wait,
            )
        self._signed_hellos.add(body)
        self._sweep()
        server_hello, pending = self._handshake.respond(body)
        self._counters["signatures"] += 1
        self._pending[pending.session_id] = pending
        if len(self._pending) > self._max_pending:
            self._pending.popitem(last=False)
        return web.Response(body=server_hello, content_type=OCTET_STREAM)

    def _finish(self, body: bytes) -> web.Response:
        pending = self._pending.pop(finish_session_id(body), None)
        if pending is None:
            raise UnknownSession("no pending handshake for this Finish (unknown or timed out)")
        session = pending.complete(body)
        self._sessions[session.session_id] = session
        if len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        self._counters["handshakes"] += 1
        logger.info("channel session %s opened by %s", session.short_id, session.peer_fingerprint)
        return web.Response(status=204)

    def _sweep(self) -> None:
        horizon = self._clock() - self._handshake_timeout
        while self._pending and next(iter(self._pending.values())).created_at < horizon:
            self._pending.popitem(last=False)
        while self._sessions and next(iter(self._sessions.values())).expired():
            self._sessions.popitem(last=False)

    async def _handle_call(self, request: web.Request) -> web.StreamResponse:
        peer = _peer(request)
        bounds = self.server_limits
        if self._refresh_keys is not None:
            self._refresh_keys()  # a new key forgets the sessions: this call re-handshakes
        if not self._call_slots.acquire(peer):
            return await self._refuse(_Busy("too many calls in flight"), request)
        claimed: bytes | None = None  # the session this request holds while it runs
        reserved = 0
        try:
            try:
                length = _declared_length(request, bounds.max_record_bytes)
                if length < MIN_RECORD_SIZE:
                    raise MalformedMessage(
                        f"record truncated: {length} bytes, a record has at least {MIN_RECORD_SIZE}"
                    )
                async with asyncio.timeout(bounds.body_deadline(length)):
                    head = await _read_exactly(request, MIN_RECORD_SIZE)
                    # Only a live session earns reading, and holding, more than a header.
                    session = self._session_for(RecordHeader.parse(head).session_id)
                    if session.session_id in self._busy:
                        raise OutOfOrderMessage(
                            f"session {session.short_id} already has a request in flight"
                        )
                    claimed = session.session_id
                    self._busy.add(claimed)
                    if not self._buffered.take(length):
                        raise _Busy("too many bytes of records in flight")
                    reserved = length
                    record = head + await _read_exactly(request, length - MIN_RECORD_SIZE)
                plaintext = session.open(record)
            except TimeoutError:
                return await self._refuse(_BodyTimeout("body not received in time"), request)
            except ChannelError as exc:
                return await self._refuse(exc, request)
            try:
                reply = await self._dispatch(plaintext)
                return web.Response(body=session.seal(reply), content_type=OCTET_STREAM)
            except BaseException:
                # The reply was never sealed: the session is out of step, drop it.
                self._sessions.pop(session.session_id, None)
                raise
        finally:
            if claimed is not None:
                self._busy.discard(claimed)
            self._buffered.give_back(reserved)
            self._call_slots.release(peer)

    def _session_for(self, session_id: bytes) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"session {session_id.hex()[:8]} is unknown to this node")
        if session.expired():
            del self._sessions[session_id]
            raise SessionExpired(f"session {session.short_id} has expired")
        return session

    async def _dispatch(self, plaintext: bytes) -> bytes:
        self._counters["calls"] += 1
        try:
            op, payload, trace = decode_request(plaintext)
        except MalformedMessage as exc:
            return encode_error(type(exc).__name__, str(exc))
        token = current_trace.set(trace)
        try:
            result = await self._handler(op, payload)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            return encode_result(result)
        except Exception as exc:
            self._counters["handler_errors"] += 1
            # Exception text may quote the payload: log the type and where it was raised only.
            origin = traceback.extract_tb(exc.__traceback__)[-1]
            logger.warning(
                "channel op %r failed: %s at %s:%s",
                op,
                type(exc).__name__,
                origin.filename,
                origin.lineno,
            )
            # An exception may name its own error code (e.g. the agent's ProgramRejected).
            code = getattr(exc, "code", None)
            return encode_error(code if isinstance(code, str) else type(exc).__name__, str(exc))
        finally:
            current_trace.reset(token)

    async def _refuse(self, exc: ChannelError, request: web.Request) -> web.StreamResponse:
        """One log line (throttling only at debug level: a flood must not flood the log) and
        a JSON refusal, held back while the peer is past its refusal rate. When a large or
        slow body is still unread, the node sends the refusal and hangs up rather than read
        the rest."""
        bounds = self.server_limits
        self._counters["refusals"] += 1
        if isinstance(exc, AUTHENTICATION_FAILURES):
            self._counters["auth_failures"] += 1
        level = logging.WARNING
        if isinstance(exc, Throttled):
            self._counters["throttled"] += 1
            level = logging.DEBUG
        elif isinstance(exc, UnknownSession | SessionExpired | _BodyCutShort):
            level = logging.INFO
        logger.log(level, "channel refused %s from %s: %s", request.path, request.remote, exc)
        body: dict[str, Any] = {"error": _refusal_code(exc), "message": str(exc)}
        headers = {}
        if isinstance(exc, Throttled):
            body["retryAfter"] = round(exc.retry_after, 3)
            headers[hdrs.RETRY_AFTER] = retry_after_header(exc.retry_after)
        response = web.json_response(body, status=_refusal_status(exc), headers=headers)
        if isinstance(exc, _BodyCutShort):
            return response
        delay = self._refusal_rate.reserve(_peer(request), bounds.max_refusal_delay_seconds)
        if delay and self._held_refusals < bounds.max_refusals_held:
            self._held_refusals += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self._held_refusals -= 1
        if request.content.is_eof():
            return response
        length = request.content_length
        if isinstance(exc, _BodyTimeout) or length is None or length > DRAIN_LIMIT_BYTES:
            response.force_close()
            with contextlib.suppress(ConnectionError):
                await response.prepare(request)
                await response.write_eof()
            if request.transport is not None:
                request.transport.close()
        return response


# A call over one given session, and a check a client runs on each new session before
# anything else uses it (given that call and the fingerprint of the node key that
# authenticated the session); it raises SessionRefused to refuse the session.
SessionCall = Callable[[str, JSONDict], Awaitable[JSONDict]]
SessionVet = Callable[[SessionCall, str], Awaitable[None]]


class ChannelClient:
    """Operator side: `await client.call(op, payload)` to one node, over pooled sessions.

    The handshake runs lazily on the first call and again whenever a session
    nears its limits. Several calls may run concurrently: each takes its own
    session (one request in flight per session keeps sequence numbers strict).
    The node's pins may change (`pin`, e.g. as its key rotates): a pooled session is
    used only while the key it was opened with is still accepted. With `vet` set, every
    new session is checked by it first (a TPM quote bound to the session's key, say).
    """

    def __init__(
        self,
        endpoint: str,
        identity: Identity,
        pinned_server_key: bytes | KeyPins,
        *,
        timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        limits: SessionLimits | None = None,
        max_idle_sessions: int = 4,
        max_reply_bytes: int = MAX_BODY_BYTES,
        reply_limits: Mapping[str, int] | None = None,
        prefix: str = DEFAULT_PREFIX,
        http: aiohttp.ClientSession | None = None,
        suite: Suite | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        base = endpoint.rstrip("/") + prefix.rstrip("/")
        self.endpoint = endpoint
        self._handshake_url, self._call_url = f"{base}/handshake", f"{base}/call"
        self._identity = identity
        self._pins = KeyPins.of(pinned_server_key)
        self._timeout = timeout
        # Only the connection has a timeout of its own: how long a reply may take is the
        # call's `timeout` alone (aiohttp's default would cap every request at 300 s).
        self._request_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._limits = limits
        self._max_idle = max_idle_sessions
        self._max_reply = max_reply_bytes
        # Per operation, where its replies are known to be small (the caller's protocol).
        self._reply_limits = dict(reply_limits or {})
        self._suite = suite
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        self._idle: list[Session] = []
        self._closed = False
        self.handshakes = 0
        self.vet: SessionVet | None = None
        # Fingerprint of the node key that authenticated the session of the last call.
        self.peer_fingerprint: str | None = None
        # Fail at construction, not at the first call, on a malformed pin or identity.
        ClientHandshake(identity, self._pins, suite=suite)

    @property
    def pins(self) -> KeyPins:
        return self._pins

    def pin(self, pins: bytes | KeyPins) -> None:
        """Pin other node keys from the next handshake on; pooled sessions opened with a
        key no longer accepted are dropped when next reached for."""
        pins = KeyPins.of(pins)
        ClientHandshake(self._identity, pins, suite=self._suite)  # refuse a malformed pin now
        self._pins = pins

    async def __aenter__(self) -> ChannelClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        self._idle.clear()
        if self._owns_http and self._http is not None:
            await self._http.close()
        self._http = None

    async def call(
        self,
        op: str,
        payload: JSONDict,
        *,
        timeout: float | None = None,
        trace: TraceContext | None = None,
    ) -> JSONDict:
        """Send `op(payload)` to the node and return its reply.

        Raises a ChannelError subclass when the channel fails (ChannelTimeout
        after `timeout` seconds, default from the constructor; no other limit
        applies to how long the node may take; MalformedMessage for a reply over
        the op's `reply_limits` or the client's limit) and RemoteError when the
        node's handler raised.
        """
        if self._closed:
            raise TransportError("channel client is closed")
        request = encode_request(op, payload, trace if trace is not None else current_trace.get())
        limit = self._timeout if timeout is None else timeout
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                reply = await self._exchange(request, self._reply_limits.get(op))
        except TimeoutError:
            if not scope.expired():
                # Not this call's deadline: say what did time out rather than blame the node.
                raise TransportError(f"{op}: a timeout inside the HTTP client expired") from None
            raise ChannelTimeout(
                f"{op}: no reply from {self.endpoint} within {limit:g} s"
            ) from None
        result, error = decode_reply(reply)
        if error is not None:
            raise RemoteError(op, *error)
        assert result is not None
        return result

    async def _exchange(self, request: bytes, max_reply_bytes: int | None = None) -> bytes:
        for attempt in (1, 2):
            session = await (self._acquire() if attempt == 1 else self._new_session())
            try:
                sealed = await self._post(self._call_url, session.seal(request), max_reply_bytes)
                reply = session.open(sealed)
            except (UnknownSession, SessionExpired) as exc:
                if attempt == 2:
                    raise
                if isinstance(exc, UnknownSession):
                    # The node restarted or took a new key: its other sessions are gone too.
                    self._idle.clear()
                logger.info("channel session %s refused (%s); new handshake", session.short_id, exc)
                continue
            self._release(session)
            self.peer_fingerprint = session.peer_fingerprint
            return reply
        raise AssertionError("unreachable")

    async def _acquire(self) -> Session:
        while self._idle:
            session = self._idle.pop()
            margin = min(5.0, 0.1 * session.limits.max_age_seconds)
            # A session of a key retired meanwhile (or unpinned) is not used again.
            if not session.near_expiry(margin) and self._pins.accepts(session.peer_fingerprint):
                return session
        return await self._new_session()

    def _release(self, session: Session) -> None:
        if len(self._idle) < self._max_idle and not self._closed:
            self._idle.append(session)

    async def _new_session(self) -> Session:
        for attempt in (1, 2):
            handshake = ClientHandshake(
                self._identity,
                self._pins,
                suite=self._suite,
                limits=self._limits,
                clock=self._clock,
            )
            hello, limit = handshake.hello(), HANDSHAKE_REPLY_BYTES
            server_hello = await self._post(self._handshake_url, hello, limit)
            if message_type(server_hello) == HELLO_RETRY:  # the node wants its cookie first
                retry = handshake.retry(server_hello)
                server_hello = await self._post(self._handshake_url, retry, limit)
            # Pin and signature are checked here, before anything but the hello has been sent.
            client_finish, session = handshake.finish(server_hello)
            try:
                await self._post(self._handshake_url, client_finish, limit)
            except UnknownSession:
                # The node forgot the handshake (it took a new key, or restarted) between
                # its ServerHello and this Finish: once more, from the start.
                if attempt == 2:
                    raise
                continue
            self.handshakes += 1
            logger.debug("channel session %s opened to %s", session.short_id, self.endpoint)
            if self.vet is not None:
                await self.vet(functools.partial(self._call_on, session), session.peer_fingerprint)
            return session
        raise AssertionError("unreachable")

    async def _call_on(self, session: Session, op: str, payload: JSONDict) -> JSONDict:
        """`op(payload)` over `session` itself (for `vet`; `call` picks its own session)."""
        request = encode_request(op, payload, current_trace.get())
        sealed = await self._post(self._call_url, session.seal(request), self._reply_limits.get(op))
        result, error = decode_reply(session.open(sealed))
        if error is not None:
            raise RemoteError(op, *error)
        assert result is not None
        return result

    async def _post(self, url: str, body: bytes, max_reply_bytes: int | None = None) -> bytes:
        """POST `body`; a throttled request was refused before the node did anything with
        it, so the same bytes are sent again when the node says."""
        limit = min(max_reply_bytes or self._max_reply, self._max_reply)
        for attempt in range(1, THROTTLED_ATTEMPTS + 1):
            try:
                return await self._post_once(url, body, limit)
            except Throttled as exc:
                if attempt == THROTTLED_ATTEMPTS:
                    raise
                await asyncio.sleep(min(exc.retry_after, MAX_RETRY_AFTER_SECONDS))
        raise AssertionError("unreachable")

    async def _post_once(self, url: str, body: bytes, max_reply_bytes: int) -> bytes:
        if self._http is None:
            connector = aiohttp.TCPConnector(keepalive_timeout=CLIENT_POOL_SECONDS)
            self._http = aiohttp.ClientSession(connector=connector)
        try:
            async with self._http.post(
                url,
                data=body,
                headers={"Content-Type": OCTET_STREAM},
                timeout=self._request_timeout,
            ) as response:
                data = await _read_limited(response.content, max_reply_bytes)
                if response.status in (200, 204):
                    return data
                raise self._refusal(url, response.status, data)
        except aiohttp.ClientError as exc:
            raise TransportError(f"{url}: {type(exc).__name__}: {exc}") from None

    def _refusal(self, url: str, status: int, data: bytes) -> ChannelError:
        try:
            body: Any = json.loads(data)
            code, message = body["error"], body["message"]
        except (ValueError, TypeError, KeyError):
            return TransportError(f"{url}: unexpected HTTP {status}")
        error_class = REFUSAL_CODES.get(code, TransportError)
        error = error_class(f"{url} refused: {str(message)[:500]}")
        retry_after = body.get("retryAfter")
        if isinstance(error, Throttled) and isinstance(retry_after, int | float):
            error.retry_after = max(0.0, float(retry_after))
        return error
