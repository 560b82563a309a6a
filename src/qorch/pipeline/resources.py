"""Observed state of QuantumNodes and EntanglementLinks, shared by both drivers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from qorch.agent_protocol import (
    AgentError,
    CalibrateRequest,
    ErrorCode,
    HealthRequest,
    ProbeLinkRequest,
    ask,
)
from qorch.api import EntanglementLink, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import ConditionStatus, get_condition, now_rfc3339, set_condition
from qorch.api.entanglement_link import EntanglementLinkStatus, LinkProbe
from qorch.api.phases import LinkPhases, NodePhases
from qorch.api.quantum_node import Calibration, QuantumNodeStatus
from qorch.qpu.calibration import READOUT_QUBITS
from qorch.qpu.calibration import SHOTS as CALIBRATION_SHOTS
from qorch.qpu.link_probe import CONFIDENCE, fidelity_interval
from qorch.qpu.transport import AgentClient, authenticated_fingerprint
from qorch.telemetry.feedforward import probe_link_feedforward
from qorch.telemetry.instrument import observed_node_check, record_link
from qorch.telemetry.metrics import METRICS

from .attestation import attest, bound_key
from .figures import expect_figures
from .identity import InvalidIdentity, node_pins, record_identity

HEALTH_TIMEOUT_SECONDS = 5.0
CALIBRATION_TIMEOUT_SECONDS = 120.0
CORDON_ANNOTATION = "qorch.dev/cordon"
# Codes of a call the agent never answered, as opposed to one it refused.
_UNANSWERED = (ErrorCode.UNREACHABLE, ErrorCode.TIMEOUT)


def _summarize(node: QuantumNode, status: QuantumNodeStatus) -> QuantumNodeStatus:
    """Phase and the Ready condition from the specific conditions.

    Unreachable when the agent does not answer (or not with the pinned key); Degraded when
    it disagrees with the spec or its measured error rate is above spec.safety.maxErrorRate;
    Cordoned when a person annotated it so. Only Ready nodes get new placements.
    """
    gen = node.metadata.generation
    reachable = get_condition(status.conditions, R.REACHABLE)
    calibrated = get_condition(status.conditions, R.CALIBRATED)
    if reachable is None or reachable.status != "True":
        phase, reason = NodePhases.UNREACHABLE, reachable.reason if reachable else R.IN_PROGRESS
        message = reachable.message if reachable else "no health check yet"
    elif calibrated is not None and calibrated.status == "False":
        phase, reason, message = NodePhases.DEGRADED, calibrated.reason, calibrated.message
    elif node.metadata.annotations.get(CORDON_ANNOTATION) == "true":
        phase, reason, message = (
            NodePhases.CORDONED,
            R.CORDONED,
            f"annotated {CORDON_ANNOTATION}=true",
        )
    else:
        phase, reason, message = NodePhases.READY, R.AGENT_HEALTHY, reachable.message
    status.phase = phase  # type: ignore[assignment]
    value: ConditionStatus = "True" if phase == NodePhases.READY else "False"
    status.conditions = set_condition(status.conditions, R.READY, value, reason, message, gen)
    return status


@observed_node_check
async def check_node(
    node: QuantumNode,
    client: AgentClient,
    endpoint: str,
    allocated: int,
    *,
    require_attestation: bool = False,
) -> QuantumNodeStatus:
    """Ask the node's agent for its health; the answer becomes the node's status. A node
    with `spec.identity.attestation` must also answer a fresh TPM challenge (`attest_node`);
    with `require_attestation`, a node without it is not talked to at all."""
    status = node.status.model_copy(deep=True)
    status.observed_generation = node.metadata.generation
    status.endpoint = endpoint
    status.allocated_qubits = allocated
    gen = node.metadata.generation
    if require_attestation and node.spec.identity.attestation is None:
        msg = (
            "policy requires TPM attestation (QORCH_REQUIRE_ATTESTATION) and"
            " spec.identity.attestation is not set: enrol the node with `qorch tpm enroll`"
        )
        status.conditions = set_condition(
            status.conditions, R.REACHABLE, "False", R.ATTESTATION_REQUIRED, msg, gen
        )
        return _summarize(node, status)
    try:
        health = await ask(client, HealthRequest(), timeout=HEALTH_TIMEOUT_SECONDS)
    except AgentError as exc:
        record_identity(status, client)
        # A refused identity (PeerKeyMismatch, KeyRetired, InvalidIdentity...) keeps its
        # own reason.
        reason = R.AGENT_UNREACHABLE if exc.code in _UNANSWERED else exc.code
        status.conditions = set_condition(
            status.conditions, R.REACHABLE, "False", reason, exc.message, gen
        )
        return _summarize(node, status)
    record_identity(status, client)
    failure = await attest_node(node, client)
    if failure is not None:
        status.conditions = set_condition(
            status.conditions, R.REACHABLE, "False", R.ATTESTATION_FAILED, failure, gen
        )
        return _summarize(node, status)
    if health.qubits != node.spec.qubits:
        msg = f"agent reports {health.qubits} qubits, spec says {node.spec.qubits}"
        status.conditions = set_condition(
            status.conditions, R.CALIBRATED, "False", R.SPEC_MISMATCH, msg, gen
        )
    status.last_heartbeat = now_rfc3339()
    attested = " with a verified TPM quote" if node.spec.identity.attestation else ""
    status.conditions = set_condition(
        status.conditions,
        R.REACHABLE,
        "True",
        R.AGENT_HEALTHY,
        f"agent at {endpoint} answers{attested}",
        gen,
    )
    return _summarize(node, status)


async def attest_node(node: QuantumNode, client: AgentClient) -> str | None:
    """Challenge the agent for a TPM quote (see qorch.pipeline.attestation) bound to the key
    its channel authenticated; None when it holds, else what failed. Nothing to do for a
    node without `spec.identity.attestation`."""
    pinned = node.spec.identity.attestation
    if pinned is None:
        return None
    try:
        pins = node_pins(node, None)
    except InvalidIdentity as exc:
        return str(exc)
    if pins is None:
        return "spec.identity.publicKey is not set: the quote has no key to bind"
    return await attest(pinned, bound_key(pins, authenticated_fingerprint(client)), client)


_STARTED: set[asyncio.Task[None]] = set()


def _start(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` in the background, referenced until done (the loop keeps only weak ones)."""
    task = asyncio.ensure_future(work)
    _STARTED.add(task)
    task.add_done_callback(_STARTED.discard)


@observed_node_check
async def calibrate_node(node: QuantumNode, client: AgentClient) -> QuantumNodeStatus:
    """Have the agent run its calibration circuits; figures and the safety verdict land in
    the status."""
    status = node.status.model_copy(deep=True)
    gen = node.metadata.generation
    _start(expect_figures(node))  # what the planner compares it with, meanwhile
    try:
        figures = await ask(client, CalibrateRequest(), timeout=CALIBRATION_TIMEOUT_SECONDS)
    except AgentError as exc:
        if exc.code == ErrorCode.BUSY:
            return status  # a long program step holds the QPU: the last calibration stands
        reason = R.AGENT_UNREACHABLE if exc.code in _UNANSWERED else exc.code
        status.conditions = set_condition(
            status.conditions, R.REACHABLE, "False", reason, exc.message, gen
        )
        return _summarize(node, status)
    status.calibration = Calibration(
        fidelity=figures.fidelity,
        single_qubit_error=figures.single_qubit_error,
        two_qubit_error=figures.two_qubit_error,
        readout_error=figures.readout_error,
        readout_error_0to1=figures.readout_error_0to1,
        readout_error_1to0=figures.readout_error_1to0,
        measured_at=now_rfc3339(),
    )
    rate, limit = figures.error_rate, node.spec.safety.max_error_rate
    if rate > limit:
        value: ConditionStatus = "False"
        reason, msg = R.ERROR_RATE_ABOVE_THRESHOLD, f"measured error rate {rate:.4f} > {limit}"
    else:
        value, reason, msg = (
            "True",
            R.WITHIN_THRESHOLD,
            f"measured error rate {rate:.4f} <= {limit}",
        )
    status.conditions = set_condition(status.conditions, R.CALIBRATED, value, reason, msg, gen)
    return _summarize(node, status)


def check_link(link: EntanglementLink, nodes: dict[str, QuantumNode]) -> EntanglementLinkStatus:
    """A link is Up when both of its nodes exist and are Ready, and its last probe found
    its pairs within spec; Degraded when that probe did not (until a probe finds them
    within again)."""
    status = link.status.model_copy(deep=True)
    status.observed_generation = link.metadata.generation
    gen = link.metadata.generation
    missing = [n for n in link.spec.nodes if n not in nodes]
    not_ready = [
        n for n in link.spec.nodes if n in nodes and nodes[n].status.phase != NodePhases.READY
    ]
    probed = get_condition(status.conditions, R.PROBED)
    if missing:
        status.phase = LinkPhases.DOWN
        msg = f"QuantumNode(s) {', '.join(missing)} do not exist"
        status.conditions = set_condition(
            status.conditions, R.READY, "False", R.NODE_MISSING, msg, gen
        )
    elif not_ready:
        status.phase = LinkPhases.DOWN
        msg = f"QuantumNode(s) {', '.join(not_ready)} are not Ready"
        status.conditions = set_condition(
            status.conditions, R.READY, "False", R.NODE_NOT_READY, msg, gen
        )
    elif probed is not None and probed.status == "False":
        status.phase = LinkPhases.DEGRADED
        status.conditions = set_condition(
            status.conditions, R.READY, "False", probed.reason, probed.message, gen
        )
    else:
        status.phase = LinkPhases.UP
        status.conditions = set_condition(
            status.conditions, R.READY, "True", R.NODES_READY, "both nodes are Ready", gen
        )
    return status


PROBE_PAIRS = 1000
PROBE_TIMEOUT_SECONDS = 60.0

Address = tuple[str, tuple[bytes, ...]]


async def observe_link(
    link: EntanglementLink,
    nodes: dict[str, QuantumNode],
    agent_for: Callable[[QuantumNode], AgentClient],
    address_for: Callable[[QuantumNode], Address] | None = None,
) -> EntanglementLinkStatus:
    """check_link; for a link whose nodes are Ready, the latency of the classical path
    measured agent to agent (with `address_for`, where each agent is reached and its pinned
    keys) and a probe of its Bell pairs. A link whose pairs measure below its minimum
    fidelity, the whole confidence interval, turns Degraded."""
    status = check_link(link, nodes)
    if status.phase in (LinkPhases.UP, LinkPhases.DEGRADED):
        a, b = (nodes[name] for name in link.spec.nodes)
        if address_for is not None:
            measured = await probe_link_feedforward(
                link, agent_for(a), agent_for(b), address_for(a), address_for(b)
            )
            if measured is not None:
                status.feedforward_latency_microseconds = round(
                    measured.feedforward_microseconds, 3
                )
        if await _probe_pairs(link, status, a, b, agent_for(a)):
            link_with = link.model_copy(update={"status": status})
            status = check_link(link_with, nodes)
    record_link(link, status, nodes)
    return status


def readout_error(node: QuantumNode) -> float:
    """The node's readout error as last calibrated, else as declared."""
    calibration = node.status.calibration
    if calibration is not None and calibration.readout_error is not None:
        return calibration.readout_error
    return node.spec.noise.readout_error or 0.0


async def _probe_pairs(
    link: EntanglementLink,
    status: EntanglementLinkStatus,
    a: QuantumNode,
    b: QuantumNode,
    client: AgentClient,
) -> bool:
    """Probe the link's pairs into `status`; False when the agent gave no usable answer
    (the link keeps its last figures)."""
    readout = (readout_error(a), readout_error(b))
    request = ProbeLinkRequest(
        fidelity=link.spec.fidelity,
        success_probability=link.spec.success_probability,
        generation_rate_hz=link.spec.generation_rate_hz,
        pairs=PROBE_PAIRS,
        readout_errors=list(readout),
        link=link.metadata.name,
    )
    try:
        # A reply whose counts do not add up (more successes than attempts) is a BadReply.
        result = await ask(client, request, timeout=PROBE_TIMEOUT_SECONDS)
    except AgentError:
        return False  # the node checks report the agent; the link keeps its last figures
    if result.successes == 0:
        return False
    ns, name, gen = link.metadata.namespace, link.metadata.name, link.metadata.generation
    METRICS.record("qorch_entanglement_attempts_total", result.attempts, namespace=ns, link=name)
    METRICS.record("qorch_entanglement_successes_total", result.successes, namespace=ns, link=name)
    latency = result.mean_generation_seconds
    METRICS.record("qorch_entanglement_latency_seconds", latency, namespace=ns, link=name)
    agreements = result.agreements
    if agreements is None:  # an agent from before agreements: back from its fidelity
        agreements = round(result.successes * (2 * result.measured_fidelity + 1) / 3)
    calibrated = any(n.status.calibration is not None for n in (a, b))
    worst = max(readout)
    # A calibrated readout error is an estimate too (qorch.qpu.calibration): its sampling
    # error widens the interval.
    spread = (worst * (1 - worst) / (2 * READOUT_QUBITS * CALIBRATION_SHOTS)) ** 0.5
    fidelity, low, high = fidelity_interval(
        agreements, result.successes, readout, readout_std_error=spread if calibrated else 0.0
    )
    now = now_rfc3339()
    status.measured_fidelity = round(fidelity, 6)
    status.measured_success_rate = round(result.success_rate, 6)
    status.last_probe_time = now
    status.probe = LinkProbe(
        pairs=result.successes,
        attempts=result.attempts,
        fidelity=round(fidelity, 6),
        fidelity_lower=round(low, 6),
        fidelity_upper=round(high, 6),
        confidence=CONFIDENCE,
        success_rate=round(result.success_rate, 6),
        pair_rate_hz=round(1 / latency, 6) if latency > 0 else 0.0,
        source=result.source,
        time=now,
    )
    floor = link.spec.min_fidelity or link.spec.fidelity
    interval = (
        f"{fidelity:.4f} ({CONFIDENCE:.2%} interval {low:.4f}..{high:.4f},"
        f" {result.successes} pairs)"
    )
    if high < floor:
        value: ConditionStatus = "False"
        reason, msg = R.FIDELITY_BELOW_SPEC, f"measured Bell-pair fidelity {interval} < {floor}"
    else:
        value, reason = "True", R.FIDELITY_WITHIN_SPEC
        msg = f"measured Bell-pair fidelity {interval}, at least {floor} within the interval"
    if result.source == "request":
        msg += "; the agent holds no state of this link: it measured the declared figures"
    status.conditions = set_condition(status.conditions, R.PROBED, value, reason, msg, gen)
    return True
