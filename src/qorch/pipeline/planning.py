"""From the planner's candidates to what the pipeline dispatches, reserves and records.

The plan in a job's status is the source of truth: `work_for` rebuilds the programs from it
(after an operator restart, say) exactly as they were first built, since partitioning is
recorded and compilation and cutting are deterministic for a given partition.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api import EntanglementLink, QuantumNode
from qorch.api.distributed_job import LinkUse, Placement, Plan, Program, StrategyEstimate
from qorch.planner.cutting import CutPlan, plan_cut
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.observables import MeasurementBasis, measurement_bases
from qorch.planner.partition import Partition
from qorch.planner.strategies import Candidate
from qorch.planner.teleport import TeleportProgram, compile_teleport

from .reservations import link_resource, node_resource


@dataclass(frozen=True)
class Work:
    """What the collect step sends: one whole circuit, a co-simulated program, or cuts."""

    strategy: str
    circuit: QuantumCircuit
    teleport: TeleportProgram | None = None
    cut: CutPlan | None = None
    # single and teleport with observables: one more circuit per measurement basis, sent
    # with the main one; for teleport, each compiled like it (same placement, same noise).
    bases: tuple[MeasurementBasis, ...] = ()
    compiled_bases: tuple[TeleportProgram, ...] = ()

    def circuits(self) -> list[QuantumCircuit]:
        """What a single or teleport program runs: the circuit, then its basis circuits."""
        if self.teleport is not None:
            return [self.teleport.circuit, *(p.circuit for p in self.compiled_bases)]
        return [self.circuit, *(b.circuit for b in self.bases)]


def link_slot(link: EntanglementLink) -> LinkSlot:
    """The link as planned: its feed-forward latency as measured between its agents (the
    declared latency included), or as declared before the first measurement."""
    slot = LinkSlot.of(link)
    measured = link.status.feedforward_latency_microseconds
    return dataclasses.replace(slot, classical_latency_us=measured) if measured else slot


def slots(
    nodes: list[QuantumNode], links: list[EntanglementLink], free: dict[str, float]
) -> tuple[list[NodeSlot], list[LinkSlot]]:
    """Ready nodes with their free qubits, and the Up links between them with the share of
    their Bell-pair rate no other job holds (`free` as from Reservations.free; a resource
    missing from it is wholly free)."""
    names = {n.metadata.name for n in nodes}
    node_slots = [
        NodeSlot.of(n, int(free.get(node_resource(*_ref(n)), n.spec.qubits))) for n in nodes
    ]
    link_slots = []
    for link in links:
        if link.status.phase != "Up" or not set(link.spec.nodes) <= names:
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
    pairs: Counter[str] = Counter()
    if work.teleport is not None:
        qubits = work.teleport.qubits_per_node()
        for program in (work.teleport, *work.compiled_bases):  # each runs `shots` shots
            pairs.update(program.bell_pairs)
    else:
        qubits = {p.node: len(p.qubits) for p in plan.placement}
    want = {node_resource(namespace, n): float(q) for n, q in qubits.items()}
    for link, n in sorted(pairs.items()):
        want[link_resource(namespace, link)] = n * shots / timeout_seconds
    return want


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
    # What the program consumes, shared cats and teledata included, not the partition's
    # one-pair-per-nonlocal-gate proxy: reservations and link accounting follow these.
    pairs = candidate.plan.bell_pairs if isinstance(candidate.plan, TeleportProgram) else {}
    return Plan(
        strategy=candidate.strategy,
        placement=placement,
        programs=programs,
        nodes=",".join(p.node for p in placement),
        nonlocal_gates=part.nonlocal_gates if part and candidate.strategy == "teleport" else 0,
        bell_pairs=[LinkUse(link=name, bell_pairs=n) for name, n in sorted(pairs.items())],
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
        return with_observables(Work("single", circuit), observables, None, nodes, links)
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
    work = Work(
        "teleport", circuit, teleport=compile_teleport(circuit, part, node_slots, link_slots)
    )
    return with_observables(work, observables, part, nodes, links)


def with_observables(
    work: Work,
    observables: list[str] | None,
    partition: Partition | None,
    nodes: list[QuantumNode],
    links: list[EntanglementLink],
    free: dict[str, float] | None = None,
) -> Work:
    """Single and teleport work that also measures `observables` (cut reconstructs them).
    A circuit that is not a unitary followed by measurements gets counts only. `free` as
    the main program was compiled with, so the basis programs compile the same way."""
    if not observables or work.cut is not None:
        return work
    try:
        bases = tuple(measurement_bases(work.circuit, observables))
    except ValueError:
        return work
    if work.teleport is None:
        return dataclasses.replace(work, bases=bases)
    assert partition is not None
    used = [n for n in nodes if n.metadata.name in partition.nodes]
    node_slots, link_slots = slots(used, links, free or {})
    try:
        compiled = tuple(
            compile_teleport(b.circuit, partition, node_slots, link_slots) for b in bases
        )
    except ValueError:
        return work
    if any(p.noise != work.teleport.noise for p in compiled):
        return work  # one batch shares one noise description; never guess another's
    return dataclasses.replace(work, bases=bases, compiled_bases=compiled)
