"""Estimate every strategy for a job, then choose one: the `auto` rule and its rejections.

All estimates count the same thing, the work that carries error once the circuit is written in
the executing node's gates (`fidelity.noisy_profile`), so the three strategies compare fairly:

- single: the whole circuit on the best node that has the free qubits;
- teleport: gate, readout and decoherence survival on each node, times F per Bell pair, times
  idle survival per feed-forward message; feasible only if the links can herald
  Bell pairs x shots within the timeout (links work in parallel, so the slowest one counts)
  and the co-simulated program fits one agent's statevector;
- cut: the fidelity of the worst subexperiment on its node; its sampling overhead is a
  separate cost, bounded by `max_sampling_overhead`. Without observables it reconstructs the
  output distribution (`cut_distribution`) when the job names `cut` or sets `spec.output`,
  refused when the full distribution asked for is wider than `max_distribution_bits`.
- locc-cut: wires cut from a sender node to a receiver node with one-way classical messages
  (`locc`); the worst of the two sides' subexperiments, sampling overhead gamma^2 with
  gamma = 2^(n+1) - 1 for n wires (9 for one, against 16 without communication), and the
  link's classical latency once per shot. Needs a link between the two nodes (its
  classical path carries the messages) and observables.

For single and teleport the estimate is then the prediction of `prediction`, the expected
Hellinger fidelity of the job's counts, where it applies (final measurements only, at most
MAX_PREDICTED_QUBITS); the product stays as the factors that say what limits a plan.

At equal estimated fidelity the lower sampling overhead wins, then the strategy's preference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from qiskit import QuantumCircuit

from qorch.qpu.circuits import fingerprint
from qorch.qpu.composite_noise import MAX_COSIMULATED_QUBITS
from qorch.qpu.noise import TWO_QUBIT_GATES
from qorch.single_flight import SingleFlight

from .circuits import for_distribution
from .cut_distribution import (
    DEFAULT_MAX_DISTRIBUTION_BITS,
    DistributionPlan,
    OutputRequest,
    OutputTooWide,
    check_request,
    plan_cut_distribution,
)
from .cutting import CutPlan, plan_cut
from .estimate import FidelityEstimate
from .feed_forward import cut_refusal, is_dynamic
from .fidelity import GateProfile, fidelity_factors, loses_nothing, noisy_profile
from .link_physics import PurificationError
from .locc import MAX_WIRES, LoccCutPlan, find_wire_cuts, gamma, lo_gamma, plan_locc_cut
from .model import LinkSlot, NodeSlot
from .partition import Partition, partition
from .prediction import IdealOutput, ideal_output, predict_on_node, predict_program
from .teleport import TeleportProgram, compile_teleport
from .unroll import unroll

#: Subexperiments per node whose fidelity is computed exactly; the rest share their gates.
_WORST_SAMPLED = 3
#: `Candidate.limited_by` of a cut refused because the distribution asked for is too wide.
OUTPUT_WIDTH = "output width"
#: `Candidate.limited_by` of a teleport plan whose links' pairs cannot be purified.
PURIFICATION = "purification"


@dataclass(frozen=True)
class Demand:
    """What a job asks of an estimate: its circuit and observables, the Ready nodes it may use
    with their free qubits, the Up links between them, and its limits."""

    circuit: QuantumCircuit
    observables: Sequence[str] | None
    nodes: Sequence[NodeSlot]
    links: Sequence[LinkSlot]
    shots: int
    timeout_seconds: float
    max_sampling_overhead: float
    max_cosimulated_qubits: int = MAX_COSIMULATED_QUBITS
    #: The job's `spec.output`, and the strategy it names ("auto" when it names none).
    output: OutputRequest | None = None
    strategy: str = "auto"
    max_distribution_bits: int = DEFAULT_MAX_DISTRIBUTION_BITS
    #: The job's `spec.fidelityBudget`: what links with a purification policy purify for.
    fidelity_budget: float | None = None
    #: `ideal`, where an earlier estimate of this circuit already simulated it.
    known_ideal: IdealOutput | None = None

    @cached_property
    def ideal(self) -> IdealOutput | None:
        """The circuit's exact output distribution, simulated once for every prediction."""
        return self.known_ideal if self.known_ideal is not None else ideal_output(self.circuit)


@dataclass(frozen=True)
class Candidate:
    """One strategy's plan, or why there is none.

    `plan` is the node name for single, a TeleportProgram, a CutPlan (with observables) or a
    DistributionPlan (cut without); None when infeasible.
    `reason` says what limits a feasible plan, or why it is infeasible.
    """

    strategy: str
    estimated_fidelity: float
    feasible: bool
    reason: str
    plan: str | TeleportProgram | CutPlan | DistributionPlan | LoccCutPlan | None = None
    partition: Partition | None = None
    limited_by: str = ""
    sampling_overhead: float | None = None


def native_profile(circuit: QuantumCircuit, node: NodeSlot) -> GateProfile:
    """`noisy_profile` of `circuit` as written in the node's gates, kept per circuit and gate
    set: every estimate asks it per node, and a batch of jobs often runs one circuit."""
    basis = tuple(g for g in node.basis_gates if g not in TWO_QUBIT_GATES)
    return _PROFILES.get(
        (fingerprint(circuit), basis), lambda: noisy_profile(for_distribution(circuit, basis))
    )


_PROFILES: SingleFlight[GateProfile] = SingleFlight(1024)


def _on_node(circuit: QuantumCircuit, node: NodeSlot, label: str) -> FidelityEstimate:
    """Estimate of running `circuit` on `node`, as written in the node's gates."""
    if loses_nothing(node.noise):
        return FidelityEstimate()  # nothing to count: spare the translation (QFT-20: 44 ms)
    factors = fidelity_factors(native_profile(circuit, node), node.noise)
    return FidelityEstimate({f"{k} {label}": v for k, v in factors.items() if v < 1})


def estimate_single(demand: Demand) -> Candidate:
    """The whole circuit on the best node that has the free qubits."""
    circuit, nodes = demand.circuit, demand.nodes
    width = circuit.num_qubits
    fits = [n for n in nodes if n.free_qubits >= width]
    if not fits:
        largest = max(nodes, key=lambda n: n.free_qubits, default=None)
        most = f" (most: {largest.name} with {largest.free_qubits})" if largest else ""
        return Candidate(
            "single", 0.0, False, f"no node has {width} free qubits{most}", limited_by="capacity"
        )
    estimates = {n.name: _on_node(circuit, n, f"on {n.name}") for n in fits}
    best = min(fits, key=lambda n: (-estimates[n.name].value, n.name))
    estimate = estimates[best.name]
    if demand.ideal is not None:  # the best node's prediction only: it costs a simulation
        predicted = predict_on_node(
            circuit, best.noise, best.basis_gates, demand.ideal, demand.shots
        )
        estimate = replace(estimate, predicted=predicted)
    limit = estimate.limited_by()
    reason = f"fits on {best.name}, the best of {len(fits)} node(s) with room"
    return Candidate(
        "single",
        estimate.value,
        True,
        reason + (f"; limited by {limit}" if limit else ""),
        plan=best.name,
        limited_by=limit,
    )


def _why_unplaced(circuit: QuantumCircuit, nodes: Sequence[NodeSlot], per_node: int) -> str:
    free = sum(n.free_qubits for n in nodes)
    need = circuit.num_qubits
    if free - per_node * len(nodes) < need:
        extra = f" plus {per_node} communication qubit(s) per node" if per_node else ""
        return f"the nodes have {free} free qubits in all; the circuit needs {need}{extra}"
    return "no placement on two or more nodes keeps every nonlocal gate on a linked pair"


def _count(pairs: float) -> str:
    """Whole pairs as an integer, an expected number of raw pairs to four digits."""
    return str(int(pairs)) if float(pairs).is_integer() else f"{pairs:.4g}"


def estimate_teleport(demand: Demand) -> Candidate:
    """Nonlocal gates by Bell pairs, the program co-simulated on one agent."""
    circuit, nodes, links = demand.circuit, demand.nodes, demand.links
    shots, timeout_seconds = demand.shots, demand.timeout_seconds
    max_qubits = demand.max_cosimulated_qubits
    try:
        static = unroll(circuit)  # placed as it runs: each loop iteration's gates count
    except ValueError as exc:
        return Candidate("teleport", 0.0, False, str(exc))
    placed = partition(static, nodes, links, require_links=True, min_nodes=2)
    if placed is None:
        return Candidate("teleport", 0.0, False, _why_unplaced(circuit, nodes, 1))
    # Before compiling, which takes minutes for thousands of nonlocal gates: the program
    # has the circuit's qubits, and a communication qubit on each side of a nonlocal gate.
    least = circuit.num_qubits + (2 if placed.nonlocal_gates else 0)
    if least > max_qubits:
        why = (
            f"the co-simulated program needs {least} qubits or more, more than one agent"
            f" simulates ({max_qubits})"
        )
        return Candidate("teleport", 0.0, False, why, partition=placed)
    try:
        program = compile_teleport(
            static,
            placed,
            nodes,
            links,
            fidelity_budget=demand.fidelity_budget,
            max_seconds=timeout_seconds / shots,
        )
    except PurificationError as exc:
        why = str(exc)
        return Candidate("teleport", 0.0, False, why, partition=placed, limited_by=PURIFICATION)
    except ValueError as exc:
        return Candidate("teleport", 0.0, False, str(exc), partition=placed)
    if demand.ideal is not None and program.circuit.num_qubits <= max_qubits:
        predicted = predict_program(program.circuit, program.noise, demand.ideal, shots)
        estimate = replace(program.fidelity, predicted=predicted)
        program = replace(program, fidelity=estimate, estimated_fidelity=estimate.value)
    fidelity, limit = program.estimated_fidelity, program.fidelity.limited_by()

    def infeasible(reason: str) -> Candidate:
        return Candidate("teleport", fidelity, False, reason, program, placed, limit)

    width = program.circuit.num_qubits
    if width > max_qubits:
        return infeasible(
            f"the co-simulated program needs {width} qubits, more than one agent simulates"
            f" ({max_qubits})"
        )
    by_name = {link.name: link for link in links}
    for name, seconds in sorted(program.generation_seconds(shots).items()):
        if seconds > timeout_seconds:
            raw = program.raw_pairs().get(name, program.bell_pairs[name])
            return infeasible(
                f"link {name} must herald {_count(raw * shots)} Bell pairs ({_count(raw)} per"
                f" shot x {shots} shots) at {by_name[name].seconds_per_pair:.3g} s each:"
                f" {seconds:.3g} s > timeoutSeconds {timeout_seconds:g}"
            )
    slowest = max(program.generation_seconds(shots).values(), default=0.0)
    pairs = sum(program.bell_pairs.values())
    reason = (
        f"{placed.nonlocal_gates} nonlocal gate(s) over {len(placed.nodes)} nodes,"
        f" {pairs} Bell pair(s) per shot ready in {slowest:.3g} s"
    )
    purified = [
        f"{name}: {u.purified.rounds} round(s) of {u.purified.protocol} from {u.raw_pairs:.3g}"
        f" raw pair(s), F={u.fidelity:.4g}"
        for name, u in sorted(program.link_pairs.items())
        if u.purified.rounds
    ]
    if purified:
        reason += f"; purified ({', '.join(purified)})"
    if program.conditional_messages:
        reason += (
            f", {program.conditional_messages} classical message(s) per shot carry measured"
            " bits to conditionals on other nodes"
        )
    if limit:
        reason += f"; limited by {limit}"
    return Candidate("teleport", fidelity, True, reason, program, placed, limit)


def estimate_cut(demand: Demand) -> Candidate:
    """Circuit knitting: subexperiments per node, expectation values (or, without
    observables, the output distribution) reconstructed."""
    circuit, observables, nodes = demand.circuit, demand.observables, demand.nodes
    links, max_sampling_overhead = demand.links, demand.max_sampling_overhead
    request = demand.output or OutputRequest()
    if not observables:
        if demand.output is None and demand.strategy != "cut":
            # Counts from single or teleport need no sampling overhead: the better default.
            return Candidate(
                "cut",
                0.0,
                False,
                "no observables: cutting reconstructs the output distribution only when the"
                " job asks for it (strategy: cut, or spec.output)",
            )
        try:  # before placing: a request too wide to hold is refused whatever the nodes
            check_request(circuit, request, demand.max_distribution_bits)
        except OutputTooWide as exc:
            return Candidate("cut", 0.0, False, str(exc), limited_by=OUTPUT_WIDTH)
        except ValueError as exc:
            return Candidate("cut", 0.0, False, str(exc))
    placed = partition(circuit, nodes, links, require_links=False, min_nodes=2)
    if placed is not None and is_dynamic(circuit):
        reason = cut_refusal(circuit, placed.assignment)
        return Candidate("cut", 0.0, False, reason, partition=placed)
    if placed is None:
        return Candidate("cut", 0.0, False, _why_unplaced(circuit, nodes, 0))
    knitted: CutPlan | DistributionPlan
    try:
        if observables:
            plan = knitted = plan_cut(circuit, observables, placed, max_sampling_overhead)
        else:
            knitted = plan_cut_distribution(
                circuit, placed, max_sampling_overhead, request, demand.max_distribution_bits
            )
            plan = knitted.knitting
    except OutputTooWide as exc:
        return Candidate("cut", 0.0, False, str(exc), partition=placed, limited_by=OUTPUT_WIDTH)
    except ValueError as exc:
        return Candidate("cut", 0.0, False, str(exc), partition=placed)
    slots = {n.name: n for n in nodes}
    worst: tuple[float, str, FidelityEstimate] | None = None
    for node, subexperiments in plan.subexperiments.items():
        # Subexperiments differ only in a few QPD gates: score the largest few exactly.
        largest = sorted(subexperiments, key=lambda c: -c.size())[:_WORST_SAMPLED]
        for sub in largest:
            estimate = _on_node(sub, slots[node], f"on {node}")
            if worst is None or estimate.value < worst[0]:
                worst = (estimate.value, node, estimate)
    assert worst is not None
    fidelity, node, estimate = worst
    limit = estimate.limited_by()
    reason = (
        f"{plan.num_cuts} cut(s), sampling overhead {plan.sampling_overhead:.4g} (bound"
        f" {max_sampling_overhead:g}), {plan.num_subexperiments} subexperiments; worst"
        f" subexperiment on {node}"
    )
    if limit:
        reason += f", limited by {limit}"
    return Candidate(
        "cut",
        fidelity,
        True,
        reason,
        knitted,
        placed,
        limit,
        sampling_overhead=plan.sampling_overhead,
    )


LOCC_CUT = "locc-cut"


def estimate_locc_cut(demand: Demand) -> Candidate:
    """Wires cut with one-way classical communication between two linked nodes."""
    circuit, observables, nodes = demand.circuit, demand.observables, demand.nodes
    if not observables:
        return Candidate(
            LOCC_CUT, 0.0, False, "cutting reconstructs expectation values: no observables"
        )
    cuts = [c for c in find_wire_cuts(circuit) if len(c.wires) <= MAX_WIRES]
    if not cuts:
        return Candidate(
            LOCC_CUT,
            0.0,
            False,
            f"no split of the gate order hands at most {MAX_WIRES} wires from one part to the"
            " other",
        )
    free = {n.name: n for n in nodes}
    pairs = [(link.a, link.b, link) for link in demand.links] + [
        (link.b, link.a, link) for link in demand.links
    ]
    pairs = [(a, b, link) for a, b, link in pairs if a in free and b in free]
    if not pairs:
        return Candidate(
            LOCC_CUT,
            0.0,
            False,
            "no link joins two usable nodes: the messages need a classical path",
        )
    for cut in cuts:
        fitting = [
            (a, b, link)
            for a, b, link in pairs
            if free[a].free_qubits >= len(cut.sender_qubits)
            and free[b].free_qubits >= len(cut.receiver_qubits)
        ]
        if fitting:
            break
    else:
        smallest = cuts[0]
        return Candidate(
            LOCC_CUT,
            0.0,
            False,
            f"no linked pair of nodes has {len(smallest.sender_qubits)} and"
            f" {len(smallest.receiver_qubits)} free qubits for the smallest wire cut",
        )
    wires = len(cut.wires)
    overhead = float(gamma(wires) ** 2)
    if overhead > demand.max_sampling_overhead:
        return Candidate(
            LOCC_CUT,
            0.0,
            False,
            f"{wires} wire(s) cost a sampling overhead of {overhead:g}, above the bound"
            f" {demand.max_sampling_overhead:g}",
        )
    best: tuple[float, Candidate] | None = None
    for a, b, link in fitting:
        plan = plan_locc_cut(circuit, observables, a, b, cut, link.name)
        estimate = min(
            (
                _on_node(plan.sender_circuits[0], free[a], f"on {a}"),
                _on_node(max(plan.receiver_circuits, key=lambda c: c.size()), free[b], f"on {b}"),
            ),
            key=lambda e: e.value,
        )
        latency = link.classical_latency_us * 1e-6
        seconds = latency * demand.shots
        limit = estimate.limited_by()
        if seconds > demand.timeout_seconds:
            candidate = Candidate(
                LOCC_CUT,
                estimate.value,
                False,
                f"link {link.name} carries a message per shot at {link.classical_latency_us:g} us:"
                f" {seconds:.3g} s > timeoutSeconds {demand.timeout_seconds:g}",
                limited_by=limit,
            )
        else:
            reason = (
                f"{wires} wire(s) cut from {a} to {b} with classical messages over link"
                f" {link.name} ({link.classical_latency_us:g} us each): sampling overhead"
                f" {overhead:g} (without communication {lo_gamma(wires) ** 2:g}; bound"
                f" {demand.max_sampling_overhead:g}), {plan.num_subexperiments} subexperiments"
            )
            if limit:
                reason += f"; limited by {limit}"
            assignment = {q: a for q in cut.sender_qubits} | {q: b for q in cut.receiver_qubits}
            placed = Partition(assignment, 0, {}, (a, b))
            candidate = Candidate(
                LOCC_CUT,
                estimate.value,
                True,
                reason,
                plan,
                placed,
                limit,
                sampling_overhead=overhead,
            )
        key = estimate.value + (1.0 if candidate.feasible else 0.0)
        if best is None or key > best[0]:
            best = (key, candidate)
    assert best is not None
    return best[1]


def choose(
    candidates: Sequence[Candidate],
    fidelity_budget: float | None,
    strategy: str = "auto",
    preference: Mapping[str, int] | None = None,
) -> Candidate | str:
    """The feasible candidate with the best estimated fidelity, or why none will do.

    `strategy` other than "auto" considers that strategy alone; at equal estimates the lower
    `preference` wins (fewer moving parts first), then the earlier candidate. Returns a
    rejection message (str) when nothing is feasible or the best estimate misses
    `fidelity_budget`.
    """
    rank = preference or {}
    pool = [c for c in candidates if strategy == "auto" or c.strategy == strategy]
    if not pool:
        return f"unknown strategy {strategy!r}"
    feasible = [c for c in pool if c.feasible]
    if not feasible:
        return "no feasible plan: " + "; ".join(f"{c.strategy}: {c.reason}" for c in pool)
    best = max(
        feasible,
        key=lambda c: (
            c.estimated_fidelity,
            -(c.sampling_overhead or 1.0),
            -rank.get(c.strategy, 0),
        ),
    )
    if fidelity_budget is not None and best.estimated_fidelity < fidelity_budget:
        limit = f", limited by {best.limited_by}" if best.limited_by else ""
        others = [c for c in pool if c is not best]
        rest = "; ".join(
            f"{c.strategy} {c.estimated_fidelity:.4f}"
            if c.feasible
            else f"{c.strategy}: {c.reason}"
            for c in others
        )
        return (
            f"no plan meets fidelityBudget {fidelity_budget:g}: the best estimate is"
            f" {best.estimated_fidelity:.4f} ({best.strategy}{limit})"
            + (f"; others: {rest}" if rest else "")
        )
    return best
