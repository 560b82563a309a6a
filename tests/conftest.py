"""Shared fixtures: real QPU agents as child processes on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import pytest

from qorch.api import QuantumNode
from qorch.local.agents import AgentProcess

@pytest.fixture
async def start_agent() -> AsyncIterator[Callable[[QuantumNode], Awaitable[AgentProcess]]]:
    """Start `qorch qpu-agent` processes; all are stopped after the test."""
    started: list[AgentProcess] = []

    async def start(node: QuantumNode) -> AgentProcess:
        agent = await AgentProcess.start(node)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        await agent.stop()
