"""``qorch sanitize FILE [--policy POLICY.yaml] [--output json]``: check a circuit file."""

from __future__ import annotations

import json
import sys

from qorch.api.yamlload import TooLarge, read_at_most

from .engine import sanitize
from .policy import PolicyError, SanitizerPolicy, load_policy
from .prechecks.qs002_source_size import too_large
from .report import SanitizerReport

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"qorch sanitize: {message}", file=sys.stderr)
    return EXIT_USAGE


def _text(path: str, report: SanitizerReport) -> str:
    stats = report.stats
    figures = [
        f"{value} {label}"
        for value, label in (
            (stats.qubits, "qubits"),
            (stats.depth, "deep"),
            (stats.size, "operations"),
            (stats.two_qubit_gates, "multi-qubit gates"),
        )
        if value is not None
    ]
    verdict = "accepted" if report.accepted else "rejected"
    lines = [f"{path}: {verdict}" + (f" ({', '.join(figures)})" if figures else "")]
    for v in report.violations:
        where = []
        if v.location.line is not None:
            where.append(f"line {v.location.line}")
        if v.location.instruction is not None:
            where.append(f"instruction {v.location.instruction}")
        prefix = f"{', '.join(where)}: " if where else ""
        lines.append(f"  {v.rule} {v.severity}: {prefix}{v.message}")
    return "\n".join(lines)


def sanitize_command(path: str, policy_path: str | None, output: str) -> int:
    """Check the circuit in ``path``; print the report as ``text`` or ``json``.

    Returns 0 when accepted (warnings allowed), 1 when rejected, 2 when the invocation is
    unusable (unknown output format, unreadable file or policy).
    """
    if output not in ("text", "json"):
        return _fail(f"unknown output format {output!r}; use text or json")
    policy = SanitizerPolicy()
    if policy_path is not None:
        try:
            policy = load_policy(policy_path).default
        except PolicyError as exc:
            return _fail(str(exc))
    try:
        # Refused without reading it all into memory.
        data = read_at_most(path, 4 * policy.max_source_bytes)
        # Invalid UTF-8 survives as lone surrogates, which the sanitizer refuses (QS003).
        report = sanitize(data.decode("utf-8", "surrogateescape"), policy).report
    except TooLarge as exc:
        report = SanitizerReport(accepted=False, violations=[too_large(exc.size, policy)])
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    if output == "json":
        print(json.dumps(report.to_summary(), indent=2))
    else:
        print(_text(path, report))
    return EXIT_ACCEPTED if report.accepted else EXIT_REJECTED
