"""`python -m qorch.telemetry.sidecar` as a process: /metrics from the agent's stats, spans
forwarded over OTLP/HTTP to a receiver on loopback, a clean exit on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qorch.telemetry import tracing
from qorch.telemetry.agent import AgentTelemetry
from qorch.telemetry.spool import SpoolSpanExporter
from tests.unit.telemetry.samples import FakeServer

LISTENING = re.compile(r"serving metrics on (http://\S+/metrics)")


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint that keeps what it receives."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        Receiver.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sidecar(tmp_path: Path, receiver: str) -> Iterator[tuple[subprocess.Popen, str]]:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver, "OTEL_SERVICE_NAME": "qpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qorch.telemetry.sidecar", "--node", "qpu-a", "--namespace",
         "lab", "--stats-dir", str(tmp_path), "--host", "127.0.0.1", "--port", "0",
         "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    assert match, line
    yield proc, match.group(1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_serves_the_agents_stats_and_passes_promtool(sidecar, tmp_path: Path) -> None:
    _, url = sidecar
    assert 'qorch_agent_up{namespace="lab",node="qpu-a"} 0.0' in scrape(url)
    telemetry = AgentTelemetry("qpu-a", tmp_path)
    telemetry.attach(FakeServer())
    telemetry.program_finished(shots=2000, simulate_seconds=0.08)
    text = scrape(url)
    assert 'qorch_agent_up{namespace="lab",node="qpu-a"} 1.0' in text
    assert 'qorch_agent_shots_total{namespace="lab",node="qpu-a"} 2000.0' in text
    promtool = shutil.which("promtool")
    if promtool:  # the unit tests skip with the reason when it is absent
        result = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def test_forwards_spooled_spans_over_otlp_and_exits_on_sigterm(sidecar, tmp_path: Path) -> None:
    proc, url = sidecar
    memory = InMemorySpanExporter()
    tracing.configure_tracing("qorch-test", exporter=memory, environ={})
    try:
        trace_id = tracing.new_trace_id()
        with tracing.job_span(trace_id, "dispatch"), tracing.client_span("execute"):
            pass
    finally:
        tracing.shutdown_tracing()
    SpoolSpanExporter(tmp_path / "spans").export(memory.get_finished_spans())
    spool = tmp_path / "spans"
    deadline = time.monotonic() + 10
    while list(spool.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(spool.glob("*.jsonl")) == []  # forwarded, then deleted
    spans = [
        span
        for request in Receiver.received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert sorted(s.name for s in spans) == ["dispatch", "execute"]
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    assert 'qorch_sidecar_spans_forwarded_total{namespace="lab",node="qpu-a"} 2.0' in scrape(url)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
