"""The one seam between the pipeline and QPU agents: `call(op, payload) -> reply`, the
wire form of the requests and replies of qorch.agent_protocol (whose `ask` sends a typed
request through it and reads the typed reply).

Every call travels over the post-quantum authenticated channel (qorch.channel): the
pipeline holds the operator's identity and pins each node's public key (two, each in its
window, while the node's key rotates); an agent answers only the operator keys it trusts.

A `run` may last as long as its job allows, but no single exchange with the agent does:
the agent answers a run after at most `ProgressPolling.wait_seconds` with the program's
progress, and the client follows with `wait` calls until the result comes. A call's
`timeout` is then the program's whole budget, while an agent that stops answering is
noticed within `ProgressPolling.liveness_seconds`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from qorch.agent_protocol import (
    MAX_REPLY_BYTES,
    RUN_REPLY,
    AgentError,
    Caller,
    ErrorCode,
    Op,
    RunProgress,
    RunRequest,
    RunResult,
    WaitRequest,
    field_errors,
)
from qorch.channel import ChannelError, ChannelTimeout, RemoteError, TransportError
from qorch.channel.errors import SessionRefused
from qorch.channel.http import ChannelClient, SessionCall, SessionVet
from qorch.channel.identity import Identity
from qorch.channel.pins import KeyPins

__all__ = [
    "AgentClient",
    "AgentConnections",
    "AgentError",
    "ProgressPolling",
    "RefusingAgent",
    "SecureAgentClient",
    "UnpinnedAgent",
]


@dataclass(frozen=True)
class ProgressPolling:
    """How a long `run` is followed. The agent answers each exchange after at most
    `wait_seconds` (with the result, or the program's progress); an exchange unanswered
    after `liveness_seconds` means the agent is gone. Between the two lies the time the
    agent may be deaf while a chunk of shots holds its interpreter (about half a second,
    see qorch.qpu.agent.CHUNK_SECONDS), or a large program is uploaded."""

    wait_seconds: float = 5.0
    liveness_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.wait_seconds < self.liveness_seconds:
            raise ValueError("polling needs 0 < wait_seconds < liveness_seconds")


class AgentClient(Caller, Protocol):
    """What the pipeline needs from an agent connection: a `run` answers with the program's
    result, however long it takes within `timeout`."""

    async def close(self) -> None: ...


def authenticated_fingerprint(client: object) -> str | None:
    """Fingerprint of the node key that authenticated the client's last call, if it has a
    channel (a wrapper passes the attribute on)."""
    value = getattr(client, "peer_fingerprint", None)
    return value if isinstance(value, str) else None


def agent_error(exc: RemoteError | ChannelError) -> AgentError:
    """A channel's failure as the AgentError the pipeline acts on."""
    if isinstance(exc, RemoteError):
        return AgentError(exc.error_type, exc.remote_message)
    if isinstance(exc, ChannelTimeout):
        return AgentError(ErrorCode.TIMEOUT, str(exc))
    if isinstance(exc, TransportError):
        return AgentError(ErrorCode.UNREACHABLE, str(exc))
    if isinstance(exc, SessionRefused):
        return AgentError(exc.reason, str(exc))
    return AgentError(type(exc).__name__, str(exc))


class SecureAgentClient:
    """A channel client whose failures are AgentErrors with a code the pipeline can act on.
    A `run` is followed by progress polling (see `ProgressPolling`)."""

    def __init__(
        self,
        endpoint: str,
        identity: Identity,
        pinned_key: bytes | KeyPins,
        *,
        polling: ProgressPolling | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.polling = polling or ProgressPolling()
        self._channel = ChannelClient(
            endpoint, identity, pinned_key, timeout=None, reply_limits=MAX_REPLY_BYTES
        )

    @property
    def pins(self) -> KeyPins:
        return self._channel.pins

    def pin(self, pins: bytes | KeyPins) -> None:
        """New pins for the node from the next handshake on; calls in flight (a `run` being
        followed) carry on over them."""
        self._channel.pin(pins)

    @property
    def peer_fingerprint(self) -> str | None:
        """The node key that authenticated the last call's session."""
        return self._channel.peer_fingerprint

    def vet_sessions(self, vet: SessionVet | None) -> None:
        """Check every new session with `vet` before a call uses it (None: no check)."""
        self._channel.vet = vet

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        if op == Op.RUN:
            # Read to be followed; a malformed run is refused here as the agent would.
            return await self._run(RunRequest.from_wire(payload), timeout)
        return await self._call(op, payload, timeout)

    async def _run(self, run: RunRequest, budget: float | None) -> dict[str, Any]:
        """`run`, then `wait` until the result: each exchange bounded by the liveness
        limit, all of them together by `budget`."""
        loop = asyncio.get_running_loop()
        deadline = None if budget is None else loop.time() + budget
        program_id = run.program_id
        request: RunRequest | WaitRequest = run
        report: RunProgress | None = None  # the latest progress the agent sent
        while True:
            wait, limit = self.polling.wait_seconds, self.polling.liveness_seconds
            budget_bound = False
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise AgentError(ErrorCode.TIMEOUT, _still_running(program_id, budget, report))
                wait, budget_bound = min(wait, left), left <= limit
                limit = min(limit, left)
            op = request.operation()
            exchange = request.model_copy(update={"wait_seconds": wait})
            try:
                raw = await self._call(op, exchange.wire(), limit)
            except AgentError as exc:
                if exc.code == ErrorCode.TIMEOUT and budget_bound:
                    raise AgentError(
                        ErrorCode.TIMEOUT, _still_running(program_id, budget, report)
                    ) from exc
                if exc.code == ErrorCode.TIMEOUT:
                    raise AgentError(
                        ErrorCode.UNREACHABLE,
                        f"{self.endpoint} stopped answering: no reply to {op} of program"
                        f" {program_id} within {limit:g} s{_progress(report)}",
                    ) from exc
                if exc.code == ErrorCode.UNKNOWN_PROGRAM:
                    raise AgentError(
                        ErrorCode.UNREACHABLE,
                        f"{self.endpoint} no longer holds program {program_id} (the agent"
                        f" restarted, or dropped its result){_progress(report)}",
                    ) from exc
                raise
            try:
                reply = RUN_REPLY.validate_python(raw)
            except ValidationError as exc:
                raise AgentError(ErrorCode.BAD_REPLY, field_errors(exc, (f"{op} reply",))) from None
            if isinstance(reply, RunResult):
                return raw
            report = reply
            request = WaitRequest(program_id=program_id)

    async def _call(
        self, op: str, payload: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        try:
            return await self._channel.call(op, payload, timeout=timeout)
        except (RemoteError, ChannelError) as exc:
            raise agent_error(exc) from exc

    async def close(self) -> None:
        await self._channel.close()


class SessionCaller:
    """A call over one channel session (what a session `vet` is given), with the failures
    a SecureAgentClient gives."""

    def __init__(self, call: SessionCall, fingerprint: str) -> None:
        self._call = call
        self.peer_fingerprint = fingerprint

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                return await self._call(op, payload)
        except (RemoteError, ChannelError) as exc:
            raise agent_error(exc) from exc
        except TimeoutError:
            raise AgentError(ErrorCode.TIMEOUT, f"{op}: no reply within {timeout:g} s") from None

    async def close(self) -> None:
        return None


def _progress(report: RunProgress | None) -> str:
    if report is None:
        return ""
    return f" (last heard: {report.state}, {report.shots_done}/{report.shots_total} shots done)"


def _still_running(program_id: str, budget: float | None, report: RunProgress | None) -> str:
    return (
        f"program {program_id} was not finished when the call's {budget:g} s ran out"
        f"{_progress(report)}"
    )


class RefusingAgent:
    """A node qorch sends nothing to, and the error every call gets instead."""

    peer_fingerprint = None

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        raise AgentError(self.code, self.message)

    async def close(self) -> None:
        return None


class UnpinnedAgent(RefusingAgent):
    """A node whose key is not pinned: nothing is sent to it, no trust on first use."""

    def __init__(self, node: str) -> None:
        super().__init__(
            ErrorCode.IDENTITY_NOT_PINNED,
            f"QuantumNode {node!r} has no spec.identity.publicKey; qorch talks only to"
            " nodes whose key is pinned",
        )
        self.node = node


class AgentConnections:
    """One channel per node (and endpoint), shared by every caller of the process. When the
    node's pins change (its key rotates) the same channel takes them up, so a program
    being followed over it carries on across the rotation."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._clients: dict[tuple[str, str, str], SecureAgentClient] = {}

    def get(
        self, node: str, endpoint: str, pins: bytes | KeyPins | None, namespace: str = ""
    ) -> AgentClient:
        if pins is None:
            return UnpinnedAgent(node)
        pins = KeyPins.of(pins)
        key = (namespace, node, endpoint)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = SecureAgentClient(endpoint, self.identity, pins)
        elif client.pins != pins:
            client.pin(pins)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
