"""The options of `qorch telemetry-sidecar` and their defaults, apart from the sidecar: the
CLI registers every command's options, and must not import what only running this one needs
(the agent's channel, aiohttp, the span exporters)."""

from __future__ import annotations

import argparse
import os

from . import METRICS_PORT

DEFAULT_STATS_DIR = "/var/run/qorch/telemetry"
STALE_AFTER_SECONDS = 120.0
FORWARD_INTERVAL_SECONDS = 2.0
NAMESPACE_ENV = "QORCH_NODE_NAMESPACE"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `qorch telemetry-sidecar`."""
    parser.add_argument(
        "--node",
        default=os.environ.get("QORCH_NODE_NAME"),
        help="QuantumNode name (env QORCH_NODE_NAME)",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get(NAMESPACE_ENV, "default"),
        help=f"the node's namespace (env {NAMESPACE_ENV}, default: default)",
    )
    parser.add_argument(
        "--stats-dir",
        default=os.environ.get("QORCH_TELEMETRY_DIR", DEFAULT_STATS_DIR),
        help=f"folder shared with the agent (env QORCH_TELEMETRY_DIR, default {DEFAULT_STATS_DIR})",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address of /metrics")
    parser.add_argument("--port", type=int, default=METRICS_PORT, help="port of /metrics")
    parser.add_argument(
        "--interval",
        type=float,
        default=FORWARD_INTERVAL_SECONDS,
        help="seconds between span forwards",
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=STALE_AFTER_SECONDS,
        help="seconds without new stats before qorch_agent_up is 0",
    )
    return parser
