"""QuantumNode handlers: the agent workload of `aer` nodes, and the health timer."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from qorch.api import GROUP, VERSION, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.api.phases import NodePhases
from qorch.api.quantum_node import QuantumNodeStatus
from qorch.api.yamlload import errors_in_a_line
from qorch.pipeline.reservations import node_resource
from qorch.pipeline.resources import calibrate_node, check_node
from qorch.settings import Settings
from qorch.telemetry.instrument import timed_reconcile
from qorch.telemetry.metrics import METRICS

from . import kube
from .agent_workload import agent_endpoint, build_deployment, build_service
from .identity import ensure_node_identity
from .state import OperatorState, announce_phase, plain
from .world import agent_client

QN = (GROUP, VERSION, "quantumnodes")
_SETTINGS = Settings.from_env()


def parse(body: Any) -> QuantumNode | None:
    try:
        return QuantumNode.model_validate(plain(body))
    except ValidationError:
        return None


@kopf.index(*QN, id="qnodes")
def index_nodes(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str | None, QuantumNode]:
    """Every valid QuantumNode with its status, by namespace, for planning."""
    node = parse(body)
    return {namespace: node} if node is not None else {}


@kopf.on.resume(*QN, id="workload")
@kopf.on.create(*QN, id="workload")
@kopf.on.update(*QN, id="workload", field="spec")
@timed_reconcile("QuantumNode", "workload")
async def ensure_workload(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """An `aer` node gets a Deployment and Service running its QPU agent, owned by the node."""
    try:
        node = QuantumNode.model_validate(plain(body))
    except ValidationError as exc:
        msg = f"does not validate: {errors_in_a_line(exc)}"
        # kopf only logs a handler's failure: the event is what `kubectl describe` shows.
        kopf.event(body, type="Warning", reason=R.INVALID_SPEC, message=msg[:1024])
        raise kopf.PermanentError(msg) from None
    if node.spec.backend.type != "aer":
        return
    state: OperatorState = memo.state
    key = await ensure_node_identity(node, state.operator_keys, body)
    state.node_keys[(node.metadata.namespace, node.metadata.name)] = key
    for manifest in (
        build_deployment(node, state.settings, key),
        build_service(node, state.settings),
    ):
        kopf.adopt(manifest, owner=body)
        outcome = await kube.apply_owned(manifest)
        if outcome != "unchanged":
            logger.info("%s %s/%s", outcome, manifest["kind"], manifest["metadata"]["name"])


@kopf.on.event(*QN, id="forget-metrics")
def forget_deleted_node(
    event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any
) -> None:
    """A deleted node's series leave /metrics. This waits for the DELETED event rather than
    an on-delete handler: kopf has stopped the node's timers by then, so no health check
    still in flight writes them back."""
    if event.get("type") == "DELETED" and namespace and name:
        METRICS.forget_node(namespace, name)


@kopf.timer(*QN, id="health", interval=_SETTINGS.node_check_seconds)
@timed_reconcile("QuantumNode", "health")
async def node_health(body: kopf.Body, name: str, memo: Any, patch: kopf.Patch, **_: Any) -> None:
    """Ask the agent for its health; phase, Ready condition and heartbeat follow."""
    node = parse(body)
    if node is None:
        return
    state: OperatorState = memo.state
    client = agent_client(state, node)
    status = await check_node(
        node,
        client,
        agent_endpoint(node, state.settings),
        int(state.reservations.allocated(node_resource(node.metadata.namespace, name))),
        require_attestation=state.settings.require_attestation,
    )
    reachable = get_condition(status.conditions, R.REACHABLE)
    if status.calibration is None and reachable is not None and reachable.status == "True":
        # Never calibrated (its agent did not answer yet when the calibration timer first
        # ran): calibrate now, not a calibration period later. No job runs on it before.
        status = await calibrate_node(node.model_copy(update={"status": status}), client)
    patch.status.update(status.wire())
    _announce(body, node, status)


@kopf.timer(*QN, id="calibrate", interval=_SETTINGS.calibration_seconds, initial_delay=2.0)
@timed_reconcile("QuantumNode", "calibrate")
async def calibrate(body: kopf.Body, memo: Any, patch: kopf.Patch, **_: Any) -> None:
    """The agent measures the node's error rates; above spec.safety.maxErrorRate the node
    turns Degraded and gets no new placements."""
    node = parse(body)
    if node is None or node.status.phase == NodePhases.UNREACHABLE:
        return
    status = await calibrate_node(node, agent_client(memo.state, node))
    patch.status.update(status.wire())
    _announce(body, node, status)


def _announce(body: kopf.Body, node: QuantumNode, status: QuantumNodeStatus) -> None:
    ready = get_condition(status.conditions, R.READY)
    if ready is not None:
        announce_phase(body, node.status.phase, status.phase, ready.reason, ready.message)
