"""A `World` held in memory, whose agents answer from a script instead of running programs.

Each node's agent does what the test tells it for `run` (return canned counts, raise the
transport's AgentError, or hang until the pipeline gives up on it); `cancel` always
succeeds. Every call is recorded, so a test can say what was sent to which node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from qorch.agent_protocol import RunResult
from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import ConditionStatus, set_condition
from qorch.api.quantum_node import Calibration
from qorch.qpu.transport import AgentError

NAMESPACE = "default"
# How often a running job looks at its nodes in these tests.
WATCH_SECONDS = 0.002

#: What a node's agent does with a `run` payload.
Run = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class AgentCall:
    node: str
    op: str
    payload: dict[str, Any]
    timeout: float | None


@dataclass(frozen=True)
class Event:
    job: str
    type: str
    reason: str
    message: str


def make_node(
    name: str,
    qubits: int,
    *,
    phase: str = "Ready",
    reason: str = "",
    message: str = "",
    labels: dict[str, str] | None = None,
    **noise: float,
) -> QuantumNode:
    """A QuantumNode as the resource checks leave it: `phase`, and a Ready condition that
    agrees with it (`reason` and `message` explain a phase other than Ready)."""
    node = QuantumNode.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": f"uid-{name}",
                "labels": labels or {},
            },
            "spec": {"qubits": qubits, "noise": noise},
        }
    )
    set_phase(node, phase, reason, message)
    return node


def set_phase(node: QuantumNode, phase: str, reason: str = "", message: str = "") -> None:
    ready: ConditionStatus = "True" if phase == "Ready" else "False"
    node.status.phase = phase  # type: ignore[assignment]
    node.status.conditions = set_condition(
        node.status.conditions,
        R.READY,
        ready,
        reason or (R.AGENT_HEALTHY if ready == "True" else phase),
        message,
    )


def make_job(name: str, qasm: str, **spec: Any) -> DistributedJob:
    """A DistributedJob from its wire form; `spec` in camelCase, as a manifest writes it."""
    return DistributedJob.model_validate(
        {
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
            "spec": {"circuit": {"qasm": qasm}, **spec},
        }
    )


def result(
    payload: dict[str, Any], node: str, counts: dict[str, int], simulate_seconds: float = 0.001
) -> dict[str, Any]:
    """An agent's reply to the `run` of `payload`, with these counts."""
    return RunResult(
        program_id=payload["programId"],
        node=node,
        shots=payload["shots"],
        transpile_seconds=0.0,
        simulate_seconds=simulate_seconds,
        counts=dict(counts),
    ).wire()


class FakeAgent:
    """The AgentClient of one node: records each call and answers from the world's script."""

    def __init__(self, world: FakeWorld, node: str) -> None:
        self.world = world
        self.node = node

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        self.world.calls.append(AgentCall(self.node, op, payload, timeout))
        if op == "cancel":
            return {"cancelled": list(payload["programIds"]), "unknown": [], "finished": []}
        if op == "run":
            run = self.world.runs.get(self.node)
            if run is None:
                raise AssertionError(f"nothing scripted for a run on {self.node}")
            return await run(payload)
        raise AgentError("UnknownOperation", f"the fake agent does not know {op!r}")

    async def close(self) -> None:
        return None


class FakeWorld:
    """Nodes, links and ConfigMaps in one namespace; agents that answer from a script."""

    def __init__(self) -> None:
        self._nodes: dict[str, QuantumNode] = {}
        self._links: dict[str, EntanglementLink] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self.runs: dict[str, Run] = {}
        self.calls: list[AgentCall] = []
        self.events: list[Event] = []

    # -- arranging --------------------------------------------------------------------------

    def add_node(self, name: str, qubits: int, **kwargs: Any) -> QuantumNode:
        node = make_node(name, qubits, **kwargs)
        self._nodes[name] = node
        return node

    def node(self, name: str) -> QuantumNode:
        return self._nodes[name]

    def add_link(self, name: str, a: str, b: str, **spec: Any) -> EntanglementLink:
        """An Up link between `a` and `b`; `spec` in camelCase, as a manifest writes it."""
        link = EntanglementLink.model_validate(
            {
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
                "spec": {
                    "nodes": [a, b],
                    "fidelity": 0.95,
                    "generationRateHz": 1e6,
                    "successProbability": 0.5,
                    **spec,
                },
                "status": {"phase": "Up"},
            }
        )
        self._links[name] = link
        return link

    def remove_node(self, name: str) -> None:
        del self._nodes[name]

    def set_phase(self, name: str, phase: str, reason: str = "", message: str = "") -> None:
        set_phase(self._nodes[name], phase, reason, message)

    def calibrate(self, name: str, p01: float, p10: float, at: str) -> None:
        """The figures a calibration run would have written to the node's status."""
        self._nodes[name].status.calibration = Calibration(
            readout_error=(p01 + p10) / 2,
            readout_error_0to1=p01,
            readout_error_1to0=p10,
            measured_at=at,
        )

    def answer(self, node: str, counts: dict[str, int], simulate_seconds: float = 0.001) -> None:
        """The node's agent returns these counts for any program."""

        async def run(payload: dict[str, Any]) -> dict[str, Any]:
            return result(payload, node, counts, simulate_seconds)

        self.runs[node] = run

    def fail(self, node: str, error: AgentError) -> None:
        """The node's agent raises `error` for any program, as the transport reports it."""

        async def run(payload: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0)  # accepted, then lost
            raise error

        self.runs[node] = run

    def hang(self, node: str, meanwhile: Callable[[], None] = lambda: None) -> None:
        """The node's agent accepts the program, `meanwhile` happens, and no reply ever comes
        (until the pipeline stops waiting)."""

        async def run(payload: dict[str, Any]) -> dict[str, Any]:
            meanwhile()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        self.runs[node] = run

    # -- looking ----------------------------------------------------------------------------

    def sent(self, op: str) -> list[AgentCall]:
        return [c for c in self.calls if c.op == op]

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    # -- the World protocol -----------------------------------------------------------------

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return [n for n in self._nodes.values() if n.metadata.namespace == namespace]

    def links(self, namespace: str) -> list[EntanglementLink]:
        return [x for x in self._links.values() if x.metadata.namespace == namespace]

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return self.config_maps.get((namespace, name), {}).get(key)

    def agent(self, node: QuantumNode) -> FakeAgent:
        return FakeAgent(self, node.metadata.name)

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(job.metadata.name, type_, reason, message))
