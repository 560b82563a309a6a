"""Parse OpenQASM 2 or 3 with Qiskit's loaders, so that they cannot touch the file system.

OpenQASM 2 goes through :func:`qiskit.qasm2.loads` with an empty include path (only the
built-in ``qelib1.inc`` resolves) and Qiskit's legacy instruction table, so that the gates
``qasm2.dumps`` writes (``p``, ``sx``, ``swap``...) load as Qiskit's standard gates. Sources
without gate definitions take :mod:`.qasm2_builder`: the same parser with the same arguments,
the same circuit, built in about 60% of the time. OpenQASM 3 goes through
Qiskit's importer (:mod:`.qasm3_importer`: ``qiskit.qasm3.loads``, plus conditions over bit
logic), which knows ``stdgates.inc`` built in and refuses any other include.

A refusal says whose it is: the parser's (the text is not OpenQASM) or the importer's (valid
OpenQASM 3 that Qiskit cannot represent, such as ``int`` variables).
"""

from __future__ import annotations

import contextlib
import io
import re
import threading

from qiskit import qasm2
from qiskit.circuit import QuantumCircuit

from . import qasm2_builder
from .source.scan import SourceScan

# "<input>:4,2: ..." (OpenQASM 2), "4,2: ..." (OpenQASM 3 importer), "line 4:2 ..." (ANTLR)
_POSITION = re.compile(r"^(?:<input>:|line\s+)?(\d+)[,:](\d+):?\s*")
_MAX_MESSAGE = 400
# The OpenQASM 3 (ANTLR) parser prints its syntax errors to stderr: they are captured for the
# violation instead of landing, with user text in them, in the operator's log. Redirection
# swaps the process-wide sys.stderr, so parses that redirect take turns.
_STDERR_LOCK = threading.Lock()


class ParseFailure(Exception):
    """The loader refused the source; ``line`` is where it says, when it says.
    ``unsupported`` when the source is valid OpenQASM 3 that the importer cannot represent."""

    def __init__(self, message: str, line: int | None, unsupported: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.unsupported = unsupported


def _offending_token(exc: BaseException) -> tuple[str, int] | None:
    """The token the OpenQASM 3 (ANTLR) parser stopped at: its exceptions carry no message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for arg in (current, *current.args):
            token = getattr(arg, "offendingToken", None)
            if token is not None and isinstance(getattr(token, "line", None), int):
                return str(getattr(token, "text", "")), token.line
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: BaseException, printed: str = "") -> tuple[str, int | None]:
    text = str(exc).strip().strip("\"'").strip()
    if not text and printed.strip():
        text = printed.strip().splitlines()[0]
    if not text:
        token = _offending_token(exc)
        if token is not None:
            return f"unexpected {token[0][:40]!r}", token[1]
        text = type(exc).__name__
    match = _POSITION.match(text)
    line = int(match.group(1)) if match else None
    if match and match.end() < len(text):
        text = text[match.end() :]
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text, line


def _load_qasm2(scan: SourceScan) -> QuantumCircuit:
    # Gate definitions need Qiskit's own builder (its lazily defined gates); so does anything
    # the fast builder declines.
    circuit = None if scan.has_definitions else qasm2_builder.build(scan.source)
    if circuit is None:
        circuit = qasm2.loads(
            scan.source,
            include_path=(),
            custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS,
        )
    return circuit


def load(scan: SourceScan) -> QuantumCircuit:
    """The parsed circuit; :class:`ParseFailure` for anything the loaders raise, panics included."""
    printed = io.StringIO()
    if scan.version != 2:
        from . import qasm3_importer  # for OpenQASM 3 alone: its ANTLR parser imports in 50 ms
    try:
        if scan.version == 2:
            return _load_qasm2(scan)
        with _STDERR_LOCK, contextlib.redirect_stderr(printed):
            return qasm3_importer.loads(scan.source)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pyo3 panics derive from BaseException only
        message, line = _describe(exc, printed.getvalue())
        unsupported = scan.version != 2 and qasm3_importer.unsupported(exc)
        raise ParseFailure(message, line, unsupported) from None
