"""Shared by the QPU and pipeline tests: a noise that makes the readout asymmetric, and an
agent reached without the network."""

from __future__ import annotations

from typing import Any

from qorch.qpu.agent import QpuAgent

# Relaxation during a 5 us measurement with T1 = 50 us empties |1> with 1 - e^-0.1 = 0.095.
RELAXING = {
    "readoutError": 0.1,
    "t1Microseconds": 50,
    "t2Microseconds": 50,
    "measureNanoseconds": 5000,
}


class InProcess:
    """The agent's own request handler, without the network in between."""

    def __init__(self, agent: QpuAgent) -> None:
        self.agent = agent

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.agent.handle(op, payload)

    async def close(self) -> None:
        return None
