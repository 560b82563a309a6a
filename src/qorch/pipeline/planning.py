"""From the API objects to the planner's view, and from a plan to what it reserves and records.

What differs between strategies lives in `strategies`; this module holds what all of them
share: node and link slots, capacity, reservations, and the plan recorded in status.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from qorch.api import EntanglementLink, QuantumNode
from qorch.api.distributed_job import Placement, Plan, StrategyEstimate
from qorch.api.phases import LinkPhases
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition
from qorch.planner.strategies import Candidate

from .figures import figures_of, link_slot, node_slot
from .reservations import link_resource, node_resource

if TYPE_CHECKING:
    from .strategies.base import Shape, Work


def slots(
    nodes: list[QuantumNode], links: list[EntanglementLink], free: dict[str, float]
) -> tuple[list[NodeSlot], list[LinkSlot]]:
    """Ready nodes with their free qubits, and the Up links between them with the share of
    their Bell-pair rate no other job holds (`free` as from Reservations.free; a resource
    missing from it is wholly free). Their figures are declared or measured, as
    qorch.pipeline.figures decides."""
    names = {n.metadata.name for n in nodes}
    node_slots = [
        node_slot(n, int(free.get(node_resource(*_ref(n)), n.spec.qubits))) for n in nodes
    ]
    link_slots = []
    for link in links:
        if link.status.phase != LinkPhases.UP or not set(link.spec.nodes) <= names:
            continue
        slot = link_slot(link)
        supply = pair_rate(link)
        share = free.get(link_resource(*_ref(link)), supply) / supply
        if share <= 1e-9:
            continue  # every pair it can make is promised to other jobs
        if share < 1:
            slot = dataclasses.replace(slot, generation_rate_hz=slot.generation_rate_hz * share)
        link_slots.append(slot)
    return node_slots, link_slots


def plan_figures(
    plan: Plan, nodes: list[QuantumNode], links: list[EntanglementLink]
) -> dict[str, str]:
    """Which figures (declared, calibrated, measured) planned the placed nodes and the
    links between them."""
    placed = {p.node for p in plan.placement}
    node_slots, link_slots = slots([n for n in nodes if n.metadata.name in placed], links, {})
    return figures_of(node_slots, [x for x in link_slots if {x.a, x.b} <= placed])


def pair_rate(link: EntanglementLink) -> float:
    """Heralded Bell pairs per second the link supplies: what jobs reserve shares of."""
    return link.spec.generation_rate_hz * link.spec.success_probability


def capacity(nodes: list[QuantumNode], links: list[EntanglementLink]) -> dict[str, float]:
    """Everything reservable: qubits per node, Bell pairs per second per link."""
    return {
        **{node_resource(*_ref(n)): float(n.spec.qubits) for n in nodes},
        **{link_resource(*_ref(x)): pair_rate(x) for x in links},
    }


def _ref(obj: QuantumNode | EntanglementLink) -> tuple[str, str]:
    return obj.metadata.namespace, obj.metadata.name


def reservation(
    namespace: str, plan: Plan, work: Work, shots: int, timeout_seconds: float
) -> dict[str, float]:
    """What a plan holds: qubits per node (communication qubits included), and on each link
    the pair rate that supplies its Bell pairs x shots within the job's timeout."""
    want = {node_resource(namespace, n): float(q) for n, q in work.qubits_per_node(plan).items()}
    for link, n in sorted(work.bell_pairs_per_shot().items()):
        want[link_resource(namespace, link)] = n * shots / timeout_seconds
    return want


def placement_of(partition: Partition) -> list[Placement]:
    """The qubits of each node of a partition, as the status records them."""
    return [Placement(node=n, qubits=partition.qubits_on(n)) for n in partition.nodes]


def recorded_partition(plan: Plan) -> Partition:
    """The partition a recorded plan placed, to build its programs again."""
    return Partition(
        assignment={q: p.node for p in plan.placement for q in p.qubits},
        nonlocal_gates=plan.nonlocal_gates,
        bell_pairs={u.link: u.bell_pairs for u in plan.bell_pairs},
        nodes=tuple(p.node for p in plan.placement),
    )


def plan_status(
    candidate: Candidate,
    candidates: list[Candidate],
    shape: Shape,
    estimates: list[StrategyEstimate] | None = None,
) -> Plan:
    """The Plan recorded in the job's status; `estimates` are the candidates in detail
    (`candidates.considered`), or their bare figures when None."""
    estimates = estimates or [
        StrategyEstimate(
            strategy=c.strategy,
            estimated_fidelity=round(c.estimated_fidelity, 6),
            feasible=c.feasible,
            reason=c.reason,
        )
        for c in candidates
    ]
    return Plan(
        strategy=candidate.strategy,
        placement=shape.placement,
        programs=shape.programs,
        nodes=",".join(p.node for p in shape.placement),
        nonlocal_gates=shape.nonlocal_gates,
        bell_pairs=shape.bell_pairs,
        estimated_fidelity=round(candidate.estimated_fidelity, 6),
        sampling_overhead=candidate.sampling_overhead,
        reason=candidate.reason,
        candidates=estimates,
    )
