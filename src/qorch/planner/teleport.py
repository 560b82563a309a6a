"""The `teleport` strategy: nonlocal gates by shared Bell pairs, one co-simulated program.

Each nonlocal CX or CZ becomes the cat-entangler / cat-disentangler gadget (Eisert et al.,
PRA 62, 052317), which uses one Bell pair and two feed-forward messages:

    Bell pair (a on the control's node, b on the target's node), Werner-noisy per the link
    CX(control, a); measure a -> m0; reset a          [m0 travels to the target's node]
    if m0: X(b)                                        b now mirrors the control
    CX(b, target)   (or CZ)                            the gate, local to the target's node
    H(b); measure b -> m1; reset b                     [m1 travels back]
    if m1: Z(control)                                  undo the kickback; b is free again

Every other two-qubit gate is first decomposed into CX/CZ and one-qubit gates. Communication
qubits are reset after use, so each node needs one whatever the gate count. While a message
is in flight, the data qubits of both nodes (and the waiting half of the pair) idle for the
link's classical latency; a marker charges thermal relaxation for it. The whole program is
simulated by one agent with `qorch.qpu.composite_noise`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Qubit
from qiskit.circuit.library import IGate
from qiskit.transpiler.exceptions import TranspilerError

from qorch.api.quantum_node import NoiseSpec
from qorch.qpu.composite_noise import (
    FEED_FORWARD_REGISTER,
    BellPairNoise,
    CompositeNoise,
    IdleNoise,
)
from qorch.qpu.noise import TWO_QUBIT_GATES

from .circuits import NON_GATES, REMOTE_GATES, for_distribution, has_control_flow, translate
from .estimate import FidelityEstimate
from .fidelity import bell_pair_survival, fidelity_factors, idle_survival, noisy_profile
from .model import LinkSlot, NodeSlot
from .network import LinkIndex
from .partition import Partition

COMM_REGISTER = "qorch_comm"
BELL_STATE = [1 / math.sqrt(2), 0, 0, 1 / math.sqrt(2)]
CO_SIMULATION_NOTE = (
    "Nodes joined by entanglement share quantum state, so this program is one circuit"
    " co-simulated by a single agent with the composed noise model of its nodes and links."
)


@dataclass(frozen=True)
class TeleportProgram:
    """A co-simulated program and what it costs the links.

    `circuit` keeps the original circuit's qubits (0..n-1) and classical bits first and in
    order, then one communication qubit per node and a feed-forward register; its counts
    compare with the monolithic circuit's through `original_counts`. Bell pairs, attempts and
    generation seconds are per shot.
    """

    circuit: QuantumCircuit
    noise: dict[str, Any]
    qubit_owner: list[str]
    bell_pairs: dict[str, int]
    expected_attempts: dict[str, float]
    expected_generation_seconds: dict[str, float]
    estimated_fidelity: float
    note: str
    fidelity: FidelityEstimate = field(default_factory=FidelityEstimate)
    original_register_sizes: tuple[int, ...] = ()
    original_num_clbits: int = 0

    def original_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Counts over the original circuit's classical bits, keyed as Aer keys its counts."""
        n = self.original_num_clbits
        sizes = self.original_register_sizes
        out: Counter[str] = Counter()
        for key, hits in counts.items():
            flat = key.replace(" ", "")
            bits = flat[len(flat) - n :] if n else ""
            if len(sizes) > 1 and sum(sizes) == n:
                parts, end = [], len(bits)
                for size in sizes:  # register 0 is rightmost
                    parts.append(bits[end - size : end])
                    end -= size
                bits = " ".join(reversed(parts))
            out[bits] += int(hits)
        return dict(out)

    def qubits_per_node(self) -> dict[str, int]:
        """Physical qubits each node gives the program, communication qubits included."""
        return dict(Counter(self.qubit_owner))

    def generation_seconds(self, shots: int) -> dict[str, float]:
        """Expected time each link needs to herald the Bell pairs of `shots` shots."""
        return {k: v * shots for k, v in self.expected_generation_seconds.items()}


def program_basis(nodes: Sequence[NodeSlot]) -> list[str]:
    """Gates the program is written in: those all its nodes share, or all of theirs.

    With no common two-qubit gate, the union keeps each node's native gates available; the
    composite noise then charges a node's two-qubit error to every two-qubit gate in it.
    """
    sets = [set(n.basis_gates) - {*NON_GATES, "id"} for n in nodes]
    common = set.intersection(*sets)
    chosen = common if common & TWO_QUBIT_GATES else set.union(*sets)
    if not chosen & TWO_QUBIT_GATES:
        raise ValueError("no node of the plan offers a two-qubit gate")
    return sorted(chosen)


def _plain(op: Any) -> Any:
    """The operation without a label: Aer matches noise on labels, which belong to markers."""
    if getattr(op, "label", None):
        op = op.to_mutable()
        op.label = None
    return op


class _Builder:
    """Writes the program instruction by instruction, gadgets in place of nonlocal gates."""

    def __init__(
        self,
        logical: QuantumCircuit,
        owner: list[str],
        slots: Mapping[str, NodeSlot],
        index: LinkIndex,
        node_order: Sequence[str],
    ) -> None:
        self.logical = logical
        self.slots = slots
        self.index = index
        comm_nodes: set[str] = set()
        for inst in logical.data:
            qubits = [logical.find_bit(q).index for q in inst.qubits]
            if len(qubits) == 2 and owner[qubits[0]] != owner[qubits[1]]:
                if inst.operation.name not in REMOTE_GATES:
                    raise ValueError(f"nonlocal {inst.operation.name!r} cannot be teleported")
                comm_nodes.update(owner[q] for q in qubits)
        names = {r.name for r in [*logical.qregs, *logical.cregs]}
        if {COMM_REGISTER, FEED_FORWARD_REGISTER} & names:
            raise ValueError(f"register names {COMM_REGISTER}/{FEED_FORWARD_REGISTER} are reserved")
        self.program = logical.copy_empty_like()
        self.owner = list(owner)
        self.comm: dict[str, Qubit] = {}
        ordered = [n for n in node_order if n in comm_nodes]
        if ordered:
            comm = QuantumRegister(len(ordered), COMM_REGISTER)
            self.ff = ClassicalRegister(2, FEED_FORWARD_REGISTER)
            self.program.add_register(comm)
            self.program.add_register(self.ff)
            for node, qubit in zip(ordered, comm, strict=True):
                self.comm[node] = qubit
                self.owner.append(node)
        self.node_qubits: dict[str, list[Qubit]] = {}
        for qubit, node in zip(self.program.qubits[: logical.num_qubits], owner, strict=True):
            self.node_qubits.setdefault(node, []).append(qubit)
        self.pairs: Counter[str] = Counter()
        self.messages: Counter[tuple[str, str]] = Counter()  # (link, node) -> waits
        self.marker_ids: dict[str, int] = {}
        self.bell_qubits: dict[str, set[int]] = {}
        self.idle_qubits: dict[str, set[int]] = {}

    def build(self) -> QuantumCircuit:
        for inst in self.logical.data:
            qubits = [self.logical.find_bit(q).index for q in inst.qubits]
            if len(qubits) == 2 and self.owner[qubits[0]] != self.owner[qubits[1]]:
                self._remote(inst.operation.name, inst.qubits[0], inst.qubits[1])
            else:
                self.program.append(_plain(inst.operation), inst.qubits, inst.clbits)
        return self.program

    def _index(self, qubit: Qubit) -> int:
        return self.program.find_bit(qubit).index

    def _noise(self, qubit: Qubit) -> NoiseSpec:
        return self.slots[self.owner[self._index(qubit)]].noise

    def _marker(self, link: LinkSlot) -> int:
        return self.marker_ids.setdefault(link.name, len(self.marker_ids))

    def _wait(self, link: LinkSlot, nodes: tuple[str, str], extra: Qubit | None) -> None:
        """Idle marker on every qubit of both nodes that relaxes while a message travels."""
        for node in nodes:
            self.messages[(link.name, node)] += 1
        if link.classical_latency_us <= 0:
            return
        waiting = [q for n in nodes for q in self.node_qubits.get(n, [])]
        if extra is not None:
            waiting.append(extra)
        waiting = [q for q in waiting if self._noise(q).t1_microseconds]
        if not waiting:
            return
        label = f"qorch_idle_{self._marker(link)}"
        for q in waiting:
            self.program.append(IGate(label=label), [q])
        self.idle_qubits.setdefault(link.name, set()).update(self._index(q) for q in waiting)

    def _remote(self, gate: str, control: Qubit, target: Qubit) -> None:
        here = self.owner[self._index(control)]
        there = self.owner[self._index(target)]
        link = self.index.between(here, there)
        if link is None:
            raise ValueError(f"a {gate} joins {here} and {there}, which no link connects")
        a, b = self.comm[here], self.comm[there]
        p = self.program
        self.pairs[link.name] += 1
        p.initialize(BELL_STATE, [a, b])
        if link.fidelity < 1:
            p.append(IGate(label=f"qorch_bell_{self._marker(link)}"), [b])
            self.bell_qubits.setdefault(link.name, set()).add(self._index(b))
        # Cat-entangler: b becomes a copy of the control in the computational basis.
        p.cx(control, a)
        p.measure(a, self.ff[0])
        p.reset(a)
        self._wait(link, (here, there), b)
        with p.if_test((self.ff[0], 1)):
            p.x(b)
        if gate == "cx":
            p.cx(b, target)
        else:
            p.cz(b, target)
        # Cat-disentangler: measuring b in the X basis leaves a phase to fix on the control.
        p.h(b)
        p.measure(b, self.ff[1])
        p.reset(b)
        self._wait(link, (there, here), None)
        with p.if_test((self.ff[1], 1)):
            p.z(control)


def _noise_description(
    builder: _Builder,
    basis: list[str],
    used: Sequence[NodeSlot],
    link_by_name: Mapping[str, LinkSlot],
) -> CompositeNoise:
    """What the agent needs to rebuild the program's noise: nodes per qubit, link markers."""
    return CompositeNoise(
        basis_gates=basis,
        nodes={n.name: n.noise for n in used},
        qubit_owner=builder.owner,
        bell_pairs=[
            BellPairNoise(
                label=f"qorch_bell_{builder.marker_ids[name]}",
                link=name,
                fidelity=link_by_name[name].fidelity,
                qubits=sorted(qubits),
            )
            for name, qubits in builder.bell_qubits.items()
        ],
        idle=[
            IdleNoise(
                label=f"qorch_idle_{builder.marker_ids[name]}",
                link=name,
                microseconds=link_by_name[name].classical_latency_us,
                qubits=sorted(qubits),
            )
            for name, qubits in builder.idle_qubits.items()
        ],
    )


def _estimate(
    program: QuantumCircuit,
    builder: _Builder,
    slots: Mapping[str, NodeSlot],
    link_by_name: Mapping[str, LinkSlot],
) -> FidelityEstimate:
    """Each node's own work, then F per Bell pair, then idling per feed-forward message."""
    factors: dict[str, float] = {}
    for node in sorted(set(builder.owner)):
        mine = {q for q, n in enumerate(builder.owner) if n == node}
        for kind, f in fidelity_factors(noisy_profile(program, mine), slots[node].noise).items():
            if f < 1:
                factors[f"{kind} on {node}"] = f
    for name, count in sorted(builder.pairs.items()):
        f = link_by_name[name].fidelity
        if f < 1:
            factors[f"{count} Bell pair(s) over {name} at F={f:g}"] = bell_pair_survival(f, count)
    for (name, node), waits in sorted(builder.messages.items()):
        latency = link_by_name[name].classical_latency_us
        survival = idle_survival(slots[node].noise, latency) ** waits
        if survival < 1:
            factors[f"feed-forward waits on {node} ({waits} x {latency:g} us over {name})"] = (
                survival
            )
    return FidelityEstimate(factors)


def compile_teleport(
    circuit: QuantumCircuit,
    partition: Partition,
    nodes: Sequence[NodeSlot],
    links: Sequence[LinkSlot],
) -> TeleportProgram:
    """The co-simulated program of `circuit` placed by `partition`; ValueError if impossible."""
    if has_control_flow(circuit):
        raise ValueError("teleport does not support classical control flow in the circuit")
    missing = [q for q in range(circuit.num_qubits) if q not in partition.assignment]
    if missing:
        raise ValueError(f"the partition places no node for qubits {missing}")
    slots = {n.name: n for n in nodes}
    unknown = sorted(set(partition.assignment.values()) - set(slots))
    if unknown:
        raise ValueError(f"the partition uses unknown nodes {unknown}")
    used = [slots[n] for n in partition.nodes]
    basis = program_basis(used)
    one_qubit = [g for g in basis if g not in TWO_QUBIT_GATES]
    owner = [partition.assignment[q] for q in range(circuit.num_qubits)]
    index = LinkIndex(links)
    try:
        logical = for_distribution(circuit, one_qubit)
        builder = _Builder(logical, owner, slots, index, partition.nodes)
        program = translate(builder.build(), [*basis, "id"])
    except TranspilerError as exc:
        raise ValueError(f"cannot write the circuit in the gates {basis}: {exc}") from exc
    per_node = Counter(builder.owner)
    over = {n: c for n, c in per_node.items() if c > slots[n].free_qubits}
    if over:
        detail = ", ".join(f"{n} needs {c} > {slots[n].free_qubits} free" for n, c in over.items())
        raise ValueError(f"the program does not fit its nodes: {detail}")

    link_by_name = {link.name: link for link in links}
    noise = _noise_description(builder, basis, used, link_by_name)
    estimate = _estimate(program, builder, slots, link_by_name)
    pairs = dict(sorted(builder.pairs.items()))
    return TeleportProgram(
        circuit=program,
        noise=noise.model_dump(mode="json", by_alias=True, exclude_none=True),
        qubit_owner=builder.owner,
        bell_pairs=pairs,
        expected_attempts={
            k: v * link_by_name[k].expected_attempts_per_pair for k, v in pairs.items()
        },
        expected_generation_seconds={
            k: v * link_by_name[k].seconds_per_pair for k, v in pairs.items()
        },
        estimated_fidelity=estimate.value,
        note=CO_SIMULATION_NOTE,
        fidelity=estimate,
        original_register_sizes=tuple(r.size for r in circuit.cregs),
        original_num_clbits=circuit.num_clbits,
    )
