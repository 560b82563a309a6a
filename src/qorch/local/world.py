"""The embedded control plane's view of the world: an in-memory store, agents on loopback."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from qorch.api import DistributedJob, EntanglementLink, QuantumNode
from qorch.api.base import now_rfc3339
from qorch.api.manifests import Manifests
from qorch.channel.identity import Identity
from qorch.pipeline.identity import accepted_keys, node_agent
from qorch.qpu.transport import AgentClient, AgentConnections


@dataclass(frozen=True)
class Event:
    """A Kubernetes-style Event, kept in memory."""

    object: str
    type: str
    reason: str
    message: str
    time: str


def ref(obj: QuantumNode | EntanglementLink) -> tuple[str, str]:
    return (obj.metadata.namespace, obj.metadata.name)


class LocalWorld:
    """Resources by (namespace, name), as the API server would hold them."""

    def __init__(self, manifests: Manifests, identity: Identity) -> None:
        self._nodes = {(n.metadata.namespace, n.metadata.name): n for n in manifests.nodes}
        self._links = {(x.metadata.namespace, x.metadata.name): x for x in manifests.links}
        self.jobs = {(j.metadata.namespace, j.metadata.name): j for j in manifests.jobs}
        self._config_maps = manifests.config_maps
        # By (namespace, name), as every object here: names repeat across namespaces.
        self.endpoints: dict[tuple[str, str], str] = {}
        self.node_keys: dict[tuple[str, str], bytes] = {}  # keys of the agents qorch started
        self.connections = AgentConnections(identity)
        self.events: list[Event] = []
        created = now_rfc3339()
        objects: list[QuantumNode | EntanglementLink | DistributedJob] = [
            *manifests.nodes,
            *manifests.links,
            *manifests.jobs,
        ]
        for obj in objects:  # as the API server creates them, whatever the manifest says
            # A status would skip steps (a job "admitted" skips its sanitizer and
            # signature), a uid would name a holder of a used nonce (a replay).
            obj.status = type(obj.status)()
            obj.metadata.uid = str(uuid.uuid4())
            obj.metadata.creation_timestamp = created

    def all_nodes(self) -> list[QuantumNode]:
        return list(self._nodes.values())

    def all_links(self) -> list[EntanglementLink]:
        return list(self._links.values())

    # World protocol -------------------------------------------------------------------------

    def nodes(self, namespace: str) -> list[QuantumNode]:
        return [n for (ns, _), n in self._nodes.items() if ns == namespace]

    def links(self, namespace: str) -> list[EntanglementLink]:
        return [x for (ns, _), x in self._links.items() if ns == namespace]

    async def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        return self._config_maps.get((namespace, name), {}).get(key)

    def agent(self, node: QuantumNode) -> AgentClient:
        from qorch.telemetry.instrument import instrument_agent_client  # with the pipeline

        client = node_agent(
            self.connections, node, self.endpoint_of(node), self.node_keys.get(ref(node))
        )
        return instrument_agent_client(node.metadata.namespace, node.metadata.name, client)

    def address(self, node: QuantumNode) -> tuple[str, tuple[bytes, ...]]:
        return self.endpoint_of(node), accepted_keys(node, self.node_keys.get(ref(node)))

    def event(self, job: DistributedJob, type_: str, reason: str, message: str) -> None:
        self.events.append(
            Event(f"{job.kind}/{job.metadata.name}", type_, reason, message, now_rfc3339())
        )

    # ----------------------------------------------------------------------------------------

    def endpoint_of(self, node: QuantumNode) -> str:
        if node.spec.backend.type == "external":
            assert node.spec.backend.endpoint is not None
            return node.spec.backend.endpoint
        return self.endpoints[ref(node)]

    async def close(self) -> None:
        await self.connections.close()
