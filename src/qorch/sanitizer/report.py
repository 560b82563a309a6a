"""What the sanitizer found: violations, summary figures, the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Location(_Model):
    """Where a violation is: the top-level instruction and, where known, the source line."""

    instruction: int | None = Field(
        None, description="Index of the top-level instruction in the parsed circuit."
    )
    line: int | None = Field(None, description="1-based line in the OpenQASM source.")


class Violation(_Model):
    """One finding: which rule, how bad, what to change, and where."""

    rule: str = Field(description="Stable rule id, e.g. QS101.")
    severity: Literal["deny", "warn"] = Field(description="deny rejects the job; warn does not.")
    message: str = Field(description="What limit was exceeded by which value, and what to change.")
    location: Location = Field(default_factory=Location, description="Where, if known.")


class SanitizerStats(_Model):
    """Summary figures of the circuit; unset when the sanitizer stopped before measuring."""

    qubits: int | None = Field(None, description="Qubits of the circuit.")
    clbits: int | None = Field(None, description="Classical bits of the circuit.")
    depth: int | None = Field(None, description="Depth, for loops unrolled.")
    size: int | None = Field(None, description="Operations, for loops unrolled.")
    two_qubit_gates: int | None = Field(
        None, description="Gates on two or more qubits, custom gates expanded."
    )
    measurements: int | None = Field(None, description="Measurements, for loops unrolled.")
    estimated_duration_seconds: float | None = Field(
        None, description="Critical-path duration from the target's gate times, seconds."
    )


class SanitizerReport(_Model):
    """The verdict on one circuit."""

    accepted: bool = Field(description="True when no violation has severity deny.")
    violations: list[Violation] = Field(
        default_factory=list, description="Findings, denials first."
    )
    stats: SanitizerStats = Field(default_factory=SanitizerStats, description="Summary figures.")

    @property
    def denials(self) -> list[Violation]:
        """Violations that reject the circuit."""
        return [v for v in self.violations if v.severity == "deny"]

    def to_status(self) -> dict[str, Any]:
        """The report as a Kubernetes status field: JSON types, camelCase, unset values left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_summary(self) -> dict[str, Any]:
        """The compact form printed by ``qorch sanitize --output json``."""
        return {
            "accepted": self.accepted,
            "violations": [
                {
                    "rule": v.rule,
                    "severity": v.severity,
                    "message": v.message,
                    "location": v.location.model_dump(exclude_none=True),
                }
                for v in self.violations
            ],
        }


@dataclass(frozen=True)
class SanitizerResult:
    """The report and, once parsing succeeded, the parsed circuit (so nobody parses twice)."""

    report: SanitizerReport
    circuit: QuantumCircuit | None = None

    @property
    def accepted(self) -> bool:
        """Whether the circuit passed the policy."""
        return self.report.accepted


def finding(
    rule: str, message: str, *, instruction: int | None = None, line: int | None = None
) -> Violation:
    """A denying violation; the verdict applies the policy's severity overrides later."""
    return Violation(
        rule=rule,
        severity="deny",
        message=message,
        location=Location(instruction=instruction, line=line),
    )
