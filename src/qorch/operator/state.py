"""What the operator process holds in memory, created once at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from qorch.pipeline.job import PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.settings import Settings

from .world import AgentPool


@dataclass
class OperatorState:
    settings: Settings
    reservations: Reservations = field(default_factory=Reservations)
    agents: AgentPool = field(default_factory=AgentPool)
    pipeline_settings: PipelineSettings = field(default_factory=PipelineSettings)


def plain(body: Any) -> dict[str, Any]:
    """A kopf body (nested read-only mappings) as plain JSON data."""
    return json.loads(json.dumps(body, default=dict))
