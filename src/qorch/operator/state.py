"""What the operator process holds in memory, created once at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import kopf

from qorch.api.phases import LinkPhases, NodePhases
from qorch.pipeline.job import ExactOutputs, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.qpu.transport import AgentConnections
from qorch.settings import Settings

from .identity import OperatorKeys


@dataclass
class OperatorState:
    settings: Settings
    agents: AgentConnections
    # The operator's key and, while it rotates, its next one: what new agents trust.
    operator_keys: OperatorKeys
    reservations: Reservations = field(default_factory=Reservations)
    pipeline_settings: PipelineSettings = field(default_factory=PipelineSettings)
    # Shared by every job's pipeline: one simulation process, one bound on held outputs.
    exact_outputs: ExactOutputs = field(default_factory=ExactOutputs)
    # Public keys of the `aer` nodes' identities, as recorded on their Deployments.
    node_keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    # Set when the placed jobs' reservations have been read back after a start.
    reservations_restored: bool = False


def plain(body: Any) -> dict[str, Any]:
    """A kopf body (nested read-only mappings) as plain JSON data."""
    return json.loads(json.dumps(body, default=dict))


def announce_phase(body: Any, old: str | None, new: str, reason: str, message: str) -> None:
    """An Event for each phase transition of a node or link, Warning when it leaves Ready/Up."""
    if old == new:
        return
    healthy = new in (NodePhases.READY, LinkPhases.UP)
    kopf.event(
        body,
        type="Normal" if healthy else "Warning",
        reason=reason,
        message=f"{old or 'new'} -> {new}: {message}"[:1024],
    )
