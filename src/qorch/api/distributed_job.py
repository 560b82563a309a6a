"""DistributedJob: an OpenQASM circuit to run across the QuantumNodes."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from .base import API_VERSION, ApiModel, Condition, ObjectMeta
from .crd_info import CrdInfo, PrinterColumn
from .phases import JobPhase, JobPhases


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the job's namespace."""

    name: str = Field(min_length=1, description="ConfigMap name.")
    key: str = Field(min_length=1, description="Key holding the OpenQASM source.")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the source (UTF-8, lowercase hex): the job runs only that"
        " source. A signed job must set it, as its signature covers the spec, not the"
        " ConfigMap: `kubectl get configmap NAME -o jsonpath='{.data.KEY}' | sha256sum`.",
    )

    def unsigned_source(self) -> str | None:
        """Why a signature over the spec would not cover the source this names, or None."""
        if self.sha256 is not None:
            return None
        path = self.key.replace(".", "\\.")  # a dot in a JSONPath key is escaped
        return (
            f"the circuit comes from ConfigMap {self.name!r} key {self.key!r}, which a"
            " signature does not cover: set spec.circuit.configMapRef.sha256 to the SHA-256"
            f" of that source (kubectl get configmap {self.name} -o"
            f" jsonpath='{{.data.{path}}}' | sha256sum), then sign the job again"
        )


def source_sha256(source: str) -> str:
    """The digest `ConfigMapKeyRef.sha256` and `SanitizerStatus.sourceSha256` hold."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class CircuitSource(ApiModel):
    """The circuit, inline or from a ConfigMap; exactly one of the two."""

    qasm: str | None = Field(None, description="Inline OpenQASM 2 or 3 source.")
    config_map_ref: ConfigMapKeyRef | None = Field(
        None, description="ConfigMap key holding the OpenQASM source."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.qasm is None) == (self.config_map_ref is None):
            raise ValueError("set exactly one of circuit.qasm and circuit.configMapRef")
        return self


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement, as in Kubernetes."""

    key: str = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="Operator.")
    values: list[str] = Field(default_factory=list, description="Values for In and NotIn.")


class LabelSelector(ApiModel):
    """A Kubernetes label selector over QuantumNodes."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Exact label matches.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Set-based requirements."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            value = labels.get(req.key)
            ok = {
                "In": present and value in req.values,
                "NotIn": not present or value not in req.values,
                "Exists": present,
                "DoesNotExist": not present,
            }[req.operator]
            if not ok:
                return False
        return True


#: Strategies a job may name. The built-in ones are the CRD's enum; the pipeline may register
#: more (`qorch.pipeline.strategies.register`), which the models accept from then on.
STRATEGIES: list[str] = ["single", "teleport", "cut", "locc-cut"]


def _strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return name


def _strategy_or_auto(name: str) -> str:
    return name if name == "auto" else _strategy(name)


StrategyName = Annotated[
    str, AfterValidator(_strategy), WithJsonSchema({"type": "string", "enum": [*STRATEGIES]})
]
StrategyChoice = Annotated[
    str,
    AfterValidator(_strategy_or_auto),
    WithJsonSchema({"type": "string", "enum": ["auto", *STRATEGIES]}),
]


#: Most outcomes a cut job may ask for by `output.topK`, and marginals it may list.
MAX_TOP_K = 1024
MAX_MARGINALS = 64


class OutputSpec(ApiModel):
    """What a cut job without observables returns in place of its full distribution."""

    marginals: list[list[int]] | None = Field(
        None,
        max_length=MAX_MARGINALS,
        description="Lists of classical bit indices; each gets its marginal distribution (the"
        " first bit listed is the rightmost character of a key).",
    )
    top_k: int | None = Field(
        None,
        ge=1,
        le=MAX_TOP_K,
        description="The k most probable outcomes over all classical bits, found by CutQC's"
        " dynamic definition without holding the full distribution.",
    )

    @model_validator(mode="after")
    def _bits(self) -> Self:
        for bits in self.marginals or []:
            if not bits or min(bits) < 0 or len(set(bits)) != len(bits):
                raise ValueError(
                    f"marginal {bits} must be a non-empty list of distinct classical bit"
                    " indices (0 or more)"
                )
        return self


#: Most observables a job may list, and their longest Pauli string (the qubits of the largest
#: QuantumNode). Grouping them by qubit-wise commutation (Qiskit's) holds a graph of every
#: pair: 4,000 random 10-qubit strings took 1.4 GiB and 6 s, 20,000 more memory than the
#: machine had; and each group is one more circuit, run with every shot of the job.
MAX_OBSERVABLES = 1024
MAX_OBSERVABLE_QUBITS = 4096

#: Kubernetes' bounds for a priority (PriorityClass.value is an int32); also what a timeout in
#: seconds may be, so that nothing past the API server's integers is ever accepted here.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class DistributedJobSpec(ApiModel):
    """Desired state of a job."""

    circuit: CircuitSource = Field(description="The OpenQASM circuit to run.")
    shots: int = Field(1024, ge=1, le=1_000_000, description="Number of shots.")
    observables: list[Annotated[str, Field(max_length=MAX_OBSERVABLE_QUBITS)]] | None = Field(
        None,
        max_length=MAX_OBSERVABLES,
        description="Pauli strings (e.g. ZZI) whose expectation values to estimate; qubit 0 is"
        f" the rightmost character. At most {MAX_OBSERVABLES}.",
    )
    strategy: StrategyChoice = Field(
        "auto", description="How to spread the circuit over nodes; auto picks the best estimate."
    )
    node_selector: LabelSelector | None = Field(
        None, description="Only QuantumNodes matching this selector are used."
    )
    fidelity_budget: float | None = Field(
        None, ge=0, le=1, description="Lowest acceptable estimated fidelity of the plan."
    )
    priority: int = Field(
        0,
        ge=INT32_MIN,
        le=INT32_MAX,
        description="Higher is placed first when capacity is short; equal priorities in"
        " admission order. A job without priorityClassName never preempts another.",
    )
    priority_class_name: str | None = Field(
        None,
        max_length=253,
        description="A priority class of the operator's configuration (QORCH_PRIORITY_CLASSES):"
        " its value is the job's priority, and with preemptionPolicy PreemptLowerPriority a"
        " job that waits for capacity preempts running jobs of lower priority"
        " (docs/preemption.md).",
    )
    timeout_seconds: int = Field(
        600, ge=1, le=INT32_MAX, description="Give up after this long (at most 68 years)."
    )
    signature: str | None = Field(
        None,
        description="Submitter's ML-DSA-65 signature (`qorch sign`) binding the spec to this"
        " namespace and name, a nonce and an expiry, which it carries.",
    )
    mitigation: Literal["none", "readout"] = Field(
        "none",
        description="readout: also correct the result with the nodes' latest readout"
        " calibration; the raw result is kept beside the mitigated one.",
    )
    output: OutputSpec | None = Field(
        None,
        description="For a cut job without observables: marginals or top-k outcomes instead of"
        " the full distribution (which is refused above QORCH_MAX_DISTRIBUTION_BITS bits).",
    )
    suspend: bool | None = Field(
        None,
        description="true: admit and plan the job, then hold it in phase Planned with its"
        " candidates in status.plan, reserving nothing; set it to false to run the plan (or"
        " a new one if the resources it depended on changed). A running job is not stopped.",
    )

    @model_validator(mode="after")
    def _pauli_strings(self) -> Self:
        for obs in self.observables or []:
            if not obs or set(obs) - set("IXYZ"):
                raise ValueError(f"observable {obs!r} must be a non-empty string of I, X, Y, Z")
        return self


#: Spec fields that may change after creation: the rest is immutable (a CEL rule says so).
MUTABLE_SPEC_FIELDS = frozenset({"suspend"})


def immutable_spec_rule() -> str:
    """The CEL rule that keeps every spec field but the mutable ones as created."""
    parts = []
    for name, info in DistributedJobSpec.model_fields.items():
        if name in MUTABLE_SPEC_FIELDS:
            continue
        key = info.alias or name
        if info.is_required():
            parts.append(f"self.{key} == oldSelf.{key}")
        else:
            parts.append(
                f"has(self.{key}) == has(oldSelf.{key})"
                f" && (!has(self.{key}) || self.{key} == oldSelf.{key})"
            )
    return " && ".join(parts)


def stored_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A DistributedJob spec as the API server stores it (defaults filled in): the form a
    submitter's signature covers, so it verifies before and after admission alike."""
    return DistributedJobSpec.model_validate(spec).wire()


TERMINAL_PHASES = JobPhases.TERMINAL


class SanitizerViolation(ApiModel):
    """One finding of the circuit sanitizer."""

    rule: str = Field(description="Stable rule id, e.g. QS101.")
    severity: Literal["deny", "warn"] = Field(description="deny rejects the job; warn does not.")
    message: str = Field(description="What is wrong and what to change.")
    location: dict[str, int] = Field(
        default_factory=dict, description="instruction index and source line, where known."
    )


class SanitizerStatus(ApiModel):
    """The sanitizer report of the job's circuit."""

    accepted: bool = Field(description="Whether the circuit passed the policy.")
    violations: list[SanitizerViolation] = Field(default_factory=list, description="Findings.")
    stats: dict[str, float] = Field(
        default_factory=dict, description="Qubits, depth, size and other measured figures."
    )
    source_sha256: str | None = Field(
        None,
        description="SHA-256 of the source it passed: the job runs only that source, and"
        " fails (CircuitChanged) if its ConfigMap holds another one when read again.",
    )


class Placement(ApiModel):
    """Logical qubits placed on one node."""

    node: str = Field(description="QuantumNode name.")
    qubits: list[int] = Field(description="Logical qubit indices of the circuit on this node.")


class PurificationUse(ApiModel):
    """The purification a plan runs on one link's pairs."""

    protocol: Literal["dejmps", "bbpssw"] = Field(description="Protocol.")
    rounds: int = Field(description="Rounds per pair used; each consumes two pairs.")
    input_fidelity: float = Field(
        description="Fidelity of a raw pair when purification starts (after its memory wait)."
    )
    output_fidelity: float = Field(description="Fidelity of a purified pair.")
    success_probabilities: list[float] = Field(
        default_factory=list, description="Probability that each round succeeds."
    )


class LinkUse(ApiModel):
    """Bell pairs a plan consumes on one link."""

    link: str = Field(description="EntanglementLink name.")
    bell_pairs: int = Field(description="Bell pairs consumed per shot.")
    raw_bell_pairs: float | None = Field(
        None,
        description="Expected raw (heralded) pairs per shot the link makes for them:"
        " bellPairs, times what purification consumes per pair.",
    )
    pair_fidelity: float | None = Field(
        None,
        description="Fidelity of a pair as the program uses it: heralded, aged in memory while"
        " waiting for its partner, purified.",
    )
    generation_seconds: float | None = Field(
        None, description="Expected time to herald the raw pairs of one shot."
    )
    purification: PurificationUse | None = Field(None, description="Purification, if any.")


class Program(ApiModel):
    """One unit of work sent to one agent."""

    id: str = Field(description="Program id, stable within the attempt.")
    node: str = Field(description="QuantumNode whose agent runs it.")
    shots: int = Field(description="Shots of this program.")
    note: str = Field("", description="Why the program runs where it does.")


class StrategyEstimate(ApiModel):
    """One strategy considered for the job."""

    strategy: StrategyName = Field(description="Strategy.")
    estimated_fidelity: float = Field(description="Estimated end-to-end fidelity, 0..1.")
    feasible: bool = Field(description="Whether the strategy can run the job now.")
    reason: str = Field("", description="What limits it, or why it cannot run.")
    placement: list[Placement] = Field(
        default_factory=list, description="Qubits per node, for a feasible strategy."
    )
    bell_pairs: list[LinkUse] = Field(
        default_factory=list, description="Bell pairs per shot per link it would consume."
    )
    subexperiments: int | None = Field(None, description="Cutting subexperiments, in all.")
    sampling_overhead: float | None = Field(None, description="Cutting sampling overhead.")
    estimated_seconds: float | None = Field(
        None,
        description="Estimated device time of all its shots, from the nodes' declared gate"
        " times and the links' pair rates; classical work is not counted.",
    )


class Plan(ApiModel):
    """How the job is spread over the nodes."""

    strategy: StrategyName = Field(description="Chosen strategy.")
    placement: list[Placement] = Field(description="Qubits per node.")
    programs: list[Program] = Field(description="Work sent to agents.")
    nodes: str = Field("", description="Comma-separated node names, for kubectl get.")
    nonlocal_gates: int = Field(0, description="Two-qubit gates spanning two nodes.")
    bell_pairs: list[LinkUse] = Field(default_factory=list, description="Bell pairs per link.")
    estimated_fidelity: float | None = Field(None, description="Estimated fidelity, 0..1.")
    sampling_overhead: float | None = Field(None, description="Cutting sampling overhead.")
    reason: str = Field("", description="Why this strategy and placement were chosen.")
    reservation: dict[str, float] = Field(
        default_factory=dict,
        description="What the plan holds while it runs: qn/<node> qubits, qlink/<link> Bell"
        " pairs per second.",
    )
    candidates: list[StrategyEstimate] = Field(
        default_factory=list, description="Every strategy's estimate, the chosen one included."
    )
    figures: dict[str, str] = Field(
        default_factory=dict,
        description="Where the figures it was planned with come from, per qn/<node> and"
        " qlink/<link>: declared (the spec), calibrated (a node's calibration) or measured"
        " (a link's probe).",
    )


class ProgramProgress(ApiModel):
    """Progress of one program."""

    id: str = Field(description="Program id.")
    node: str = Field(description="QuantumNode name.")
    state: Literal["Pending", "Running", "Done", "Failed", "Cancelled"] = Field(
        description="State."
    )
    attempt: int = Field(description="Job attempt this progress belongs to.")
    message: str = Field("", description="Details, e.g. the error of a failed program.")
    seconds: float | None = Field(None, description="Execution time reported by the agent.")


class Verification(ApiModel):
    """Comparison of the result with an exact classical simulation."""

    method: str = Field(
        description="statevector, stabilizer, or none; a note follows when the check is weak"
        " (the threshold is 0 because outcomes far outnumber shots)."
    )
    hellinger_fidelity: float | None = Field(
        None, description="Hellinger fidelity of the measured counts to the exact distribution."
    )
    absolute_error: float | None = Field(
        None, description="Largest absolute error of the expectation values against exact ones."
    )
    threshold: float | None = Field(
        None,
        description="Lowest Hellinger fidelity (or highest absolute error) that counts as"
        " verified.",
    )


class MitigatedResult(ApiModel):
    """The result corrected with the readout calibration of the nodes that produced it."""

    method: str = Field(description="How the correction was made.")
    quasi_probabilities: dict[str, float] | None = Field(
        None, description="Mitigated outcome probabilities (may be slightly negative)."
    )
    expectation_values: list[float] | None = Field(
        None, description="Mitigated expectation values of spec.observables, in order."
    )
    standard_errors: list[float] | None = Field(
        None,
        description="Standard errors of the mitigated expectation values: shot noise and the"
        " calibration's own sampling error.",
    )
    projected: list[int] = Field(
        default_factory=list,
        description="Indices of the expectation values the correction put outside [-1, 1],"
        " reported on the nearest bound; their standard errors are those of the estimate"
        " before projection.",
    )
    calibrations: list[str] = Field(
        default_factory=list, description="node@time of each readout calibration used."
    )
    verification: Verification | None = Field(
        None, description="The mitigated result checked against exact simulation."
    )


class ReconstructedDistribution(ApiModel):
    """An output distribution knitted from a cut job's subexperiments."""

    bits: list[int] = Field(
        description="Classical bits the keys read; the first is the rightmost character."
    )
    quasi_probabilities: dict[str, float] = Field(
        description="Reconstructed quasi-probabilities (may be slightly negative), largest in"
        " magnitude first."
    )
    standard_errors: dict[str, float] = Field(
        description="Standard error of each quasi-probability from shot noise."
    )
    probabilities: dict[str, float] | None = Field(
        None,
        description="The nearest probability distribution (Smolin-Gambetta-Smith); absent for"
        " topK, a partial list.",
    )
    outcomes: int = Field(description="Outcomes with a nonzero quasi-probability.")
    omitted_outcomes: int = Field(
        0, description="Outcomes not listed (the smallest), beyond the listing limit."
    )
    omitted_weight: float = Field(
        0.0, description="Probability of the omitted outcomes in the nearest distribution."
    )
    verification: Verification | None = Field(
        None, description="This distribution checked against exact simulation."
    )


class JobResult(ApiModel):
    """Result of the job."""

    counts: dict[str, int] | None = Field(None, description="Measured outcome counts.")
    expectation_values: list[float] | None = Field(
        None, description="Expectation values of spec.observables, in order."
    )
    standard_errors: list[float] | None = Field(
        None, description="Standard errors of the expectation values."
    )
    verification: Verification | None = Field(None, description="Check against exact simulation.")
    mitigated: MitigatedResult | None = Field(
        None, description="With spec.mitigation: the readout-corrected result."
    )
    distribution: ReconstructedDistribution | None = Field(
        None, description="Cut without observables: the full output distribution."
    )
    marginals: list[ReconstructedDistribution] | None = Field(
        None, description="Cut with spec.output.marginals: one per list, in order."
    )
    top_outcomes: ReconstructedDistribution | None = Field(
        None, description="Cut with spec.output.topK: the most probable outcomes."
    )


class Reroute(ApiModel):
    """A re-plan away from a resource that failed or degraded while the job ran on it."""

    attempt: int = Field(description="The attempt that was stopped.")
    resource: str = Field(description="Kind/name of the resource, e.g. QuantumNode/qpu-a.")
    reason: str = Field(description="Why it was left, e.g. Degraded or AgentUnreachable.")
    message: str = Field("", description="Details.")
    time: str = Field(description="RFC 3339 time of the re-plan.")


class Timings(ApiModel):
    """When the job passed each step, and how long steps took."""

    admitted_at: str | None = Field(None, description="RFC 3339 time of admission.")
    started_at: str | None = Field(None, description="RFC 3339 time of the first dispatch.")
    finished_at: str | None = Field(None, description="RFC 3339 time of the terminal phase.")
    sanitize_seconds: float | None = Field(None, description="Time spent in the sanitizer.")
    plan_seconds: float | None = Field(None, description="Time spent planning.")
    resumed_at: str | None = Field(
        None,
        description="RFC 3339 time spec.suspend was last set to false; timeoutSeconds counts"
        " from here for a job that was suspended.",
    )
    execute_seconds: float | None = Field(None, description="Wall time of dispatch and collect.")


class DistributedJobStatus(ApiModel):
    """Observed state of a job."""

    phase: JobPhase = Field("Pending", description="Summary for humans.")
    conditions: list[Condition] = Field(default_factory=list, description="Observations.")
    observed_generation: int = Field(0, description="Generation last reconciled.")
    attempt: int = Field(0, description="Execution attempt; a re-plan starts a new one.")
    message: str = Field("", description="Last notable event, for humans.")
    sanitizer: SanitizerStatus | None = Field(None, description="Sanitizer report.")
    plan: Plan | None = Field(None, description="Placement and strategy.")
    progress: list[ProgramProgress] = Field(default_factory=list, description="Per program.")
    result: JobResult | None = Field(None, description="Result.")
    timings: Timings = Field(default_factory=Timings, description="Timings.")
    trace_id: str | None = Field(None, description="Trace id of the job's current attempt.")
    reroutes: list[Reroute] = Field(
        default_factory=list,
        description="Re-plans away from failed or degraded resources; the job does not return"
        " to them.",
    )
    preemptions: int = Field(
        0,
        description="Times a job of higher priority preempted this one; past"
        " QORCH_MAX_PREEMPTIONS it is not preempted again.",
    )


class DistributedJob(ApiModel):
    """A circuit to run across quantum processors."""

    crd: ClassVar[CrdInfo] = CrdInfo(
        kind="DistributedJob",
        plural="distributedjobs",
        short_names=["djob"],
        columns=[
            PrinterColumn("Phase", "string", ".status.phase"),
            PrinterColumn("Strategy", "string", ".status.plan.strategy"),
            PrinterColumn("Nodes", "string", ".status.plan.nodes"),
            PrinterColumn("Fidelity", "number", ".status.plan.estimatedFidelity"),
            PrinterColumn("Shots", "integer", ".spec.shots"),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
            PrinterColumn(
                "Reason",
                "string",
                '.status.conditions[?(@.type=="Succeeded")].reason',
                priority=1,
            ),
            PrinterColumn("Message", "string", ".status.message", priority=1),
        ],
    )

    api_version: Literal["qorch.dev/v1alpha1"] = Field(API_VERSION, description="API version.")
    kind: Literal["DistributedJob"] = Field("DistributedJob", description="Kind.")
    metadata: ObjectMeta
    spec: DistributedJobSpec
    status: DistributedJobStatus = Field(default_factory=DistributedJobStatus)
