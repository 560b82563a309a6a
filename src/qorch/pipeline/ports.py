"""What the pipeline needs from its driver (the operator or the embedded control plane)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

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


@dataclass(frozen=True)
class QueueRequest:
    """What a job asks an external queue for: the resources of its plan on idle nodes, as
    reservation keys (`qn/<ns>/<node>` qubits, `qlink/<ns>/<link>` pairs per second), and the
    nodes a plan on one node may be moved to."""

    want: dict[str, float]
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class QueueDecision:
    """Admitted with what was granted (reservation keys; the placement follows them), or
    waiting, or rejected, with a condition reason and message either way."""

    state: Literal["admitted", "waiting", "rejected"]
    reason: str = ""
    message: str = ""
    granted: dict[str, float] = field(default_factory=dict)


class ExternalQueue(Protocol):
    """A queue outside the operator (Kueue) that decides when a job may hold resources and
    which; the operator's own book only follows it."""

    def manages(self, job: DistributedJob) -> bool:
        """Whether this job is admitted by the external queue."""
        ...

    async def admission(self, job: DistributedJob, request: QueueRequest) -> QueueDecision:
        """Ask (once) and look up (every time) whether the job is admitted."""
        ...

    def evicted(self, job: DistributedJob) -> str | None:
        """Why an admitted job must stop now (preempted, deactivated), or None."""
        ...

    async def requeue(self, job: DistributedJob) -> None:
        """The paused job gave its resources back: it waits for admission again."""
        ...
