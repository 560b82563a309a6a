"""The one seam between the pipeline and QPU agents: `call(op, payload) -> reply`.

This module is the plain HTTP binding (JSON over `POST /v1/<op>`); the authenticated
channel implements the same interface.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class AgentError(Exception):
    """The agent answered with an error, or could not be reached."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentClient(Protocol):
    """What the pipeline needs from an agent connection."""

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class PlainHttpClient:
    """JSON over HTTP, no authentication: the transport of trusted loopback set-ups."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.endpoint}/v1/{op}"
        try:
            async with self._session.post(
                url, json=payload, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError("Unreachable", f"{url}: {exc or type(exc).__name__}") from exc
        if resp.status != 200:
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise AgentError(err.get("code", f"HTTP{resp.status}"), err.get("message", str(body)))
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def plain_routes(handler: Handler) -> list[web.RouteDef]:
    """Server side of the plain binding: every `POST /v1/<op>` goes to handler(op, payload)."""

    async def dispatch(request: web.Request) -> web.Response:
        op = request.match_info["op"]
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "BadRequest", "body must be a JSON object")
        try:
            return web.json_response(await handler(op, payload))
        except AgentError as exc:
            return _error(422, exc.code, exc.message)

    return [web.post("/v1/{op}", dispatch)]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
