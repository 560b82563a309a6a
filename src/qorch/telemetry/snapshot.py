"""`qorch run --metrics-out FILE`: every component's metrics in one exposition.

In a cluster Prometheus scrapes the operator and each node's sidecar separately. The
embedded control plane has no Prometheus, so at the end of a run it writes what those
scrapes would have returned, in one file: the pipeline's registry plus, for each agent,
what its sidecar serves from the agent's stats folder. Families appear once each (several
nodes are samples of one family), so the file is valid Prometheus text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .sidecar import SPANS_DIR, AgentStatsCollector, SpanCounters, SpanForwarder
from .tracing import otlp_exporter


class _Registry(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def run_exposition(
    agent_stats_dirs: Mapping[tuple[str, str], str | Path],
    registry: CollectorRegistry = REGISTRY,
) -> bytes:
    """The pipeline's metrics and the agents' (by (namespace, node) -> stats folder).

    As each node's sidecar would, it first forwards the agents' spooled spans: to the OTLP
    endpoint when one is configured, else they are discarded (and counted).
    """
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_Registry(registry))
    if agent_stats_dirs:
        combined.register(AgentStatsCollector(agent_stats_dirs))
        sidecars = CollectorRegistry()
        counters = SpanCounters(sidecars)
        exporter = otlp_exporter()
        for (namespace, node), folder in agent_stats_dirs.items():
            labels = (namespace, node)
            SpanForwarder(
                Path(folder) / SPANS_DIR, exporter, labels, counters=counters
            ).forward_once()
        combined.register(_Registry(sidecars))
    return generate_latest(combined)


def write_metrics_file(
    path: str | Path,
    agent_stats_dirs: Mapping[tuple[str, str], str | Path],
    registry: CollectorRegistry = REGISTRY,
) -> Path:
    """Write `run_exposition(...)` to `path`; returns the path."""
    target = Path(path)
    target.write_bytes(run_exposition(agent_stats_dirs, registry))
    return target
