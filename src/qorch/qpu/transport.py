"""The one seam between the pipeline and QPU agents: `call(op, payload) -> reply`.

Every call travels over the post-quantum authenticated channel (qorch.channel): the
pipeline holds the operator's identity and pins each node's public key; an agent answers
only the operator's key.
"""

from __future__ import annotations

from typing import Any, Protocol

from qorch.channel import ChannelError, ChannelTimeout, RemoteError, TransportError
from qorch.channel.http import ChannelClient
from qorch.channel.identity import Identity


class AgentError(Exception):
    """The agent answered with an error, or could not be reached; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


TIMEOUT = "Timeout"
UNREACHABLE = "Unreachable"
CANCELLED = "Cancelled"  # the program was cancelled (job deleted or re-routed)


class AgentClient(Protocol):
    """What the pipeline needs from an agent connection."""

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class SecureAgentClient:
    """A channel client whose failures are AgentErrors with a code the pipeline can act on."""

    def __init__(self, endpoint: str, identity: Identity, pinned_key: bytes) -> None:
        self.endpoint = endpoint
        self._channel = ChannelClient(endpoint, identity, pinned_key, timeout=None)

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await self._channel.call(op, payload, timeout=timeout)
        except RemoteError as exc:
            raise AgentError(exc.error_type, exc.remote_message) from exc
        except ChannelTimeout as exc:
            raise AgentError(TIMEOUT, str(exc)) from exc
        except TransportError as exc:
            raise AgentError(UNREACHABLE, str(exc)) from exc
        except ChannelError as exc:
            raise AgentError(type(exc).__name__, str(exc)) from exc

    async def close(self) -> None:
        await self._channel.close()


class UnpinnedAgent:
    """A node whose key is not pinned: nothing is sent to it, no trust on first use."""

    def __init__(self, node: str) -> None:
        self.node = node

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        raise AgentError(
            "IdentityNotPinned",
            f"QuantumNode {self.node!r} has no spec.identity.publicKey; qorch talks only to"
            " nodes whose key is pinned",
        )

    async def close(self) -> None:
        return None


class AgentConnections:
    """One channel per (endpoint, pinned key), shared by every caller of the process."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._clients: dict[tuple[str, bytes], SecureAgentClient] = {}

    def get(self, node: str, endpoint: str, pinned_key: bytes | None) -> AgentClient:
        if pinned_key is None:
            return UnpinnedAgent(node)
        key = (endpoint, pinned_key)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = SecureAgentClient(endpoint, self.identity, pinned_key)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
