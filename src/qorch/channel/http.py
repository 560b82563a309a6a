"""The channel over HTTP (aiohttp).

    POST {prefix}/handshake   body ClientHello -> 200 ServerHello
                              body ClientFinish -> 204
    POST {prefix}/call        body request record -> 200 reply record

Bodies are `application/octet-stream`. A refusal (bad record, unknown or
expired session, untrusted client...) is a 4xx with a JSON body
`{"error": "<ChannelError subclass>", "message": "..."}` that names no secret
and no plaintext; the client raises that class. An exception in the handler is
not a refusal: it travels back encrypted as an error reply and the client
raises `RemoteError`.

The server refuses a record on an unknown or expired session before the handler
runs, so the client retries such a call once on a fresh session. An on-path
attacker could forge that refusal after dropping a real reply, exactly as it
could drop the reply and let the caller retry: ops must be idempotent either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web

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
    TransportError,
    UnknownSession,
)
from qorch.channel.handshake import (
    CLIENT_FINISH,
    CLIENT_HELLO,
    ClientHandshake,
    PendingSession,
    ServerHandshake,
    finish_session_id,
    message_type,
)
from qorch.channel.identity import Identity
from qorch.channel.session import Clock, RecordHeader, Session, SessionLimits
from qorch.channel.suite import Suite

logger = logging.getLogger(__name__)

Handler = Callable[[str, JSONDict], Awaitable[JSONDict]]

DEFAULT_PREFIX = "/v1/channel"
OCTET_STREAM = "application/octet-stream"
MAX_BODY_BYTES = 64 * 1024 * 1024


class _BodyTooLarge(MalformedMessage):
    pass


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal_status(exc: ChannelError) -> int:
    if isinstance(exc, _BodyTooLarge):
        return 413
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
    """

    def __init__(
        self,
        identity: Identity,
        trusted_client_keys: Iterable[bytes],
        handler: Handler,
        *,
        limits: SessionLimits | None = None,
        prefix: str = DEFAULT_PREFIX,
        handshake_timeout: float = 10.0,
        max_sessions: int = 1024,
        max_pending_handshakes: int = 256,
        max_body_bytes: int = MAX_BODY_BYTES,
        suite: Suite | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._handshake = ServerHandshake(
            identity, trusted_client_keys, suite=suite, limits=limits, clock=clock
        )
        self._handler = handler
        self._prefix = prefix.rstrip("/")
        self._handshake_timeout = handshake_timeout
        self._max_sessions = max_sessions
        self._max_pending = max_pending_handshakes
        self._max_body = max_body_bytes
        self._clock = clock
        # Insertion order is creation order, so the oldest entries are evicted first.
        self._pending: OrderedDict[bytes, PendingSession] = OrderedDict()
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._busy: set[bytes] = set()
        self._counters = {"handshakes": 0, "refusals": 0, "calls": 0, "handler_errors": 0}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{self._prefix}/handshake", self._handle_handshake)
        app.router.add_post(f"{self._prefix}/call", self._handle_call)

    @property
    def stats(self) -> dict[str, int]:
        """Counters for metrics: handshakes, refusals, calls, handler errors, live sessions."""
        return {**self._counters, "sessions": len(self._sessions), "pending": len(self._pending)}

    async def _handle_handshake(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await _read_limited(request.content, self._max_body)
            kind = message_type(body)
            if kind == CLIENT_HELLO:
                return self._hello(body)
            if kind == CLIENT_FINISH:
                return self._finish(body)
            raise MalformedMessage("not a handshake message")
        except ChannelError as exc:
            return self._refuse(exc, request)

    def _hello(self, body: bytes) -> web.Response:
        self._sweep()
        server_hello, pending = self._handshake.respond(body)
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
        try:
            body = await _read_limited(request.content, self._max_body)
            session = self._session_for(RecordHeader.parse(body).session_id)
            if session.session_id in self._busy:
                raise OutOfOrderMessage(
                    f"session {session.short_id} already has a request in flight"
                )
            plaintext = session.open(body)
        except ChannelError as exc:
            return self._refuse(exc, request)
        self._busy.add(session.session_id)
        try:
            reply = await self._dispatch(plaintext)
            return web.Response(body=session.seal(reply), content_type=OCTET_STREAM)
        except BaseException:
            # The reply was never sealed: the session is out of step, drop it.
            self._sessions.pop(session.session_id, None)
            raise
        finally:
            self._busy.discard(session.session_id)

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

    def _refuse(self, exc: ChannelError, request: web.Request) -> web.Response:
        self._counters["refusals"] += 1
        level = (
            logging.INFO if isinstance(exc, UnknownSession | SessionExpired) else logging.WARNING
        )
        logger.log(level, "channel refused %s from %s: %s", request.path, request.remote, exc)
        return web.json_response(
            {"error": _refusal_code(exc), "message": str(exc)},
            status=_refusal_status(exc),
        )


class ChannelClient:
    """Operator side: `await client.call(op, payload)` to one node, over pooled sessions.

    The handshake runs lazily on the first call and again whenever a session
    nears its limits. Several calls may run concurrently: each takes its own
    session (one request in flight per session keeps sequence numbers strict).
    """

    def __init__(
        self,
        endpoint: str,
        identity: Identity,
        pinned_server_key: bytes,
        *,
        timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        limits: SessionLimits | None = None,
        max_idle_sessions: int = 4,
        max_reply_bytes: int = MAX_BODY_BYTES,
        prefix: str = DEFAULT_PREFIX,
        http: aiohttp.ClientSession | None = None,
        suite: Suite | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        base = endpoint.rstrip("/") + prefix.rstrip("/")
        self.endpoint = endpoint
        self._handshake_url, self._call_url = f"{base}/handshake", f"{base}/call"
        self._identity = identity
        self._pinned = bytes(pinned_server_key)
        self._timeout = timeout
        # Only the connection has a timeout of its own: how long a reply may take is the
        # call's `timeout` alone (aiohttp's default would cap every request at 300 s).
        self._request_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._limits = limits
        self._max_idle = max_idle_sessions
        self._max_reply = max_reply_bytes
        self._suite = suite
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        self._idle: list[Session] = []
        self._closed = False
        self.handshakes = 0
        # Fail at construction, not at the first call, on a malformed pin or identity.
        ClientHandshake(identity, self._pinned, suite=suite)

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
        applies to how long the node may take) and RemoteError when the node's
        handler raised.
        """
        if self._closed:
            raise TransportError("channel client is closed")
        request = encode_request(op, payload, trace if trace is not None else current_trace.get())
        limit = self._timeout if timeout is None else timeout
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                reply = await self._exchange(request)
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

    async def _exchange(self, request: bytes) -> bytes:
        for attempt in (1, 2):
            session = await self._acquire()
            try:
                reply = session.open(await self._post(self._call_url, session.seal(request)))
            except (UnknownSession, SessionExpired) as exc:
                if attempt == 2:
                    raise
                logger.info("channel session %s refused (%s); new handshake", session.short_id, exc)
                continue
            self._release(session)
            return reply
        raise AssertionError("unreachable")

    async def _acquire(self) -> Session:
        while self._idle:
            session = self._idle.pop()
            margin = min(5.0, 0.1 * session.limits.max_age_seconds)
            if not session.near_expiry(margin):
                return session
        return await self._new_session()

    def _release(self, session: Session) -> None:
        if len(self._idle) < self._max_idle and not self._closed:
            self._idle.append(session)

    async def _new_session(self) -> Session:
        handshake = ClientHandshake(
            self._identity, self._pinned, suite=self._suite, limits=self._limits, clock=self._clock
        )
        server_hello = await self._post(self._handshake_url, handshake.hello())
        # Pin and signature are checked here, before anything but the hello has been sent.
        client_finish, session = handshake.finish(server_hello)
        await self._post(self._handshake_url, client_finish)
        self.handshakes += 1
        logger.debug("channel session %s opened to %s", session.short_id, self.endpoint)
        return session

    async def _post(self, url: str, body: bytes) -> bytes:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.post(
                url,
                data=body,
                headers={"Content-Type": OCTET_STREAM},
                timeout=self._request_timeout,
            ) as response:
                data = await _read_limited(response.content, self._max_reply)
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
        return error_class(f"{url} refused: {str(message)[:500]}")
