"""Observed state of QuantumNodes and EntanglementLinks, shared by both drivers."""

from __future__ import annotations

from qorch.api import EntanglementLink, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import now_rfc3339, set_condition
from qorch.api.entanglement_link import EntanglementLinkStatus
from qorch.api.quantum_node import QuantumNodeStatus
from qorch.qpu.transport import TIMEOUT, UNREACHABLE, AgentClient, AgentError

HEALTH_TIMEOUT_SECONDS = 5.0


async def check_node(
    node: QuantumNode, client: AgentClient, endpoint: str, allocated: int
) -> QuantumNodeStatus:
    """Ask the node's agent for its health; the answer becomes the node's status."""
    status = node.status.model_copy(deep=True)
    status.observed_generation = node.metadata.generation
    status.endpoint = endpoint
    status.allocated_qubits = allocated
    gen = node.metadata.generation
    try:
        health = await client.call("health", {}, timeout=HEALTH_TIMEOUT_SECONDS)
    except AgentError as exc:
        if status.phase != "Cordoned":
            status.phase = "Unreachable"
        # A refused identity (PeerKeyMismatch, UntrustedPeer...) keeps its own reason.
        reason = R.AGENT_UNREACHABLE if exc.code in (UNREACHABLE, TIMEOUT) else exc.code
        status.conditions = set_condition(
            status.conditions, R.READY, "False", reason, exc.message, gen
        )
        return status
    if health.get("qubits") != node.spec.qubits:
        msg = f"agent reports {health.get('qubits')} qubits, spec says {node.spec.qubits}"
        status.phase = "Degraded"
        status.conditions = set_condition(
            status.conditions, R.READY, "False", "SpecMismatch", msg, gen
        )
        return status
    if status.phase != "Cordoned":
        status.phase = "Ready"
    status.last_heartbeat = now_rfc3339()
    status.conditions = set_condition(
        status.conditions, R.READY, "True", R.AGENT_HEALTHY, f"agent at {endpoint} answers", gen
    )
    return status


def check_link(link: EntanglementLink, nodes: dict[str, QuantumNode]) -> EntanglementLinkStatus:
    """A link is Up when both of its nodes exist and are Ready."""
    status = link.status.model_copy(deep=True)
    status.observed_generation = link.metadata.generation
    gen = link.metadata.generation
    missing = [n for n in link.spec.nodes if n not in nodes]
    not_ready = [n for n in link.spec.nodes if n in nodes and nodes[n].status.phase != "Ready"]
    if missing:
        status.phase = "Down"
        msg = f"QuantumNode(s) {', '.join(missing)} do not exist"
        status.conditions = set_condition(
            status.conditions, R.READY, "False", R.NODE_MISSING, msg, gen
        )
    elif not_ready:
        status.phase = "Down"
        msg = f"QuantumNode(s) {', '.join(not_ready)} are not Ready"
        status.conditions = set_condition(
            status.conditions, R.READY, "False", R.NODE_NOT_READY, msg, gen
        )
    else:
        status.phase = "Up"
        status.conditions = set_condition(
            status.conditions, R.READY, "True", R.NODES_READY, "both nodes are Ready", gen
        )
    return status
