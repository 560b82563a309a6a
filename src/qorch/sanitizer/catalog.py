"""The rule catalogue: stable ids, names, the stage each rule runs in, and whether a policy
may change its severity. The README's rule table is checked against this list by a test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["pre-parse", "parse", "post-parse", "any"]


@dataclass(frozen=True)
class RuleInfo:
    """One rule of the sanitizer."""

    id: str
    name: str
    stage: Stage
    summary: str
    #: Rules that keep hostile input away from the parser can never be relaxed: relaxing them
    #: would hand the parser inputs it cannot survive. Limits are raised in the policy instead.
    adjustable: bool


_RULES = (
    RuleInfo("QS000", "internal-error", "any", "the sanitizer failed; the job fails closed", False),
    RuleInfo(
        "QS001", "parse-error", "parse", "Qiskit's OpenQASM loader rejected the source", False
    ),
    RuleInfo(
        "QS002",
        "source-size",
        "pre-parse",
        "source larger than maxSourceBytes (maxQasm3SourceBytes and maxQasm3Tokens for OpenQASM 3)",
        False,
    ),
    RuleInfo(
        "QS003",
        "lexical",
        "pre-parse",
        "control characters, invalid text, unterminated string or block comment",
        False,
    ),
    RuleInfo(
        "QS004", "nesting-depth", "pre-parse", "brackets nested beyond maxNestingDepth", False
    ),
    RuleInfo(
        "QS005",
        "numeric-literal",
        "pre-parse",
        "an integer literal beyond 64 bits, on which the OpenQASM 2 parser panics",
        False,
    ),
    RuleInfo(
        "QS006",
        "register-declaration",
        "pre-parse",
        "register size not an integer literal, or declared qubits/bits beyond the limits",
        False,
    ),
    RuleInfo(
        "QS007",
        "expansion-estimate",
        "pre-parse",
        "broadcasting and custom-gate expansion would exceed maxGates",
        False,
    ),
    RuleInfo(
        "QS008",
        "expression-size",
        "pre-parse",
        "a statement with more operators than maxExpressionOperators, or a run of prefix operators",
        False,
    ),
    RuleInfo("QS101", "qubit-limit", "post-parse", "more qubits than maxQubits", True),
    RuleInfo("QS102", "clbit-limit", "post-parse", "more classical bits than maxClbits", True),
    RuleInfo("QS103", "shot-limit", "post-parse", "shots outside 1..maxShots", True),
    RuleInfo("QS104", "depth-limit", "post-parse", "depth beyond maxDepth", True),
    RuleInfo(
        "QS105",
        "gate-limit",
        "post-parse",
        "gate count (custom gates expanded) beyond maxGates",
        True,
    ),
    RuleInfo(
        "QS106",
        "two-qubit-gate-limit",
        "post-parse",
        "multi-qubit gates (custom gates expanded) beyond maxTwoQubitGates",
        True,
    ),
    RuleInfo(
        "QS107",
        "mid-circuit-measurement-limit",
        "post-parse",
        "measurements followed by further operations beyond maxMidCircuitMeasurements",
        True,
    ),
    RuleInfo(
        "QS108",
        "mid-circuit-reset-limit",
        "post-parse",
        "resets after the first operation on a qubit beyond maxMidCircuitResets",
        True,
    ),
    RuleInfo("QS201", "gate-allowlist", "post-parse", "an operation outside the allowed set", True),
    RuleInfo(
        "QS202",
        "gate-definition",
        "pre-parse",
        "custom gate too deep or too large when expanded, opaque, or built from disallowed gates",
        False,
    ),
    RuleInfo("QS203", "include", "pre-parse", "include of anything but allowedIncludes", False),
    RuleInfo(
        "QS204",
        "parameter-bounds",
        "post-parse",
        "gate parameter unbound, NaN, infinite or beyond maxAbsAngle",
        True,
    ),
    RuleInfo(
        "QS205",
        "gate-modifier",
        "pre-parse",
        "pow modifier, too many controls, or a modifier on a custom gate (OpenQASM 3)",
        False,
    ),
    RuleInfo("QS301", "while-loop", "post-parse", "while loop while allowWhileLoops is off", True),
    RuleInfo(
        "QS302",
        "for-loop-bound",
        "post-parse",
        "for-loop iterations beyond maxForLoopIterations",
        True,
    ),
    RuleInfo(
        "QS303", "conditional", "post-parse", "if/switch while allowConditionals is off", True
    ),
    RuleInfo("QS304", "delay-limit", "post-parse", "total delay beyond maxTotalDelaySeconds", True),
    RuleInfo(
        "QS305",
        "coherence-budget",
        "post-parse",
        "estimated duration beyond maxT2Fraction of the shortest T2",
        True,
    ),
    RuleInfo(
        "QS401",
        "idle-probe",
        "post-parse",
        "circuit only idles and measures, or idles for most of its duration (untrusted tenants)",
        True,
    ),
    RuleInfo(
        "QS402",
        "repeated-two-qubit-gate",
        "post-parse",
        "two-qubit gates back to back on one pair beyond maxRepeatedTwoQubitGate (untrusted)",
        True,
    ),
)

RULES: dict[str, RuleInfo] = {rule.id: rule for rule in _RULES}

INTERNAL_ERROR = "QS000"
PARSE_ERROR = "QS001"
SOURCE_SIZE = "QS002"
LEXICAL = "QS003"
NESTING_DEPTH = "QS004"
NUMERIC_LITERAL = "QS005"
REGISTER_DECLARATION = "QS006"
EXPANSION_ESTIMATE = "QS007"
EXPRESSION_SIZE = "QS008"
QUBIT_LIMIT = "QS101"
CLBIT_LIMIT = "QS102"
SHOT_LIMIT = "QS103"
DEPTH_LIMIT = "QS104"
GATE_LIMIT = "QS105"
TWO_QUBIT_GATE_LIMIT = "QS106"
MID_CIRCUIT_MEASUREMENT_LIMIT = "QS107"
MID_CIRCUIT_RESET_LIMIT = "QS108"
GATE_ALLOWLIST = "QS201"
GATE_DEFINITION = "QS202"
INCLUDE = "QS203"
PARAMETER_BOUNDS = "QS204"
GATE_MODIFIER = "QS205"
WHILE_LOOP = "QS301"
FOR_LOOP_BOUND = "QS302"
CONDITIONAL = "QS303"
DELAY_LIMIT = "QS304"
COHERENCE_BUDGET = "QS305"
IDLE_PROBE = "QS401"
REPEATED_TWO_QUBIT_GATE = "QS402"

PROBE_RULES = frozenset(rule_id for rule_id in RULES if rule_id.startswith("QS4"))
