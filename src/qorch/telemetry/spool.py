"""Finished spans handed from an agent to its sidecar through a folder (the shared emptyDir).

The agent's exporter writes each batch as one JSON-lines file, atomically (a temporary
name, then a rename), so a reader only ever sees whole batches. The sidecar reads the
files oldest first, forwards the spans and deletes the files. The folder is bounded: when
it holds `max_files` batches the agent drops new ones and counts them, so a sidecar that
cannot forward never fills the pod's disk.

Spans carry names, ids, times, status and a few attributes (node, operation, shots, result
code); the agent never puts a circuit or a key in a span.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

log = logging.getLogger(__name__)

SUFFIX = ".spans.jsonl"
MAX_FILES = 256


def _attributes(values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(values or {}).items():
        if isinstance(value, str | bool | int | float):
            out[str(key)] = value
        elif isinstance(value, list | tuple):
            out[str(key)] = [v for v in value if isinstance(v, str | bool | int | float)]
    return out


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent
    return {
        "name": span.name,
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "parentSpanId": f"{parent.span_id:016x}" if parent else None,
        "parentRemote": bool(parent.is_remote) if parent else False,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": _attributes(span.attributes),
        "events": [
            {"name": e.name, "time": e.timestamp, "attributes": _attributes(e.attributes)}
            for e in span.events
        ],
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "resource": _attributes(span.resource.attributes),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "qorch",
    }


def span_from_dict(data: dict[str, Any]) -> ReadableSpan:
    trace_id = int(data["traceId"], 16)
    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, int(data["spanId"], 16), is_remote=False, trace_flags=flags)
    parent = None
    if data.get("parentSpanId"):
        parent = SpanContext(
            trace_id,
            int(data["parentSpanId"], 16),
            is_remote=bool(data.get("parentRemote")),
            trace_flags=flags,
        )
    status = data.get("status") or {}
    return ReadableSpan(
        name=str(data["name"]),
        context=context,
        parent=parent,
        resource=Resource(_attributes(data.get("resource"))),
        attributes=_attributes(data.get("attributes")),
        events=[
            Event(str(e["name"]), _attributes(e.get("attributes")), int(e["time"]))
            for e in data.get("events") or []
        ],
        kind=SpanKind[str(data.get("kind", "INTERNAL"))],
        status=Status(StatusCode[str(status.get("code", "UNSET"))], status.get("description")),
        start_time=int(data["start"]),
        end_time=int(data["end"]),
        instrumentation_scope=InstrumentationScope(str(data.get("scope", "qorch"))),
    )


class SpoolSpanExporter(SpanExporter):
    """Writes each exported batch to `folder` as one file (the agent's side)."""

    def __init__(self, folder: str | Path, *, max_files: int = MAX_FILES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self.dropped = 0
        self._seq = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        with self._lock:
            if sum(1 for _ in self.folder.glob(f"*{SUFFIX}")) >= self.max_files:
                self.dropped += len(spans)
                return SpanExportResult.FAILURE
            self._seq += 1
            name = f"{os.getpid()}-{time.time_ns()}-{self._seq:08d}{SUFFIX}"
        lines = "".join(json.dumps(span_to_dict(s), separators=(",", ":")) + "\n" for s in spans)
        tmp = self.folder / f".{name}.tmp"
        try:
            tmp.write_text(lines)
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            log.warning("span spool %s: %s", self.folder, exc)
            self.dropped += len(spans)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def spool_files(folder: str | Path) -> list[Path]:
    """Complete batch files, oldest first."""
    path = Path(folder)
    if not path.is_dir():
        return []
    return sorted(path.glob(f"*{SUFFIX}"), key=lambda p: p.name.split("-", 1)[-1])


def read_spool_file(path: Path) -> list[ReadableSpan]:
    spans = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            spans.append(span_from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping a malformed span in %s: %s", path.name, exc)
    return spans


def read_spool(folder: str | Path) -> Iterator[tuple[Path, list[ReadableSpan]]]:
    """Each complete batch file with its spans, oldest first (nothing is deleted)."""
    for path in spool_files(folder):
        try:
            yield path, read_spool_file(path)
        except OSError:
            continue
