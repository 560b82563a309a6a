"""``sanitize``: pre-checks on the text, parsing, the rule passes, the report."""

from __future__ import annotations

from qiskit.converters import circuit_to_dag

from .analysis import DURATION, MID_CIRCUIT, MULTI_QUBIT_GATE_COUNT
from .catalog import INTERNAL_ERROR, PARSE_ERROR
from .parsing import ParseFailure, load
from .passes import build_passes, cached_passes, run_passes
from .policy import SanitizerPolicy, SanitizerPolicyFile
from .prechecks import run_prechecks
from .report import Location, SanitizerReport, SanitizerResult, SanitizerStats, Violation, finding
from .source.scan import SourceScan
from .source.statements import instruction_lines
from .timing import TargetTiming
from .verdict import VERDICT, decide

_DEFAULT_POLICY = SanitizerPolicy()


def _rejected(violations: list[Violation], policy: SanitizerPolicy) -> SanitizerResult:
    verdict = decide(violations, policy.rule_severity)
    return SanitizerResult(
        SanitizerReport(accepted=verdict.accepted, violations=verdict.violations)
    )


def _with_lines(
    violations: list[Violation], scan: SourceScan, instructions: int
) -> list[Violation]:
    """Fill in the source line of violations located by instruction index, where possible."""
    if not any(v.location.instruction is not None and v.location.line is None for v in violations):
        return violations
    try:
        lines = instruction_lines(scan, instructions)
    except Exception:  # lines are a courtesy; the verdict stands without them
        lines = None
    if lines is None:
        return violations
    located = []
    for v in violations:
        index = v.location.instruction
        if index is not None and v.location.line is None and 0 <= index < len(lines):
            v = v.model_copy(update={"location": Location(instruction=index, line=lines[index])})
        located.append(v)
    return located


def _sanitize(
    source: str,
    policy: SanitizerPolicy,
    shots: int | None,
    timing: TargetTiming | None,
) -> SanitizerResult:
    scan, found = run_prechecks(source, policy)
    if scan is None or found:
        return _rejected(found, policy)
    try:
        circuit = load(scan)
    except ParseFailure as failure:
        where = f" (line {failure.line})" if failure.line else ""
        if failure.unsupported:
            message = (
                f"Qiskit's OpenQASM 3 importer cannot represent this{where}: {failure.message}. "
                "The source is valid OpenQASM 3 but uses a feature the importer lacks; rewrite "
                "that statement (the circuit was not judged against the policy)."
            )
        else:
            message = (
                f"the OpenQASM {scan.version} parser refused the source{where}: {failure.message}"
            )
        return _rejected([finding(PARSE_ERROR, message, line=failure.line)], policy)
    dag = circuit_to_dag(circuit, copy_operations=False)
    if scan.has_definitions:
        passes = build_passes(policy, shots=shots, timing=timing, definitions=scan.definitions)
    else:
        passes = cached_passes(policy, shots=shots, timing=timing)
    properties = run_passes(dag, passes)
    verdict = properties[VERDICT]
    mid = properties[MID_CIRCUIT]
    stats = SanitizerStats(
        qubits=circuit.num_qubits,
        clbits=circuit.num_clbits,
        depth=properties["depth"],
        size=properties["size"],
        two_qubit_gates=properties[MULTI_QUBIT_GATE_COUNT],
        measurements=mid.measurements if mid is not None else None,
        estimated_duration_seconds=properties[DURATION],
    )
    report = SanitizerReport(
        accepted=verdict.accepted,
        violations=_with_lines(verdict.violations, scan, len(circuit.data)),
        stats=stats,
    )
    return SanitizerResult(report=report, circuit=circuit)


def sanitize(
    source: str,
    policy: SanitizerPolicy | SanitizerPolicyFile | None = None,
    *,
    shots: int | None = None,
    timing: TargetTiming | None = None,
) -> SanitizerResult:
    """Check an OpenQASM 2 or 3 source against a policy; parse it, never run it.

    Never raises for any input text: whatever goes wrong becomes a violation (QS001 for what
    the parser refuses, QS000 should the sanitizer itself fail), and the circuit is refused.

    Args:
        source: the OpenQASM program; version 2 with ``OPENQASM 2.0;``, else version 3.
        policy: the policy; the defaults when None. A ``SanitizerPolicyFile`` applies its
            default policy; use ``for_namespace`` for the namespace's own.
        shots: shots the job asks for (QS103); unchecked when None.
        timing: gate times and T2 of the candidate nodes (QS305, QS401); rules skipped when
            a figure they need is missing.

    Returns:
        The report, and the parsed circuit unless the source was refused before or at parsing.
    """
    if policy is None:
        policy = _DEFAULT_POLICY
    elif isinstance(policy, SanitizerPolicyFile):
        policy = policy.default
    elif not isinstance(policy, SanitizerPolicy):
        raise TypeError(f"policy must be a SanitizerPolicy, not {type(policy).__name__}")
    if not isinstance(source, str):
        return _rejected(
            [
                finding(
                    PARSE_ERROR, f"the circuit must be OpenQASM text, not {type(source).__name__}."
                )
            ],
            policy,
        )
    try:
        return _sanitize(source, policy, shots, timing)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # fail closed on anything unforeseen, panics included
        return _rejected(
            [
                finding(
                    INTERNAL_ERROR,
                    f"the sanitizer failed ({type(exc).__name__}: {str(exc)[:200]}); the "
                    "circuit is refused until it can be checked.",
                )
            ],
            policy,
        )
