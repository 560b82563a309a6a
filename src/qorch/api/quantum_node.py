"""QuantumNode: one quantum processor, simulated by qorch (`aer`) or reached at an endpoint."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from .base import API_VERSION, ApiModel, Condition, ObjectMeta
from .crd_info import CrdInfo, PrinterColumn
from .phases import NodePhase

DEFAULT_BASIS_GATES = ["id", "rz", "sx", "x", "cx", "measure", "reset", "delay"]


class NoiseSpec(ApiModel):
    """Noise of the processor; every field optional, an absent field adds no noise."""

    t1_microseconds: float | None = Field(None, gt=0, description="Energy relaxation time T1.")
    t2_microseconds: float | None = Field(
        None, gt=0, description="Dephasing time T2; at most 2*T1 when both are set."
    )
    single_qubit_error: float | None = Field(
        None, ge=0, le=1, description="Depolarizing error probability of each single-qubit gate."
    )
    two_qubit_error: float | None = Field(
        None, ge=0, le=1, description="Depolarizing error probability of each two-qubit gate."
    )
    readout_error: float | None = Field(
        None, ge=0, le=0.5, description="Probability that a measurement reports the wrong bit."
    )
    single_qubit_gate_nanoseconds: float | None = Field(
        None, ge=0, description="Duration of a single-qubit gate, for thermal relaxation."
    )
    two_qubit_gate_nanoseconds: float | None = Field(
        None, ge=0, description="Duration of a two-qubit gate, for thermal relaxation."
    )
    measure_nanoseconds: float | None = Field(
        None, ge=0, description="Duration of a measurement, for thermal relaxation."
    )

    @model_validator(mode="after")
    def _t2_bounded_by_t1(self) -> Self:
        t1, t2 = self.t1_microseconds, self.t2_microseconds
        if t1 is not None and t2 is not None and t2 > 2 * t1:
            raise ValueError(f"t2Microseconds ({t2}) must be at most 2 * t1Microseconds ({2 * t1})")
        return self


class BackendSpec(ApiModel):
    """Where the processor runs."""

    type: Literal["aer", "external"] = Field(
        "aer",
        description="aer: the operator runs a simulated QPU pod; external: an endpoint it does"
        " not own.",
    )
    endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base URL of the QPU agent; required for external backends.",
    )

    @model_validator(mode="after")
    def _external_needs_endpoint(self) -> Self:
        if self.type == "external" and not self.endpoint:
            raise ValueError("backend.endpoint is required when backend.type is external")
        return self


class PcrValue(ApiModel):
    """The expected value of one PCR."""

    index: int = Field(ge=0, le=23, description="PCR index (the agent measures into 23).")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Expected SHA-256 bank value, lowercase hex."
    )


class AttestationSpec(ApiModel):
    """The node's TPM 2.0, as pinned at enrolment (`qorch tpm enroll` prints it)."""

    ek_public: str = Field(
        description="PEM public endorsement key (EK) of the node's TPM; the AK was shown to"
        " live in the same TPM by credential activation at enrolment.",
        max_length=4096,
    )
    ak_public: str = Field(
        description="PEM public attestation key (AK) that signs the node's quotes.",
        max_length=4096,
    )
    pcrs: list[PcrValue] = Field(
        min_length=1,
        max_length=24,
        description="Expected PCR values while the agent runs its enrolled code and node file.",
    )

    @model_validator(mode="after")
    def _distinct_pcrs(self) -> Self:
        indexes = [p.index for p in self.pcrs]
        if len(set(indexes)) != len(indexes):
            raise ValueError(f"attestation.pcrs names a PCR twice: {indexes}")
        return self


class KeyRotation(ApiModel):
    """A change of the node's key with an overlap window: `nextPublicKey` is accepted from
    `notBefore`, `publicKey` until `notAfter`, both in between. Once the window has passed,
    finish by moving the next key into `publicKey` and removing `rotation`.

    Checked when the node is: a key that is not base64 ML-DSA-65, a next key equal to the
    current one, or a window that ends before it starts makes the node Unreachable with
    reason InvalidIdentity; a node presenting a key outside its window, KeyRetired or
    KeyNotYetValid.
    """

    next_public_key: str = Field(
        description="Base64 ML-DSA-65 public key the node rotates to (`qorch keygen` writes it"
        " as PREFIX.pub); must differ from publicKey."
    )
    not_before: str | None = Field(
        None,
        description="RFC 3339 time from which nextPublicKey is accepted; at once when unset.",
    )
    not_after: str | None = Field(
        None,
        description="RFC 3339 time after which publicKey is retired and refused; when unset,"
        " both keys are accepted until the spec changes. Must be after notBefore.",
    )


class IdentitySpec(ApiModel):
    """The node's pinned identity."""

    public_key: str | None = Field(
        None, description="Base64 ML-DSA-65 public key of the node; pinned, never learned."
    )
    attestation: AttestationSpec | None = Field(
        None,
        description="The node's TPM: when set, the operator challenges the agent for a quote"
        " binding publicKey to these PCR values, and a node that fails is Unreachable.",
    )

    @model_validator(mode="after")
    def _attestation_binds_a_pinned_key(self) -> Self:
        if self.attestation is not None and not self.public_key:
            raise ValueError("identity.attestation needs identity.publicKey: the quote binds it")
        return self

    rotation: KeyRotation | None = Field(
        None,
        description="A rotation of publicKey with an overlap window: nextPublicKey is accepted"
        " from notBefore, publicKey until notAfter, both in between. Needs publicKey; once the"
        " window has passed, move nextPublicKey into publicKey and remove rotation.",
    )


class SafetySpec(ApiModel):
    """Safety thresholds of the node."""

    max_error_rate: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Highest measured error rate tolerated before the node turns Degraded.",
    )


class QuantumNodeSpec(ApiModel):
    """Desired state of a quantum processor."""

    qubits: int = Field(ge=1, le=4096, description="Number of physical qubits.")
    basis_gates: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BASIS_GATES),
        min_length=1,
        description="Native instructions; circuits are transpiled to these.",
    )
    coupling_map: list[list[int]] | None = Field(
        None, description="Directed qubit pairs [control, target] a two-qubit gate may act on."
    )
    noise: NoiseSpec = Field(default_factory=NoiseSpec, description="Noise of the processor.")
    backend: BackendSpec = Field(default_factory=BackendSpec, description="Where it runs.")
    identity: IdentitySpec = Field(default_factory=IdentitySpec, description="Pinned identity.")
    safety: SafetySpec = Field(default_factory=SafetySpec, description="Safety thresholds.")

    @model_validator(mode="after")
    def _coupling_map_in_range(self) -> Self:
        for pair in self.coupling_map or []:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"couplingMap entry {pair} must be two distinct qubit indices")
            if not all(0 <= q < self.qubits for q in pair):
                raise ValueError(
                    f"couplingMap entry {pair} names a qubit outside 0..{self.qubits - 1}"
                )
        return self


class Calibration(ApiModel):
    """Result of the last calibration run on the node."""

    fidelity: float | None = Field(None, description="Measured calibration fidelity, 0..1.")
    single_qubit_error: float | None = Field(None, description="Measured single-qubit error.")
    two_qubit_error: float | None = Field(None, description="Measured two-qubit error.")
    readout_error: float | None = Field(None, description="Measured readout error.")
    readout_error_0to1: float | None = Field(
        None, description="Measured p(1|0): a prepared |0> read as 1, mean over the qubits read."
    )
    readout_error_1to0: float | None = Field(
        None, description="Measured p(0|1): a prepared |1> read as 0, mean over the qubits read."
    )
    measured_at: str | None = Field(None, description="RFC 3339 time of the calibration.")


class QuantumNodeStatus(ApiModel):
    """Observed state of a quantum processor."""

    phase: NodePhase = Field("Pending", description="Summary for humans.")
    conditions: list[Condition] = Field(default_factory=list, description="Observations.")
    observed_generation: int = Field(0, description="Generation last reconciled.")
    endpoint: str | None = Field(None, description="URL the pipeline uses to reach the agent.")
    calibration: Calibration | None = Field(None, description="Last calibration result.")
    allocated_qubits: int = Field(0, description="Qubits reserved by running jobs.")
    last_heartbeat: str | None = Field(None, description="RFC 3339 time of the last health check.")
    identity_fingerprint: str | None = Field(
        None,
        description="SHA-256 fingerprint of the node key that authenticated the last call"
        " that got through (before any did, the key pinned first): during a rotation, which"
        " of the two keys the node uses.",
    )
    accepted_fingerprints: list[str] = Field(
        default_factory=list,
        description="SHA-256 fingerprints of the node keys accepted now: two inside a"
        " rotation window, one otherwise.",
    )


class QuantumNode(ApiModel):
    """A quantum processor."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="QuantumNode",
        plural="quantumnodes",
        short_names=["qn"],
        columns=[
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Qubits", "integer", ".spec.qubits"),
            PrinterColumn("Allocated", "integer", ".status.allocatedQubits"),
            PrinterColumn("Backend", "string", ".spec.backend.type"),
            PrinterColumn("Fidelity", "number", ".status.calibration.fidelity"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
            PrinterColumn(
                "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', priority=1
            ),
            PrinterColumn("Endpoint", "string", ".status.endpoint", priority=1),
        ],
    )

    api_version: Literal["qorch.dev/v1alpha1"] = Field(API_VERSION, description="API version.")
    kind: Literal["QuantumNode"] = Field("QuantumNode", description="Kind.")
    metadata: ObjectMeta
    spec: QuantumNodeSpec
    status: QuantumNodeStatus = Field(default_factory=QuantumNodeStatus)
