"""The pipeline's World over the Kubernetes API: kopf indices, ConfigMaps, Events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.qpu.transport import AgentClient, PlainHttpClient
from qorch.settings import Settings

from . import kube
from .agent_workload import agent_endpoint


class AgentPool:
    """One connection per agent endpoint, shared by every handler of the process."""

    def __init__(self) -> None:
        self._clients: dict[str, PlainHttpClient] = {}

    def get(self, endpoint: str) -> AgentClient:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = PlainHttpClient(endpoint)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


def _values(index: Mapping[Any, Any], namespace: str) -> list[Any]:
    return list(index.get(namespace, ()))


class KubeWorld:
    """Nodes and links come from kopf's in-memory indices, kept current by its watches."""

    def __init__(
        self,
        nodes: Mapping[str, Any],
        links: Mapping[str, Any],
        agents: AgentPool,
        settings: Settings,
    ) -> None:
        self._nodes = nodes
        self._links = links
        self._agents = agents
        self._settings = settings

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return _values(self._nodes, namespace)

    def links(self, namespace: str) -> list[EntanglementLink]:
        return _values(self._links, namespace)

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return await kube.read_config_map_key(namespace, name, key)

    def agent(self, node: QuantumNode) -> AgentClient:
        return self._agents.get(agent_endpoint(node, self._settings))

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
        kopf.event(ref, type=type_, reason=reason, message=message[:1024])
