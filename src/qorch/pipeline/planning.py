"""From the planner's candidates to what the pipeline dispatches, reserves and records.

The plan in a job's status is the source of truth: `work_for` rebuilds the programs from it
(after an operator restart, say) exactly as they were first built, since partitioning is
recorded and compilation and cutting are deterministic for a given partition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api import EntanglementLink, QuantumNode
from qorch.api.distributed_job import LinkUse, Placement, Plan, Program, StrategyEstimate
from qorch.planner.cutting import CutPlan, plan_cut
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition
from qorch.planner.strategies import Candidate
from qorch.planner.teleport import TeleportProgram, compile_teleport


@dataclass(frozen=True)
class Work:
    """What the collect step sends: one whole circuit, a co-simulated program, or cuts."""

    strategy: str
    circuit: QuantumCircuit
    teleport: TeleportProgram | None = None
    cut: CutPlan | None = None


def link_slot(link: EntanglementLink) -> LinkSlot:
    """The link as planned: its feed-forward latency as measured between its agents (the
    declared latency included), or as declared before the first measurement."""
    slot = LinkSlot.of(link)
    measured = link.status.feedforward_latency_microseconds
    return dataclasses.replace(slot, classical_latency_us=measured) if measured else slot


def slots(
    nodes: list[QuantumNode], links: list[EntanglementLink], free: dict[str, int]
) -> tuple[list[NodeSlot], list[LinkSlot]]:
    """Ready nodes with their free qubits, and the Up links between them."""
    names = {n.metadata.name for n in nodes}
    node_slots = [NodeSlot.of(n, free.get(n.metadata.name, n.spec.qubits)) for n in nodes]
    link_slots = [
        link_slot(x) for x in links if x.status.phase == "Up" and set(x.spec.nodes) <= names
    ]
    return node_slots, link_slots


def reservation(candidate: Candidate, width: int) -> dict[str, int]:
    """Qubits per node the plan holds, communication qubits included."""
    if isinstance(candidate.plan, TeleportProgram):
        return candidate.plan.qubits_per_node()
    if candidate.partition is not None:
        return {n: len(candidate.partition.qubits_on(n)) for n in candidate.partition.nodes}
    assert isinstance(candidate.plan, str)
    return {candidate.plan: width}


def _cosimulating_node(program: TeleportProgram) -> str:
    """The node whose agent runs a co-simulated program: the one holding most of it."""
    share = program.qubits_per_node()
    return max(sorted(share), key=lambda n: share[n])


def plan_status(candidate: Candidate, candidates: list[Candidate], width: int, shots: int) -> Plan:
    """The Plan recorded in the job's status."""
    estimates = [
        StrategyEstimate(
            strategy=c.strategy,
            estimated_fidelity=round(c.estimated_fidelity, 6),
            feasible=c.feasible,
            reason=c.reason,
        )
        for c in candidates
    ]
    part = candidate.partition
    if isinstance(candidate.plan, str):  # single
        node = candidate.plan
        placement = [Placement(node=node, qubits=list(range(width)))]
        programs = [Program(id="p0", node=node, shots=shots, note="whole circuit")]
    else:
        assert part is not None
        placement = [Placement(node=n, qubits=part.qubits_on(n)) for n in part.nodes]
        if isinstance(candidate.plan, TeleportProgram):
            node = _cosimulating_node(candidate.plan)
            programs = [Program(id="p0", node=node, shots=shots, note=candidate.plan.note)]
        else:
            assert isinstance(candidate.plan, CutPlan)
            programs = [
                Program(
                    id=f"cut-{n}",
                    node=n,
                    shots=shots,
                    note=f"{len(subs)} subexperiment(s) of the cut circuit, {shots} shots each",
                )
                for n, subs in sorted(candidate.plan.subexperiments.items())
            ]
    return Plan(
        strategy=candidate.strategy,
        placement=placement,
        programs=programs,
        nodes=",".join(p.node for p in placement),
        nonlocal_gates=part.nonlocal_gates if part and candidate.strategy == "teleport" else 0,
        bell_pairs=[
            LinkUse(link=name, bell_pairs=n)
            for name, n in sorted((part.bell_pairs if part else {}).items())
            if candidate.strategy == "teleport"
        ],
        estimated_fidelity=round(candidate.estimated_fidelity, 6),
        sampling_overhead=candidate.sampling_overhead,
        reason=candidate.reason,
        candidates=estimates,
    )


def work_for(
    plan: Plan,
    circuit: QuantumCircuit,
    observables: list[str] | None,
    nodes: list[QuantumNode],
    links: list[EntanglementLink],
    max_sampling_overhead: float,
) -> Work:
    """The programs of a recorded plan, rebuilt deterministically from its placement."""
    if plan.strategy == "single":
        return Work("single", circuit)
    assignment = {q: p.node for p in plan.placement for q in p.qubits}
    part = Partition(
        assignment=assignment,
        nonlocal_gates=plan.nonlocal_gates,
        bell_pairs={u.link: u.bell_pairs for u in plan.bell_pairs},
        nodes=tuple(p.node for p in plan.placement),
    )
    if plan.strategy == "cut":
        return Work(
            "cut", circuit, cut=plan_cut(circuit, observables or [], part, max_sampling_overhead)
        )
    node_slots, link_slots = slots([n for n in nodes if n.metadata.name in part.nodes], links, {})
    return Work(
        "teleport", circuit, teleport=compile_teleport(circuit, part, node_slots, link_slots)
    )
