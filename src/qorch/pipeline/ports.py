"""What the pipeline needs from its driver (the operator or the embedded control plane)."""

from __future__ import annotations

from typing import Protocol

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.qpu.transport import AgentClient


class World(Protocol):
    """The cluster as the pipeline sees it: read-only resources, agent connections, events."""

    def nodes(self, namespace: str) -> list[QuantumNode]:
        """QuantumNodes of the namespace, with their current status."""
        ...

    def links(self, namespace: str) -> list[EntanglementLink]:
        """EntanglementLinks of the namespace, with their current status."""
        ...

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        """A ConfigMap's value, or None when the ConfigMap or key does not exist."""
        ...

    def agent(self, node: QuantumNode) -> AgentClient:
        """A connection to the node's agent (cached by the driver)."""
        ...

    def address(self, node: QuantumNode) -> tuple[str, tuple[bytes, ...]]:
        """The node agent's endpoint and the keys pinned for it now, for other agents to
        reach it (none when it has no pinned key)."""
        ...

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes-style Event about the job."""
        ...
