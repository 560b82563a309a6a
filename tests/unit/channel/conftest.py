"""Shared fixtures: identities, a controllable clock, and a node served on loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from qorch.channel.identity import Identity


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def operator_identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="session")
def node_identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="session")
def stranger_identity() -> Identity:
    """A well-formed key nobody trusts or pins."""
    return Identity.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Loopback:
    """A running aiohttp app on 127.0.0.1 and the request paths it has seen."""

    url: str
    paths: list[str] = field(default_factory=list)


@asynccontextmanager
async def serve(
    add_routes: Callable[[web.Application], None], **runner_options: Any
) -> AsyncIterator[Loopback]:
    """`runner_options` go to web.AppRunner (e.g. `ServerLimits.runner_options()`)."""
    seen: list[str] = []

    @web.middleware
    async def record_path(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[record_path])
    add_routes(app)
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # ephemeral port
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Loopback(f"http://{host}:{port}", seen)
    finally:
        await runner.cleanup()


@pytest.fixture
def loopback() -> Callable[..., AbstractAsyncContextManager[Loopback]]:
    """`async with loopback(server.add_routes) as node:` serves on an ephemeral port."""
    return serve
