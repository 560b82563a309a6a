"""EntanglementLink: a quantum link that distributes Bell pairs between two QuantumNodes."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from .base import API_VERSION, ApiModel, Condition, ObjectMeta
from .crd_info import CrdInfo, PrinterColumn
from .phases import LinkPhase

#: Most purification rounds a link may ask for: each at least doubles the raw pairs.
MAX_PURIFICATION_ROUNDS = 4


class PurificationSpec(ApiModel):
    """Entanglement purification of the link's pairs before jobs use them."""

    protocol: Literal["auto", "dejmps", "bbpssw"] = Field(
        "auto",
        description="DEJMPS or BBPSSW; auto lets the planner pick the one that needs fewer raw"
        " pairs for the job.",
    )
    rounds: int | None = Field(
        None,
        ge=0,
        le=MAX_PURIFICATION_ROUNDS,
        description="Rounds on every pair; unset, the planner chooses up to maxRounds when a"
        " job's fidelityBudget needs better pairs than the link makes raw.",
    )
    max_rounds: int = Field(
        2, ge=0, le=MAX_PURIFICATION_ROUNDS, description="Most rounds the planner may choose."
    )


class EntanglementLinkSpec(ApiModel):
    """Desired state of a link."""

    nodes: list[str] = Field(
        min_length=2, max_length=2, description="Names of the two QuantumNodes it joins."
    )
    fidelity: float = Field(
        gt=0.25, le=1, description="Fidelity of a delivered Bell pair to the ideal state."
    )
    generation_rate_hz: float = Field(gt=0, description="Heralded generation attempts per second.")
    success_probability: float = Field(
        gt=0, le=1, description="Probability that one generation attempt succeeds."
    )
    classical_latency_microseconds: float = Field(
        0,
        ge=0,
        description="Physical one-way latency of the link's classical channel for feed-forward"
        " (fibre and controller time): what simulated programs charge as idle decoherence."
        " The latency of the control plane's own path is measured (status) and never added.",
    )
    min_fidelity: float | None = Field(
        None,
        gt=0.25,
        le=1,
        description="Lowest Bell-pair fidelity tolerated: a probe whose whole confidence"
        " interval lies below it turns the link Degraded. Default: fidelity.",
    )
    purification: PurificationSpec | None = Field(
        None,
        description="Purify pairs (each round consumes two and succeeds with the protocol's"
        " probability); needs a raw fidelity above 0.5.",
    )

    @model_validator(mode="after")
    def _two_distinct_nodes(self) -> Self:
        if self.nodes[0] == self.nodes[1]:
            raise ValueError(f"nodes must name two different QuantumNodes, got {self.nodes}")
        return self


class LinkProbe(ApiModel):
    """The last probe of the link's Bell pairs: what was measured, with its uncertainty."""

    pairs: int = Field(description="Heralded pairs measured (half in ZZ, half in XX).")
    attempts: int = Field(description="Generation attempts it took to herald them.")
    fidelity: float = Field(description="Pair fidelity, the ends' readout errors taken out.")
    fidelity_lower: float = Field(description="Lower bound of the fidelity's interval.")
    fidelity_upper: float = Field(description="Upper bound of the fidelity's interval.")
    confidence: float = Field(description="Confidence of the interval (Wilson score).")
    success_rate: float = Field(description="Heralded successes per attempt.")
    pair_rate_hz: float = Field(description="Heralded pairs per second of generation.")
    source: str = Field(
        description="linkState: pairs of the link's physical state, as its agent holds it;"
        " request: the agent holds no state for the link and made pairs of the declared"
        " figures, so the probe measured nothing of the link."
    )
    time: str = Field(description="RFC 3339 time of the probe.")


class EntanglementLinkStatus(ApiModel):
    """Observed state of a link."""

    phase: LinkPhase = Field("Establishing", description="Summary for humans.")
    conditions: list[Condition] = Field(default_factory=list, description="Observations.")
    observed_generation: int = Field(0, description="Generation last reconciled.")
    measured_fidelity: float | None = Field(
        None, description="Bell-pair fidelity from the last probe (readout errors taken out)."
    )
    measured_success_rate: float | None = Field(None, description="Success rate from probes.")
    probe: LinkProbe | None = Field(None, description="The last probe, with its uncertainty.")
    bell_pairs_consumed: int = Field(0, description="Bell pairs consumed by jobs so far.")
    feedforward_latency_microseconds: float | None = Field(
        None,
        description="Measured one-way latency of the classical path between the two nodes'"
        " agents, agent to agent over their post-quantum channel (median of timestamped"
        " echoes; no operator hop). A job-time input, never charged as decoherence.",
    )
    last_probe_time: str | None = Field(None, description="RFC 3339 time of the last probe.")


class EntanglementLink(ApiModel):
    """A quantum link between two processors."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="EntanglementLink",
        plural="entanglementlinks",
        short_names=["qlink"],
        columns=[
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("A", "string", ".spec.nodes[0]"),
            PrinterColumn("B", "string", ".spec.nodes[1]"),
            PrinterColumn("Fidelity", "number", ".spec.fidelity"),
            PrinterColumn("Measured", "number", ".status.measuredFidelity"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
            PrinterColumn(
                "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', priority=1
            ),
        ],
    )

    api_version: Literal["qorch.dev/v1alpha1"] = Field(API_VERSION, description="API version.")
    kind: Literal["EntanglementLink"] = Field("EntanglementLink", description="Kind.")
    metadata: ObjectMeta
    spec: EntanglementLinkSpec
    status: EntanglementLinkStatus = Field(default_factory=EntanglementLinkStatus)
