"""The sanitizer policy: limits, allowlists and switches, with per-namespace overrides.

A policy file in YAML (camelCase or snake_case keys)::

    default:
      maxQubits: 64
      maxShots: 20000
    namespaces:
      calibration:
        trusted: true              # lifts the QS4xx probe rules
      teaching:
        maxShots: 1000
        ruleSeverity: {QS305: warn}

A file holding just the fields of one policy is read as the default policy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from qorch.api.yamlload import errors_in_a_line, load_file

from .catalog import RULES
from .gates import DEFAULT_ALLOWED_GATES, qiskit_name

STANDARD_INCLUDES = ("qelib1.inc", "stdgates.inc")
_GATE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Severity = Literal["deny", "warn", "off"]


class PolicyError(ValueError):
    """A policy (file) that cannot be used; the message says where and why."""


class SanitizerPolicy(BaseModel):
    """What a circuit may contain and use before it reaches a QPU. Defaults are safe.

    Immutable (derive variants with ``model_copy(update=...)``), so the passes built from a
    policy can be reused for every circuit checked against it."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    # -- source (checked before parsing) --------------------------------------------------
    max_source_bytes: int = Field(
        1_000_000, ge=64, le=50_000_000, description="Largest OpenQASM source, bytes (QS002)."
    )
    max_qasm3_source_bytes: int = Field(
        65_536,
        ge=64,
        le=5_000_000,
        description=(
            "Largest OpenQASM 3 source, bytes; its reference parser reads some 70 kB/s (QS002)."
        ),
    )
    max_nesting_depth: int = Field(
        32,
        ge=4,
        le=128,
        description="Deepest nesting of (), [] and {} in the source (QS004).",
    )
    max_qasm3_tokens: int = Field(
        24_000,
        ge=16,
        le=2_000_000,
        description=(
            "Most tokens in an OpenQASM 3 source; its reference parser's time follows tokens, "
            "about 30,000 a second, not bytes (QS002)."
        ),
    )
    max_expression_operators: int = Field(
        128,
        ge=8,
        le=1024,
        description=(
            "Most operators in one statement; the OpenQASM 3 importer recurses per operator "
            "and gives up at about 200 (QS008)."
        ),
    )
    # -- resources ------------------------------------------------------------------------
    max_qubits: int = Field(128, ge=1, le=100_000, description="Most qubits (QS006, QS101).")
    max_clbits: int = Field(
        1024, ge=0, le=1_000_000, description="Most classical bits (QS006, QS102)."
    )
    max_shots: int = Field(100_000, ge=1, description="Most shots per job (QS103).")
    max_depth: int = Field(
        10_000, ge=1, description="Largest circuit depth, for loops unrolled (QS104)."
    )
    max_gates: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Most operations, custom gates expanded and for loops unrolled (QS007, QS105).",
    )
    max_two_qubit_gates: int = Field(
        20_000, ge=0, description="Most gates on two or more qubits, expanded (QS106)."
    )
    max_mid_circuit_measurements: int = Field(
        100, ge=0, description="Most measurements followed by further operations (QS107)."
    )
    max_mid_circuit_resets: int = Field(
        100, ge=0, description="Most resets that are not a qubit's first operation (QS108)."
    )
    # -- gates, definitions, includes ---------------------------------------------------------
    allowed_gates: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_GATES),
        description=(
            "Operations a circuit may use, by name; OpenQASM spellings such as CX or c3x are "
            "accepted. Default: the gates of qelib1.inc and stdgates.inc plus measure, reset, "
            "barrier and delay (QS201)."
        ),
    )
    extra_gates: list[str] = Field(
        default_factory=list,
        description="Operations allowed on top of allowedGates, e.g. for one namespace (QS201).",
    )
    allowed_includes: list[str] = Field(
        default_factory=lambda: list(STANDARD_INCLUDES),
        description="Files a circuit may include; only the standard libraries exist (QS203).",
    )
    max_gate_definitions: int = Field(
        200, ge=0, le=10_000, description="Most custom gate definitions in one source (QS202)."
    )
    max_definition_depth: int = Field(
        8,
        ge=1,
        le=64,
        description="Deepest chain of custom gates calling custom gates (QS202).",
    )
    max_definition_size: int = Field(
        2_000,
        ge=1,
        le=1_000_000,
        description="Most standard operations one custom gate may expand to (QS202).",
    )
    max_modifier_controls: int = Field(
        2,
        ge=0,
        le=8,
        description="Most control qubits the ctrl/negctrl modifiers of one gate may add (QS205).",
    )
    max_abs_angle: float = Field(
        1000.0,
        gt=0,
        le=1e6,
        description="Largest absolute value of a gate parameter, radians (QS204).",
    )
    # -- control flow and timing ------------------------------------------------------------
    allow_conditionals: bool = Field(
        True, description="Whether if/else (and switch) feed-forward is allowed (QS303)."
    )
    allow_while_loops: bool = Field(
        False, description="Whether while loops are allowed; their length is unknown (QS301)."
    )
    max_for_loop_iterations: int = Field(
        1000,
        ge=0,
        description="Most iterations of any for-loop body, nested loops multiplied (QS302).",
    )
    max_total_delay_seconds: float = Field(
        1e-3, ge=0, description="Largest sum of all delay durations, seconds (QS304)."
    )
    max_t2_fraction: float = Field(
        0.5,
        gt=0,
        le=100,
        description="Largest estimated duration as a fraction of the shortest T2 (QS305).",
    )
    # -- probes -----------------------------------------------------------------------------
    max_idle_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Largest share of the estimated duration one qubit spends in delays (QS401).",
    )
    max_repeated_two_qubit_gate: int = Field(
        32,
        ge=1,
        description="Longest run of two-qubit gates back to back on one qubit pair (QS402).",
    )
    trusted: bool = Field(
        False,
        description="A trusted tenant (calibration, device research): lifts the QS4xx probe rules.",
    )
    rule_severity: dict[str, Severity] = Field(
        default_factory=dict,
        description=(
            "Per-rule severity override, deny, warn or off, e.g. {QS305: warn}. Rules that "
            "guard the parser (QS000-QS007, QS202, QS203, QS205) cannot be changed."
        ),
    )

    @field_validator("allowed_gates", "extra_gates")
    @classmethod
    def _gate_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _GATE_NAME.match(n)]
        if bad:
            raise ValueError(f"not gate names: {', '.join(map(repr, bad))}")
        return sorted({qiskit_name(n) for n in names})

    @field_validator("allowed_includes")
    @classmethod
    def _includes(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(STANDARD_INCLUDES))
        if unknown:
            raise ValueError(
                f"only the standard libraries {', '.join(STANDARD_INCLUDES)} can be included; "
                f"the sanitizer never reads files (got {', '.join(unknown)})"
            )
        return names

    @field_validator("rule_severity")
    @classmethod
    def _severities(cls, overrides: dict[str, Severity]) -> dict[str, Severity]:
        for rule_id in overrides:
            info = RULES.get(rule_id)
            if info is None:
                raise ValueError(f"unknown rule {rule_id!r}; rules are {', '.join(RULES)}")
            if not info.adjustable:
                raise ValueError(
                    f"{rule_id} ({info.name}) guards the parser and always denies; "
                    "raise the corresponding limit instead"
                )
        return overrides

    @property
    def gate_allowlist(self) -> frozenset[str]:
        """Every operation name the policy allows."""
        return frozenset(self.allowed_gates) | frozenset(self.extra_gates)


def _field_keys() -> dict[str, str]:
    """Accepted override key (alias or field name) -> field name."""
    keys: dict[str, str] = {}
    for name, info in SanitizerPolicy.model_fields.items():
        keys[name] = name
        if info.alias:
            keys[info.alias] = name
    return keys


class SanitizerPolicyFile(BaseModel):
    """A default policy and partial overrides per Kubernetes namespace."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    default: SanitizerPolicy = Field(
        default_factory=SanitizerPolicy, description="Policy of namespaces without an override."
    )
    namespaces: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Namespace -> policy fields that replace the default's (lists and maps are "
            "replaced whole, not merged)."
        ),
    )

    @model_validator(mode="after")
    def _overrides_are_valid(self) -> SanitizerPolicyFile:
        for namespace in self.namespaces:
            self.for_namespace(namespace)
        return self

    def for_namespace(self, namespace: str) -> SanitizerPolicy:
        """The default policy with the namespace's override applied."""
        override = self.namespaces.get(namespace)
        if not override:
            return self.default
        keys = _field_keys()
        unknown = sorted(k for k in override if k not in keys)
        if unknown:
            raise ValueError(f"namespace {namespace!r}: unknown policy fields {', '.join(unknown)}")
        # By alias, as the file spells the fields, so that an error names them as written.
        fields = SanitizerPolicy.model_fields
        merged = self.default.model_dump(by_alias=True)
        merged.update({fields[keys[k]].alias or keys[k]: v for k, v in override.items()})
        try:
            return SanitizerPolicy.model_validate(merged)
        except ValidationError as exc:
            problems = errors_in_a_line(exc)
            raise ValueError(f"namespace {namespace!r}: {problems}") from None


def load_policy(path: str | Path) -> SanitizerPolicyFile:
    """Read a policy file (see the module docstring); :class:`PolicyError` when unusable."""
    try:
        data = load_file(path)  # bounded: size, nesting and aliases
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path} must be a mapping, not {type(data).__name__}")
    if not set(data) <= {"default", "namespaces"}:
        data = {"default": data}
    try:
        return SanitizerPolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"policy {path} is invalid: {errors_in_a_line(exc)}") from None
    except ValueError as exc:
        raise PolicyError(f"policy {path} is invalid: {exc}") from None
