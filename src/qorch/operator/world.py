"""The pipeline's World over the Kubernetes API: kopf indices, ConfigMaps, Events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.pipeline.identity import accepted_keys, node_agent
from qorch.qpu.transport import AgentClient
from qorch.telemetry.instrument import instrument_agent_client

from . import kube
from .agent_workload import agent_endpoint
from .state import OperatorState


def agent_client(state: OperatorState, node: QuantumNode) -> AgentClient:
    """The channel to the node's agent, pinned to its spec keys or its Secret's key."""
    ns, name = node.metadata.namespace, node.metadata.name
    client = node_agent(
        state.agents,
        node,
        agent_endpoint(node, state.settings),
        state.node_keys.get((ns, name)),
    )
    return instrument_agent_client(ns, name, client)


def agent_address(state: OperatorState, node: QuantumNode) -> tuple[str, tuple[bytes, ...]]:
    """Where other agents reach the node's agent, and the keys pinned for it now."""
    ns, name = node.metadata.namespace, node.metadata.name
    return agent_endpoint(node, state.settings), accepted_keys(
        node, state.node_keys.get((ns, name))
    )


def _values(index: Mapping[Any, Any], namespace: str) -> list[Any]:
    return list(index.get(namespace, ()))


class KubeWorld:
    """Nodes and links come from kopf's in-memory indices, kept current by its watches."""

    def __init__(
        self,
        nodes: Mapping[str, Any],
        links: Mapping[str, Any],
        state: OperatorState,
    ) -> None:
        self._nodes = nodes
        self._links = links
        self._state = state

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return _values(self._nodes, namespace)

    def links(self, namespace: str) -> list[EntanglementLink]:
        return _values(self._links, namespace)

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return await kube.read_config_map_key(namespace, name, key)

    def agent(self, node: QuantumNode) -> AgentClient:
        return agent_client(self._state, node)

    def address(self, node: QuantumNode) -> tuple[str, tuple[bytes, ...]]:
        return agent_address(self._state, node)

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        ref = {
            "apiVersion": job.api_version,
            "kind": job.kind,
            "metadata": {
                "name": job.metadata.name,
                "namespace": job.metadata.namespace,
                "uid": job.metadata.uid,
            },
        }
        kopf.event(cast(kopf.Body, ref), type=type_, reason=reason, message=message[:1024])
