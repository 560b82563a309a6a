"""What a candidate asks of the hardware besides fidelity: device time and subexperiments.

Device time, not wall time: compiling, simulating and knitting are left out. One shot of a
circuit takes its depth in layers of the node's slowest gate plus one measurement, the
figure the decoherence factor of `fidelity` uses; without declared gate times there is no
estimate (None). A teleport shot also waits for its Bell pairs
(links herald in parallel, so the slowest link counts) and one feed-forward message per
pair at the link's physical latency (a co-simulated program sends no message over the
control plane); a cut runs each subexperiment for every shot, the nodes in parallel; an LOCC
cut's shot is the sender's part, one classical message at the physical latency, then the
receiver's part, and its outcomes also cross the agents' own path, SHOTS_PER_MESSAGE to a
message, each at the latency measured between the agents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qorch.api.quantum_node import NoiseSpec

from .cutting import CutPlan
from .fidelity import noisy_profile
from .locc import SHOTS_PER_MESSAGE, LoccCutPlan, bases
from .model import NodeSlot
from .strategies import Candidate, Demand, native_profile
from .teleport import TeleportProgram


@dataclass(frozen=True)
class Workload:
    """Estimated device seconds of all shots (None when the plan's kind is unknown here) and
    the number of subexperiments (cutting only)."""

    seconds: float | None = None
    subexperiments: int | None = None


def _layer_ns(noises: Sequence[NoiseSpec]) -> float:
    """The slowest gate among the nodes; 0 when none declares a gate time."""
    return max(
        max(n.two_qubit_gate_nanoseconds or 0, n.single_qubit_gate_nanoseconds or 0) for n in noises
    )


def shot_seconds(circuit: QuantumCircuit, noises: Sequence[NoiseSpec]) -> float | None:
    """One shot of `circuit` (already in the executing basis) at the slowest nodes' pace;
    None when none of the nodes declares a gate time."""
    return _per_shot(noisy_profile(circuit).depth, noises)


def _per_shot(depth: int, noises: Sequence[NoiseSpec]) -> float | None:
    layer = _layer_ns(noises)
    if not layer:
        return None
    measure = max(n.measure_nanoseconds or 0 for n in noises)
    return (depth * layer + measure) / 1e9


def _on_node(circuit: QuantumCircuit, node: NodeSlot) -> float | None:
    """One shot of `circuit` (in any gates) on `node`, as written in the node's gates."""
    return _per_shot(native_profile(circuit, node).depth, [node.noise])


def workload(candidate: Candidate, demand: Demand) -> Workload:
    """The workload of a feasible candidate; an empty one for an infeasible candidate."""
    if not candidate.feasible:
        return Workload()
    nodes = {n.name: n for n in demand.nodes}
    plan, shots = candidate.plan, demand.shots
    if isinstance(plan, str) and plan in nodes:
        node = nodes[plan]
        if not _layer_ns([node.noise]):
            return Workload()  # nothing to count: spare the translation
        per_shot = _on_node(demand.circuit, node)
        return Workload(None if per_shot is None else shots * per_shot)
    if isinstance(plan, TeleportProgram) and candidate.partition is not None:
        noises = [nodes[n].noise for n in candidate.partition.nodes if n in nodes]
        links = {x.name: x for x in demand.links}
        pairs = max(plan.expected_generation_seconds.values(), default=0.0)
        messages = max(
            (n * links[k].classical_latency_us / 1e6 for k, n in plan.bell_pairs.items()),
            default=0.0,
        )
        gates = shot_seconds(plan.circuit, noises or [NoiseSpec()])
        return Workload(None if gates is None else shots * (gates + pairs + messages))
    if isinstance(plan, CutPlan):
        busiest: float | None = 0.0
        for name, subs in plan.subexperiments.items():
            if not subs or name not in nodes or busiest is None:
                continue
            if not _layer_ns([nodes[name].noise]):
                busiest = None
                continue
            # Subexperiments differ in a few QPD gates: the largest stands for them all.
            largest = max(subs, key=lambda c: c.size())
            per_shot = _on_node(largest, nodes[name])
            busiest = None if per_shot is None else max(busiest, len(subs) * shots * per_shot)
        return Workload(busiest, plan.num_subexperiments)
    if isinstance(plan, LoccCutPlan) and plan.sender in nodes and plan.receiver in nodes:
        sender, receiver = nodes[plan.sender], nodes[plan.receiver]
        send = _on_node(plan.sender_circuits[0], sender)
        largest = max(plan.receiver_circuits, key=lambda c: c.size())
        receive = _on_node(largest, receiver)
        link = next((x for x in demand.links if x.name == plan.link), None)
        message = link.classical_latency_us / 1e6 if link is not None else 0.0
        path = (link.measured_latency_us or 0.0) / 1e6 if link is not None else 0.0
        per_sub = max(1, shots // bases(plan.wires))
        runs = plan.num_subexperiments * per_sub
        messages = plan.num_subexperiments * math.ceil(per_sub / SHOTS_PER_MESSAGE)
        if send is None or receive is None:
            return Workload(None, plan.num_subexperiments)
        return Workload(
            runs * (send + message + receive) + messages * path, plan.num_subexperiments
        )
    return Workload()
