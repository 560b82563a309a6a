"""The QPU agent's side of telemetry: a stats file and a span spool for its sidecar.

The agent holds the node's key and runs its circuits; the sidecar beside it must see
neither. So the agent writes what may be shown to a folder they share (an emptyDir):

    <dir>/stats.json        counters and figures, rewritten atomically after each call
    <dir>/spans/            finished spans, one JSON-lines file per batch (qorch.telemetry.spool)

`stats.json` (version 1), every field optional except `version` and `node`:

    version, node, writtenAt, startedAt        unix seconds
    programs, programErrors, shots             counts since the agent started
    busySeconds                                transpile + simulate time, summed
    programSeconds {buckets: [[le, n]...], sum, count}    cumulative histogram
    lastProgramSeconds [...]                   the last few program durations
    requests {op: n}                           channel calls by operation
    channel {handshakes, refusals, calls, handler_errors, sessions, pending, authFailures}
    calibration {fidelity, singleQubitError, twoQubitError, readoutError}
    spansDropped                               spans the spool refused (full folder)

Nothing in it is a circuit, a program id, a key or text a user wrote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from qorch.agent_protocol import OPERATIONS, AgentRequest, RunRequest
from qorch.channel.envelope import current_trace

from . import tracing
from .spool import SpoolSpanExporter

log = logging.getLogger(__name__)

STATS_FILE = "stats.json"
SPANS_DIR = "spans"
STATS_VERSION = 1
TELEMETRY_DIR_ENV = "QORCH_TELEMETRY_DIR"
PROGRAM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LAST_PROGRAMS = 16

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def write_agent_stats(path: str | Path, stats: Mapping[str, Any]) -> None:
    """Write `stats` as JSON to `path` atomically: readers see the old file or the new one,
    never a part (a temporary file in the same folder, then a rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(stats, handle, separators=(",", ":"), sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_agent_stats(path: str | Path) -> dict[str, Any] | None:
    """The stats an agent wrote, or None when absent, unreadable or not ours."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != STATS_VERSION:
        return None
    if not isinstance(data.get("node"), str):
        return None
    return data


class AgentTelemetry:
    """Counts what the agent does and writes it for the sidecar; traces its channel calls.

    Disabled (every method a cheap no-op, no files) when `stats_dir` is None, so the agent
    can hold one unconditionally.
    """

    def __init__(
        self,
        node: str,
        stats_dir: str | Path | None,
        *,
        calibration: Mapping[str, float | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.stats_dir = Path(stats_dir) if stats_dir else None
        self._clock = clock
        self.started_at = clock()
        self.programs = 0
        self.program_errors = 0
        self.shots = 0
        self.busy_seconds = 0.0
        self._bucket_counts = [0] * len(PROGRAM_BUCKETS)
        self._program_sum = 0.0
        self._last: deque[float] = deque(maxlen=LAST_PROGRAMS)
        self.requests: dict[str, int] = {}
        self.calibration = {k: v for k, v in (calibration or {}).items() if v is not None}
        self._server: Any = None
        # Classical messages of LOCC cuts, agent to agent (qorch.qpu.peer).
        self.peer: dict[str, Any] = {"sent": 0, "received": 0, "refused": 0}
        self.spool: SpoolSpanExporter | None = None

    @property
    def enabled(self) -> bool:
        return self.stats_dir is not None

    @property
    def stats_path(self) -> Path | None:
        return self.stats_dir / STATS_FILE if self.stats_dir else None

    @classmethod
    def from_env(
        cls, node: Any, environ: Mapping[str, str] | None = None, *, configure: bool = False
    ) -> AgentTelemetry:
        """For the agent: enabled when QORCH_TELEMETRY_DIR is set. `node` is the QuantumNode
        (its declared noise becomes the calibration figures) or its name.

        With `configure`, also sets up this process's tracing (`configure_tracing`); the
        agent's entry point does that, not the constructor, so an agent built inside
        another process (tests, an embedded driver) leaves that process's tracing alone.
        """
        env = os.environ if environ is None else environ
        name = node if isinstance(node, str) else node.metadata.name
        calibration = None if isinstance(node, str) else declared_calibration(node)
        folder = env.get(TELEMETRY_DIR_ENV) or None
        telemetry = cls(name, folder, calibration=calibration)
        if configure:
            telemetry.configure_tracing(env)
        telemetry.write()
        return telemetry

    def configure_tracing(self, environ: Mapping[str, str] | None = None) -> None:
        """This process's spans go to the spool for the sidecar when the folder is set, else
        over OTLP when an endpoint is configured, else nowhere."""
        attributes = {"qorch.node": self.node}
        if self.stats_dir is not None:
            self.spool = SpoolSpanExporter(self.stats_dir / SPANS_DIR)
            tracing.configure_tracing(
                "qorch-qpu-agent",
                processor=BatchSpanProcessor(self.spool, schedule_delay_millis=500),
                environ=environ,
                resource_attributes=attributes,
            )
        else:
            tracing.configure_tracing(
                "qorch-qpu-agent", environ=environ, resource_attributes=attributes
            )

    # -- hooks ------------------------------------------------------------------------------

    def traced(self, handler: Handler) -> Handler:
        """Wrap the agent's channel handler: a SERVER span per call under the caller's
        trace, requests counted by operation, stats written after each call. The handler
        notes what its request was with `received`."""

        async def handle(op: str, payload: dict[str, Any]) -> dict[str, Any]:
            label = op if op in OPERATIONS else "other"
            self.requests[label] = self.requests.get(label, 0) + 1
            attributes: dict[str, Any] = {"qorch.node": self.node, "qorch.op": label}
            try:
                with tracing.server_span(f"agent.{label}", current_trace.get(), attributes) as span:
                    try:
                        return await handler(op, payload)
                    except Exception as exc:
                        code = getattr(exc, "code", None)
                        if span.is_recording():
                            span.set_attribute("qorch.code", str(code or type(exc).__name__))
                            span.set_status(Status(StatusCode.ERROR, str(code or "error")))
                        raise
            finally:
                self.write()

        return handle

    def received(self, request: AgentRequest) -> None:
        """What the call's span may say of its request, once it is read: a run's shots."""
        span = trace.get_current_span()
        if isinstance(request, RunRequest) and span.is_recording():
            span.set_attribute("qorch.shots", request.shots)

    def attach(self, server: Any) -> Any:
        """Report the channel server's counters (handshakes, refusals...); returns `server`."""
        self._server = server
        return server

    def program_finished(
        self, *, shots: int, transpile_seconds: float = 0.0, simulate_seconds: float = 0.0
    ) -> None:
        """One program ran to completion."""
        seconds = max(0.0, transpile_seconds) + max(0.0, simulate_seconds)
        self.programs += 1
        self.shots += max(0, int(shots))
        self.busy_seconds += seconds
        self._program_sum += seconds
        for i, le in enumerate(PROGRAM_BUCKETS):
            if seconds <= le:
                self._bucket_counts[i] += 1
        self._last.append(round(seconds, 6))
        self.write()

    def peer_traffic(self, counters: Any) -> None:
        """The peer channel's counters (qorch.qpu.peer.PeerCounters): messages sent to and
        received from other agents, refused ones, and the one-way seconds of those sent."""
        sent = list(counters.message_seconds)
        self.peer = {
            "sent": counters.sent,
            "received": counters.received,
            "refused": counters.refused,
            "messageSeconds": {"sum": round(sum(sent), 9), "count": len(sent)},
        }
        self.write()

    def program_failed(self) -> None:
        self.program_errors += 1
        self.write()

    def set_calibration(self, **figures: float | None) -> None:
        """fidelity, singleQubitError, twoQubitError, readoutError (measured)."""
        self.calibration.update({k: v for k, v in figures.items() if v is not None})
        self.write()

    # -- the file ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        channel: dict[str, Any] = {}
        if self._server is not None:
            try:
                channel = dict(self._server.stats)
            except Exception:  # the server's stats must never break the agent
                channel = {}
            if "auth_failures" in channel:
                channel["authFailures"] = channel.pop("auth_failures")
        return {
            "version": STATS_VERSION,
            "node": self.node,
            "writtenAt": round(self._clock(), 3),
            "startedAt": round(self.started_at, 3),
            "programs": self.programs,
            "programErrors": self.program_errors,
            "shots": self.shots,
            "busySeconds": round(self.busy_seconds, 6),
            "programSeconds": {
                "buckets": [
                    [le, n] for le, n in zip(PROGRAM_BUCKETS, self._bucket_counts, strict=True)
                ],
                "sum": round(self._program_sum, 6),
                "count": self.programs,
            },
            "lastProgramSeconds": list(self._last),
            "requests": dict(self.requests),
            "channel": channel,
            "peer": dict(self.peer),
            "calibration": dict(self.calibration),
            "spansDropped": self.spool.dropped if self.spool else 0,
        }

    def write(self) -> None:
        if self.stats_path is None:
            return
        try:
            write_agent_stats(self.stats_path, self.snapshot())
        except OSError as exc:
            log.warning("cannot write agent stats to %s: %s", self.stats_path, exc)


def declared_calibration(node: Any) -> dict[str, float | None]:
    """The figures the simulated processor runs with, from the node's noise spec."""
    noise = node.spec.noise
    single = noise.single_qubit_error
    two = noise.two_qubit_error
    readout = noise.readout_error
    return {
        "fidelity": None,
        "singleQubitError": single,
        "twoQubitError": two,
        "readoutError": readout,
    }
