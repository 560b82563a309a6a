"""Settings of the operator and agents, in one place; each can be set as QORCH_<NAME>."""

from __future__ import annotations

import json
import os
from typing import Annotated, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

#: A Kubernetes quantity in its usual forms: 250m, 2Gi, 1.5G, 512Mi, or a plain number.
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v),  # cpu: 1
    StringConstraints(pattern=_QUANTITY),
]
ResourceName = Literal["cpu", "memory", "ephemeral-storage"]
LogLevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevelName)
LogLevel = Annotated[
    LogLevelName, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)  # info
]
_REQUESTS: dict[ResourceName, str] = {"cpu": "250m", "memory": "512Mi"}
_LIMITS: dict[ResourceName, str] = {"memory": "2Gi"}


class AgentResources(BaseModel):
    """A container's `resources`, checked before any Deployment is written with them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: dict[ResourceName, Quantity] = Field(default_factory=lambda: dict(_REQUESTS))
    limits: dict[ResourceName, Quantity] = Field(default_factory=lambda: dict(_LIMITS))

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and _amount(request) > _amount(limit):
                raise ValueError(f"the {name} request {request} is above its limit {limit}")
        return self


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SUFFIXES |= {f"{k.upper()}i": 1024.0**n for n, k in enumerate("kmgtpe", 1)}


def _amount(quantity: str) -> float:
    number = quantity.rstrip("mkKMGTPEi")
    return float(number) * _SUFFIXES.get(quantity[len(number) :], 1.0)


def _from_json(value: object) -> object:
    """A variable's JSON text as its object; anything else as given."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None


class Settings(BaseModel):
    """Every knob, documented; environment variables override the defaults."""

    agent_image: str = Field(
        "ghcr.io/qorch/qorch:0.1.0", description="Image of the QPU agent pods (QORCH_AGENT_IMAGE)."
    )
    agent_port: int = Field(8080, description="Port the QPU agent serves on (QORCH_AGENT_PORT).")
    agent_host: str = Field(
        "0.0.0.0", description="Address the QPU agent listens on (QORCH_AGENT_HOST)."
    )
    agent_resources: Annotated[AgentResources, BeforeValidator(_from_json)] = Field(
        default_factory=AgentResources,
        description="Requests and limits of the QPU agent container, as JSON (a container's"
        " `resources`). An agent simulates states of up to half its memory limit: 2Gi holds"
        " 26 qubits, each qubit more doubles it (QORCH_AGENT_RESOURCES).",
    )
    node_manifest: str | None = Field(
        None,
        description="The QPU agent's QuantumNode as JSON, when no --node-file is given"
        " (QORCH_NODE_MANIFEST).",
    )
    trusted_client_key_files: str = Field(
        "",
        description="Public key files of the operators a QPU agent answers, colon-separated"
        " (QORCH_TRUSTED_CLIENT_KEY_FILES).",
    )
    log_level: LogLevel = Field(
        "WARNING", description="Log level of every command (QORCH_LOG_LEVEL)."
    )
    liveness_endpoint: str | None = Field(
        None,
        description="The operator's liveness endpoint, e.g. http://0.0.0.0:8081/healthz"
        " (QORCH_LIVENESS_ENDPOINT).",
    )
    telemetry_image: str = Field(
        "ghcr.io/qorch/qorch:0.1.0",
        description="Image of the telemetry sidecar beside each QPU agent (QORCH_TELEMETRY_IMAGE).",
    )
    telemetry_otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP endpoint the agents' telemetry sidecars export spans to; none"
        " when unset (QORCH_TELEMETRY_OTLP_ENDPOINT).",
    )
    metrics_port: int = Field(
        9090, description="Port of the operator's Prometheus /metrics (QORCH_METRICS_PORT)."
    )
    node_check_seconds: float = Field(
        10.0, description="Interval of the QuantumNode health timer (QORCH_NODE_CHECK_SECONDS)."
    )
    calibration_seconds: float = Field(
        60.0, description="Interval of QuantumNode calibration (QORCH_CALIBRATION_SECONDS)."
    )
    link_check_seconds: float = Field(
        10.0, description="Interval of the EntanglementLink timer (QORCH_LINK_CHECK_SECONDS)."
    )
    capacity_retry_seconds: float = Field(
        2.0,
        description="How often a job waiting for nodes re-plans; a job waiting for capacity is"
        " also woken when any reservation is released, a queued one when its turn comes"
        " (QORCH_CAPACITY_RETRY_SECONDS).",
    )
    job_watch_seconds: float = Field(
        1.0,
        description="How often a running job checks that its nodes and links are still"
        " healthy; a Degraded one pauses and re-routes it (QORCH_JOB_WATCH_SECONDS).",
    )
    identity_key_file: str | None = Field(
        None,
        description="The operator's ML-DSA-65 private key file; when unset the key lives in"
        " the Secret identity_secret, created on first start (QORCH_IDENTITY_KEY_FILE).",
    )
    identity_secret: str = Field(
        "qorch-operator-identity",
        description="Secret holding the operator's identity (QORCH_IDENTITY_SECRET); during a"
        " rotation of the operator's key it also holds `next.pub`, the next key.",
    )
    next_identity_public_key_file: str | None = Field(
        None,
        description="With identity_key_file: the operator's next public key (PREFIX.pub)"
        " during a rotation of its key; new agents are told to trust it beside the current"
        " one (QORCH_NEXT_IDENTITY_PUBLIC_KEY_FILE).",
    )
    operator_namespace: str | None = Field(
        None,
        description="Namespace of the operator's identity Secret (QORCH_OPERATOR_NAMESPACE);"
        " when unset, the operator pod's own, or outside a cluster the kubeconfig context's.",
    )
    trusted_submitters_dir: str | None = Field(
        None,
        description="Folder of cluster-wide trusted submitter public keys (*.pub, each with"
        " optional .notBefore/.notAfter), e.g. a mounted Secret, re-read at each admission;"
        " when set, every DistributedJob must carry a valid signature by one of them or by a"
        " key trusted for its namespace (QORCH_TRUSTED_SUBMITTERS_DIR).",
    )
    require_signed_jobs: bool = Field(
        False,
        description="Require a valid submitter signature on every DistributedJob even when"
        " no cluster-wide keys are set, i.e. with per-namespace keys only"
        " (QORCH_REQUIRE_SIGNED_JOBS).",
    )
    max_signature_validity_seconds: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="Longest a job signature may still be valid for when checked; one"
        " expiring later is refused, and `qorch sign --valid-for` stops there too"
        " (QORCH_MAX_SIGNATURE_VALIDITY_SECONDS).",
    )
    nonce_record_config_map: str = Field(
        "qorch-submitter-nonces",
        description="ConfigMap in the operator's namespace recording the nonces of admitted"
        " signed jobs until they expire (QORCH_NONCE_RECORD_CONFIG_MAP).",
    )
    nonce_record_max_entries: int = Field(
        2000,
        ge=1,
        description="Most unexpired nonces recorded, a quarter of them for one namespace;"
        " beyond, new signed jobs are refused as NonceRecordFull"
        " (QORCH_NONCE_RECORD_MAX_ENTRIES).",
    )
    fail_unverified: bool = Field(
        False,
        description="Fail a job whose result misses its verification threshold"
        " (QORCH_FAIL_UNVERIFIED).",
    )
    require_attestation: bool = Field(
        False,
        description="Treat a QuantumNode without spec.identity.attestation as Unreachable"
        " (AttestationRequired): only TPM-attested nodes get work (QORCH_REQUIRE_ATTESTATION).",
    )
    max_sampling_overhead: float = Field(
        1000.0,
        description="Largest sampling overhead a cut may cost (QORCH_MAX_SAMPLING_OVERHEAD).",
    )
    max_distribution_bits: int = Field(
        24,
        ge=1,
        le=30,
        description="Widest full output distribution a cut job may reconstruct; wider ones"
        " ask for marginals or top-k outcomes (QORCH_MAX_DISTRIBUTION_BITS).",
    )
    priority_classes: str = Field(
        "",
        description="Priority classes jobs may name in spec.priorityClassName, as JSON:"
        ' {"<name>": {"value": 1000, "preemptionPolicy": "PreemptLowerPriority"|"Never"}}'
        " (QORCH_PRIORITY_CLASSES).",
    )
    max_preemptions: int = Field(
        2,
        ge=0,
        description="How often one job may be preempted; then it runs to the end"
        " (QORCH_MAX_PREEMPTIONS).",
    )
    leader_election: bool = Field(
        False,
        description="Run only while holding the Lease leader_election_lease in the operator's"
        " namespace; a standby replica waits for it (QORCH_LEADER_ELECTION).",
    )
    leader_election_lease: str = Field(
        "qorch-operator",
        description="Name of the leader-election Lease (QORCH_LEADER_ELECTION_LEASE).",
    )
    lease_duration_seconds: float = Field(
        15.0,
        ge=2,
        description="How long a standby waits after the last renewal it saw before it takes"
        " the Lease (QORCH_LEASE_DURATION_SECONDS).",
    )
    lease_renew_deadline_seconds: float = Field(
        10.0,
        ge=1,
        description="The leader stops (exits) when it has not renewed the Lease for this long;"
        " shorter than the duration, so it stops before a standby may start"
        " (QORCH_LEASE_RENEW_DEADLINE_SECONDS).",
    )
    lease_retry_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the leader renews and a standby tries the Lease"
        " (QORCH_LEASE_RETRY_SECONDS).",
    )
    sanitizer_policy_file: str | None = Field(
        None,
        description="YAML sanitizer policy; the built-in policy when unset."
        " (QORCH_SANITIZER_POLICY_FILE)",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {
            name: env[f"QORCH_{name.upper()}"]
            for name in cls.model_fields
            if f"QORCH_{name.upper()}" in env
        }
        return cls.model_validate(values)
