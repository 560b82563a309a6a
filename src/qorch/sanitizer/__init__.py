"""The circuit sanitizer: a declarative policy every job passes before it touches a QPU.

It parses OpenQASM 2 or 3, never executes it, and explains every refusal::

    from qorch.sanitizer import sanitize, SanitizerPolicy, TargetTiming

    result = sanitize(source, SanitizerPolicy(maxQubits=32), shots=1000)
    if not result.report.accepted:
        for v in result.report.violations:
            print(v.rule, v.severity, v.message, v.location)
    circuit = result.circuit  # parsed once, reused by the pipeline

Three stages:

1. Pre-checks on the text (``prechecks/``): size, characters, nesting, numeric literals,
   register declarations, includes, custom gate definitions (expanded symbolically),
   OpenQASM 3 modifiers and an estimate of the broadcast, expanded operation count. They
   keep hostile input away from the parser; a refusal here costs microseconds.
2. Parsing with Qiskit's loaders, which cannot read files; any exception (pyo3 panics
   included) becomes a QS001 violation with the parser's message and line.
3. Rules as Qiskit analysis passes (``rules/``, one per module), on measurements from
   Qiskit's ``Depth``/``Size``/``CountOps`` and the passes in ``analysis/``; a final
   ``SanitizerVerdict`` applies the policy's severities.

The rule table, with ids, is in this package's README.md and in :mod:`.catalog`.
"""

from .catalog import RULES, RuleInfo
from .engine import sanitize
from .passes import build_passes, run_passes, sanitizer_pass_manager
from .policy import PolicyError, SanitizerPolicy, SanitizerPolicyFile, load_policy
from .report import Location, SanitizerReport, SanitizerResult, SanitizerStats, Violation
from .timing import TargetTiming

__all__ = [
    "RULES",
    "Location",
    "PolicyError",
    "RuleInfo",
    "SanitizerPolicy",
    "SanitizerPolicyFile",
    "SanitizerReport",
    "SanitizerResult",
    "SanitizerStats",
    "TargetTiming",
    "Violation",
    "build_passes",
    "load_policy",
    "run_passes",
    "sanitize",
    "sanitizer_pass_manager",
]
