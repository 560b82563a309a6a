"""The JSON carried inside records, and the trace context that rides along.

    request = {"op": str, "payload": {...}, "trace": {"traceparent": ...} | null}
    reply   = {"ok": true, "result": {...}}
            | {"ok": false, "error": {"type": str, "message": str}}

The trace dict (W3C trace context headers) is opaque to the channel. The client
sends `call(..., trace=...)` or, when absent, the value of `current_trace`; the
server sets `current_trace` while the handler runs.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from qorch.channel.errors import MalformedMessage

JSONDict = dict[str, Any]
TraceContext = dict[str, str]

current_trace: ContextVar[TraceContext | None] = ContextVar("qorch_channel_trace", default=None)

MAX_ERROR_MESSAGE = 1000


def _dumps(value: JSONDict) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _loads_object(data: bytes, what: str) -> JSONDict:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedMessage(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} is not a JSON object")
    return value


def encode_request(op: str, payload: JSONDict, trace: TraceContext | None) -> bytes:
    return _dumps({"op": op, "payload": payload, "trace": trace})


def decode_request(data: bytes) -> tuple[str, JSONDict, TraceContext | None]:
    request = _loads_object(data, "request")
    op, payload, trace = request.get("op"), request.get("payload"), request.get("trace")
    if not isinstance(op, str) or not op:
        raise MalformedMessage("request has no op")
    if not isinstance(payload, dict):
        raise MalformedMessage("request payload is not an object")
    if trace is not None and not (
        isinstance(trace, dict) and all(isinstance(v, str) for v in trace.values())
    ):
        raise MalformedMessage("request trace is not a string map")
    return op, payload, trace


def encode_result(result: JSONDict) -> bytes:
    return _dumps({"ok": True, "result": result})


def encode_error(error_type: str, message: str) -> bytes:
    return _dumps(
        {"ok": False, "error": {"type": error_type, "message": message[:MAX_ERROR_MESSAGE]}}
    )


def decode_reply(data: bytes) -> tuple[JSONDict | None, tuple[str, str] | None]:
    """Return (result, None) or (None, (error type, message))."""
    reply = _loads_object(data, "reply")
    if reply.get("ok") is True and isinstance(reply.get("result"), dict):
        return reply["result"], None
    error = reply.get("error")
    if reply.get("ok") is False and isinstance(error, dict):
        return None, (str(error.get("type", "Error")), str(error.get("message", "")))
    raise MalformedMessage("reply has neither a result nor an error")
