"""The `teleport` strategy: nonlocal gates by shared Bell pairs, one co-simulated program.

A nonlocal CX or CZ is the cat-entangler / cat-disentangler gadget (Eisert et al., PRA 62,
052317), which uses one Bell pair and two feed-forward messages:

    Bell pair (a on the control's node, b on the target's node), Werner-noisy per the link
    CX(control, a); measure a -> m0; reset a          [m0 travels to the target's node]
    if m0: X(b)                                        b now mirrors the control
    CX(b, target)   (or CZ)                            the gate, local to the target's node
    H(b); measure b -> m1; reset b                     [m1 travels back]
    if m1: Z(control)                                  undo the kickback; b is free again

Cat sharing. Between the entangler and the disentangler the pair (control, b) spans the
subspace {|00>, |11>}, and every operation diagonal in the control's computational basis
(a one-qubit phase, CX with the control as control, CZ) leaves it there; the disentangler
then restores the state whatever such operations ran. So the mirror b stays open and serves
every later remote gate between the control and b's node that uses the control diagonally,
without a new pair (the "embedding" of distributed gates, Wu et al., Quantum 2023, as in
pytket-dqc). The cat closes when an operation is not diagonal on the control (a Hadamard, a
CX targeting it, a measurement, a reset), when another gadget needs b's communication qubit
(a cat of another qubit towards b's node, or one sent from it), or at the end. The control's
own communication qubit is measured and reset by the entangler, so it is free again at once.
Each node's communication qubit holds at most one mirror; a control may keep mirrors open on
several nodes at once.

Phase blocks. `CX(a, b) D(b) CX(a, b)` with D one-qubit diagonal gates (how CPhase, CRZ and
RZZ decompose) is diag(d(a xor b)): symmetric in a and b, and diagonal on both. Such a block
is one unit; remote, it runs as `CX(m, y) D(y) CX(m, y)` with m the mirror of either qubit on
the other's node, and it never closes a cat. A remote CZ or phase block takes whichever
orientation can be reused longest, counted ahead over the circuit.

Teledata. A qubit with a run of remote gates towards one node that cat sharing cannot pack
(it is a CX target, or its roles alternate) moves there by teleportation (one pair, two
feed-forward bits), has the run as local gates on a free qubit of that node, and teleports
back (one more pair; none when only measurements follow). A run is moved only if the whole
program then needs fewer Bell pairs and every node still holds its qubits.

Every other two-qubit gate is first decomposed into CX/CZ and one-qubit gates. While a message
is in flight, the qubits alive on both nodes (and the waiting half of the pair) idle for the
link's classical latency; a marker charges thermal relaxation for it. The whole program is
simulated by one agent with `qorch.qpu.composite_noise`.

Dynamic circuits. Loops are unrolled and switches become if/else chains (`.unroll`); every
operation of an `if`/`else` body then runs under its condition on the node holding its
qubits. A remote gate in a body keeps its gadget unconditional, since the entangler and
disentangler with nothing between them are the identity; only the gate is conditional. A
conditional that reads bits measured on another node waits for them: one message per source
node (carrying every bit it has measured that the reader lacks), idling the reader's qubits
for the link's latency like the gadgets' messages.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, Gate
from qiskit.circuit.classical import expr
from qiskit.circuit.library import (
    CXGate,
    CZGate,
    HGate,
    IGate,
    Initialize,
    Measure,
    Reset,
    XGate,
    ZGate,
)
from qiskit.transpiler.exceptions import TranspilerError

from qorch.api.quantum_node import NoiseSpec
from qorch.qpu.composite_noise import (
    FEED_FORWARD_REGISTER,
    MAX_COSIMULATED_QUBITS,
    BellPairNoise,
    CompositeNoise,
    IdleNoise,
    MemoryFactors,
)
from qorch.qpu.noise import TWO_QUBIT_GATES

from .circuits import NON_GATES, REMOTE_GATES, for_distribution, translate
from .estimate import FidelityEstimate
from .fidelity import bell_pair_survival, fidelity_factors, idle_survival, noisy_profile
from .link_physics import (
    CONVERGENCE_FIDELITY,
    BellDiagonal,
    MemoryDecay,
    Protocol,
    PurificationError,
    Purified,
    aged,
    heralding_wait,
    mean_wait_seconds,
    purify,
)
from .model import LinkSlot, NodeSlot
from .network import LinkIndex
from .partition import Partition
from .unroll import Step, Test, UnrollLimits, predicated_steps, unroll

COMM_REGISTER = "qorch_comm"
BELL_STATE = [1 / math.sqrt(2), 0, 0, 1 / math.sqrt(2)]
CO_SIMULATION_NOTE = (
    "Nodes joined by entanglement share quantum state, so this program is one circuit"
    " co-simulated by a single agent with the composed noise model of its nodes and links."
)
#: Later gates on a qubit inspected to find a phase block or to score a cat; further ahead
#: the count only breaks ties, and a bound keeps compilation linear in the circuit size.
LOOKAHEAD = 64
#: Teledata runs tried, most remote gates first; each trial rebuilds the whole schedule.
MAX_TELEDATA_TRIALS = 24
#: One-qubit gates diagonal in the computational basis whatever their parameters.
_DIAGONAL = frozenset({"id", "delay", "rz", "p", "u1", "z", "s", "sdg", "t", "tdg"})
_NOT_GATES = frozenset({"measure", "reset", "initialize"})


@dataclass(frozen=True)
class TeleportProgram:
    """A co-simulated program and what it costs the links.

    `circuit` keeps the original circuit's qubits (0..n-1) and classical bits first and in
    order, then the communication qubits (one per node that takes part in remote work, plus
    the free qubits that teledata lands on) and a feed-forward register; its counts compare
    with the monolithic circuit's through `original_counts`. Bell pairs, attempts and
    generation seconds are per shot. `nonlocal_gates` counts the CX/CZ that span two nodes as
    placed (one Bell pair each without sharing); `teledata` the qubit moves the program makes;
    `conditional_messages` the classical messages that carry the circuit's own measured bits
    to a node whose conditional operation reads them (per shot, each charged the link's
    classical latency as idling). `link_pairs` says how each link's pairs are made (heralded,
    aged in memory, purified); attempts and generation seconds count raw pairs.
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
    nonlocal_gates: int = 0
    teledata: int = 0
    conditional_messages: int = 0
    link_pairs: Mapping[str, LinkPairs] = field(default_factory=dict)

    def purification(self) -> dict[str, tuple[Protocol | None, int]]:
        """The purification the program was compiled with, to compile it again alike."""
        return {k: (u.purified.protocol, u.purified.rounds) for k, u in self.link_pairs.items()}

    def raw_pairs(self) -> dict[str, float]:
        """Expected heralded pairs per shot per link, purification's consumption included."""
        return {k: u.raw_pairs for k, u in self.link_pairs.items()}

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


def _is_diagonal(op: Any) -> bool:
    """Whether a one-qubit operation leaves computational basis states alone (up to phase)."""
    if op.name in _DIAGONAL:
        return True
    if not isinstance(op, Gate) or op.num_qubits != 1:
        return False
    try:
        matrix = np.asarray(op.to_matrix(), dtype=complex)
    except Exception:  # unbound parameters, or no matrix defined: assume the worst
        return False
    return bool(abs(matrix[0, 1]) < 1e-12 and abs(matrix[1, 0]) < 1e-12)


@dataclass(frozen=True)
class _Unit:
    """One step of the logical circuit as the scheduler sees it.

    kind: "op" (anything but the two-qubit gates below), "barrier", "cx", "cz", or "zz" (a
    phase block `CX(a, b) phases(b) CX(a, b)`). `diagonal[i]` says whether the unit leaves
    qubit i's computational basis states alone, which is what an open cat on it needs.
    """

    kind: str
    qubits: tuple[int, ...]
    diagonal: tuple[bool, ...]
    operation: Any = None
    clbits: tuple[int, ...] = ()
    phases: tuple[Any, ...] = ()
    predicate: tuple[Test, ...] = ()


def _phase_block(
    i: int,
    a: int,
    b: int,
    data: Sequence[Step],
    touches: Mapping[int, list[int]],
    consumed: set[int],
) -> tuple[int, list[int]] | None:
    """(index of the closing CX, indices of the phases on b) if data[i] opens a phase block.

    Between the two CX(a, b), b may only get one-qubit diagonal gates and a only operations
    diagonal on it; those on a commute with the block, as do operations on other qubits, so
    the block can run whole where its first CX stood.
    """
    list_a, list_b = touches[a], touches[b]
    ia, ib = bisect_right(list_a, i), bisect_right(list_b, i)
    phases: list[int] = []
    for _ in range(LOOKAHEAD):
        na = list_a[ia] if ia < len(list_a) else None
        nb = list_b[ib] if ib < len(list_b) else None
        if na is None and nb is None:
            return None
        j = min(x for x in (na, nb) if x is not None)
        ia += na == j
        ib += nb == j
        op, qs = data[j].operation, data[j].qubits
        if data[j].predicate:
            return None  # a conditional gate ends the block
        if op.name == "cx" and qs == (a, b) and j not in consumed:
            return j, phases
        if b in qs:
            if len(qs) == 1 and j not in consumed and _is_diagonal(op):
                phases.append(j)
                continue
            return None
        diagonal_on_a = (
            (len(qs) == 1 and _is_diagonal(op))
            or (op.name == "cx" and qs[0] == a)
            or op.name == "cz"
        )
        if not diagonal_on_a:
            return None
    return None


def _units(logical: QuantumCircuit) -> list[_Unit]:
    """The logical circuit as units, phase blocks merged; see `_Unit`."""
    data = predicated_steps(logical)
    touches: dict[int, list[int]] = {q: [] for q in range(logical.num_qubits)}
    for i, step in enumerate(data):
        for q in step.qubits:
            touches[q].append(i)
    consumed: set[int] = set()
    units: list[_Unit] = []
    for i, step in enumerate(data):
        if i in consumed:
            continue
        op, qs, predicate = step.operation, step.qubits, step.predicate
        if op.name == "barrier":
            units.append(_Unit("barrier", qs, (True,) * len(qs), _plain(op)))
        elif op.name in REMOTE_GATES and len(qs) == 2 and not step.clbits:
            block = (
                _phase_block(i, *qs, data, touches, consumed)
                if op.name == "cx" and not predicate
                else None
            )
            if block is not None:
                closing, phases = block
                consumed.update([closing, *phases])
                ops = tuple(_plain(data[k].operation) for k in phases)
                units.append(_Unit("zz", qs, (True, True), phases=ops))
            else:
                units.append(_Unit(op.name, qs, (True, op.name == "cz"), predicate=predicate))
        else:
            diagonal = len(qs) == 1 and _is_diagonal(op)
            units.append(
                _Unit("op", qs, (diagonal,) * len(qs), _plain(op), step.clbits, predicate=predicate)
            )
    return units


@dataclass(frozen=True)
class _Record:
    """One program instruction on program qubit and clbit indices; `condition` is the
    feed-forward bit an `if` tests, `predicate` the circuit's own tests around it."""

    operation: Any
    qubits: tuple[int, ...]
    clbits: tuple[int, ...] = ()
    condition: int | None = None
    predicate: tuple[Test, ...] = ()


class _Writer:
    """Writes single operations in the program's gates, each distinct one translated once."""

    def __init__(self, basis: Sequence[str]) -> None:
        self.basis = [*basis, "id"]
        self.native = {*self.basis, *NON_GATES}
        self.cache: dict[Any, tuple[list[tuple[Any, tuple[int, ...]]], float]] = {}

    def steps(self, op: Any) -> tuple[list[tuple[Any, tuple[int, ...]]], float]:
        """`op` as (operation, operand positions) in the basis, and the global phase that
        translation leaves."""
        if op.name in self.native:
            return [(op, tuple(range(op.num_qubits)))], 0.0
        key: tuple[Any, ...] | None = (op.name, op.num_qubits, tuple(op.params))
        try:
            return self.cache[key]
        except KeyError:
            pass
        except TypeError:  # array parameters: translate every time
            key = None
        one = QuantumCircuit(op.num_qubits)
        one.append(op, one.qubits)
        out = translate(one, self.basis)
        steps = [
            (inst.operation, tuple(out.find_bit(q).index for q in inst.qubits)) for inst in out.data
        ]
        if key is not None:
            self.cache[key] = (steps, float(out.global_phase))
        return steps, float(out.global_phase)


class _Builder:
    """Schedules the units: local gates as they are, remote ones through cats, qubit moves."""

    def __init__(
        self,
        units: Sequence[_Unit],
        owner: Sequence[str],
        slots: Mapping[str, NodeSlot],
        index: LinkIndex,
        node_order: Sequence[str],
        num_clbits: int,
        moves: Mapping[int, Sequence[tuple[int, str]]] | None = None,
    ) -> None:
        self.units = units
        self.slots = slots
        self.index = index
        self.moves = moves or {}
        width = len(owner)
        self.width = width
        self.owner = list(owner)  # program qubit -> node
        self.where = list(range(width))  # logical qubit -> program qubit
        self.touches: list[list[int]] = [[] for _ in range(width)]
        for i, unit in enumerate(units):
            for q in unit.qubits:
                self.touches[q].append(i)
        self.comm: dict[str, int] = {}
        remote = {
            owner[q]
            for u in units
            if u.kind in ("cx", "cz", "zz") and owner[u.qubits[0]] != owner[u.qubits[1]]
            for q in u.qubits
        }
        for node in node_order:
            if node in remote:
                self._comm(node)
        self.held: dict[str, int] = {}  # node -> logical qubit its communication qubit mirrors
        self.cats: dict[int, list[str]] = {}  # logical qubit -> nodes holding its mirror
        self.pool: dict[str, list[int]] = {}  # free program qubits (in |0>) per node
        self.ff = (num_clbits, num_clbits + 1)
        self.records: list[_Record] = []
        self.pairs: Counter[str] = Counter()
        self.messages: Counter[tuple[str, str]] = Counter()  # (link, node) -> waits
        self.marker_ids: dict[str, int] = {}
        # One labelled identity per marker, emitted wherever it goes: built for each of the
        # 850,000 idles of a program of 950 nonlocal gates, they took 5.5 s of its 15.
        self.marker_gates: dict[str, IGate] = {}
        self.bell_qubits: dict[str, set[int]] = {}
        self.idle_qubits: dict[str, set[int]] = {}
        self.teledata = 0
        self.position = 0
        # The circuit's own clbits: the node whose measurement last wrote each, and the nodes
        # that have since received its value (a conditional elsewhere waits for a message).
        self.bit_home: dict[int, str] = {}
        self.bit_known: dict[int, set[str]] = {}
        self.conditional_messages = 0

    # -- the schedule -----------------------------------------------------------------------

    def build(self) -> _Builder:
        for i, unit in enumerate(self.units):
            self.position = i
            for qubit, node in self.moves.get(i, ()):
                self._move(qubit, node)
            self._unit(unit)
        for node in list(self.held):
            self._close(self.held[node], node)
        return self

    def _unit(self, unit: _Unit) -> None:
        for q, diagonal in zip(unit.qubits, unit.diagonal, strict=True):
            if not diagonal:
                self._close_cats(q)
        phys = tuple(self.where[q] for q in unit.qubits)
        if unit.kind in ("op", "barrier"):
            nodes = {self.owner[p] for p in phys}
            if unit.kind == "barrier":
                self._emit(unit.operation, phys)
                return
            if len(nodes) > 1:
                raise ValueError(f"nonlocal {unit.operation.name!r} cannot be teleported")
            (node,) = nodes
            self._deliver(unit.predicate, node)
            self._emit(unit.operation, phys, unit.clbits, predicate=unit.predicate)
            if unit.operation.name == "measure":
                for bit in unit.clbits:
                    self.bit_home[bit] = node
                    self.bit_known[bit] = {node}
            return
        x, y = unit.qubits
        if self.owner[phys[0]] == self.owner[phys[1]]:
            self._gate(unit, phys[0], phys[1])
            return
        options = [(x, y)] if unit.kind == "cx" else [(x, y), (y, x)]
        for control, other in options:
            there = self._node(other)
            if there in self.cats.get(control, ()):
                self._gate(unit, self.comm[there], self.where[other])
                return
        control, other = max(options, key=self._score)  # max keeps the first of equals
        there = self._node(other)
        self._open(control, there)
        self._gate(unit, self.comm[there], self.where[other])

    def _gate(self, unit: _Unit, first: int, second: int) -> None:
        """The unit on program qubits `first` (the control, or a mirror) and `second`. A CZ or
        phase block is symmetric, so either qubit's mirror may come first; the phases then go
        on the other one. A conditional gate runs where `second` is, once its bits are there;
        the gadget around it runs whatever the condition, as it is the identity without it."""
        if unit.kind == "cx":
            self._deliver(unit.predicate, self.owner[second])
            self._emit(CXGate(), (first, second), predicate=unit.predicate)
        elif unit.kind == "cz":
            self._deliver(unit.predicate, self.owner[second])
            self._emit(CZGate(), (first, second), predicate=unit.predicate)
        else:
            self._emit(CXGate(), (first, second))
            for op in unit.phases:
                self._emit(op, (second,))
            self._emit(CXGate(), (first, second))

    def _score(self, option: tuple[int, int]) -> int:
        """Later gates a new cat would serve, less those of the cats it would close."""
        control, other = option
        here, there = self._node(control), self._node(other)
        score = self._reuse(control, there)
        for node in (here, there):
            if node in self.held:
                score -= self._reuse(self.held[node], node)
        return score

    def _reuse(self, control: int, there: str) -> int:
        """Remote gates after this unit that a mirror of `control` on `there` would serve."""
        count = 0
        later = self.touches[control]
        start = bisect_right(later, self.position)
        for i in later[start : start + LOOKAHEAD]:
            unit = self.units[i]
            k = unit.qubits.index(control)
            if not unit.diagonal[k]:
                break
            if unit.kind in ("cx", "cz", "zz") and self._node(unit.qubits[1 - k]) == there:
                count += 1
        return count

    # -- gadgets ----------------------------------------------------------------------------

    def _node(self, qubit: int) -> str:
        return self.owner[self.where[qubit]]

    def _link(self, here: str, there: str) -> LinkSlot:
        link = self.index.between(here, there)
        if link is None:
            raise ValueError(f"a gate joins {here} and {there}, which no link connects")
        return link

    def _new_qubit(self, node: str) -> int:
        self.owner.append(node)
        return len(self.owner) - 1

    def _comm(self, node: str) -> int:
        if node not in self.comm:
            self.comm[node] = self._new_qubit(node)
        return self.comm[node]

    def _free_comm(self, node: str) -> int:
        if node in self.held:
            self._close(self.held[node], node)
        return self._comm(node)

    def _pair(self, link: LinkSlot, a: int, b: int) -> None:
        """A Bell pair on (a, b), its noise carried by the half on the link's first node: the
        half that waits in memory for its partner's herald (`link_physics`)."""
        self.pairs[link.name] += 1
        self._emit(Initialize(BELL_STATE), (a, b))
        waiting = a if self.owner[a] == link.a else b
        if link.fidelity < 1 or self._noise(waiting).t1_microseconds:
            self._emit(self._marker_gate(f"qorch_bell_{self._marker(link)}"), (waiting,))
            self.bell_qubits.setdefault(link.name, set()).add(waiting)

    def _open(self, control: int, there: str) -> None:
        """Cat-entangler: the communication qubit of `there` becomes a copy of `control`."""
        here = self._node(control)
        link = self._link(here, there)
        a, b = self._free_comm(here), self._free_comm(there)
        self._pair(link, a, b)
        self._emit(CXGate(), (self.where[control], a))
        self._emit(Measure(), (a,), (self.ff[0],))
        self._emit(Reset(), (a,))
        self._wait(link, (here, there), b)
        self._emit(XGate(), (b,), condition=self.ff[0])
        self.held[there] = control
        self.cats.setdefault(control, []).append(there)

    def _close(self, control: int, there: str) -> None:
        """Cat-disentangler: measuring the mirror in the X basis leaves a phase on the control."""
        b = self.comm[there]
        here = self._node(control)
        self._emit(HGate(), (b,))
        self._emit(Measure(), (b,), (self.ff[1],))
        self._emit(Reset(), (b,))
        del self.held[there]
        self.cats[control].remove(there)
        self._wait(self._link(here, there), (there, here), None)
        self._emit(ZGate(), (self.where[control],), condition=self.ff[1])

    def _close_cats(self, qubit: int) -> None:
        for there in list(self.cats.get(qubit, ())):
            self._close(qubit, there)

    def _move(self, qubit: int, there: str) -> None:
        """Teleport a logical qubit onto a free qubit of `there`; its old qubit becomes free."""
        here = self._node(qubit)
        if here == there:
            return
        self._close_cats(qubit)
        link = self._link(here, there)
        a = self._free_comm(here)
        free = self.pool.setdefault(there, [])
        d = free.pop(0) if free else self._new_qubit(there)
        p = self.where[qubit]
        self._pair(link, a, d)
        self._emit(CXGate(), (p, a))
        self._emit(HGate(), (p,))
        self._emit(Measure(), (a,), (self.ff[0],))
        self._emit(Reset(), (a,))
        self._emit(Measure(), (p,), (self.ff[1],))
        self._emit(Reset(), (p,))
        self.where[qubit] = d
        self.pool.setdefault(here, []).append(p)
        self._wait(link, (here, there), None)
        # d holds X^m0 Z^m1 |psi>: undo the X first.
        self._emit(XGate(), (d,), condition=self.ff[0])
        self._emit(ZGate(), (d,), condition=self.ff[1])
        self.teledata += 1

    def _deliver(self, predicate: Sequence[Test], node: str) -> None:
        """Send the bits a conditional on `node` reads from the nodes that measured them: one
        message per source node, its latency idling `node`'s qubits as they wait for it. A
        message carries every bit its source has measured that `node` lacks."""
        sources: set[str] = set()
        for test in predicate:
            for bit in test.bits:
                home = self.bit_home.get(bit)  # never measured: reads 0 everywhere
                if home is not None and node not in self.bit_known[bit]:
                    sources.add(home)
        for home in sorted(sources):
            link = self.index.between(home, node)
            if link is None:
                raise ValueError(
                    f"a conditional operation on {node} reads bits measured on {home}, which no"
                    " link connects"
                )
            self._wait(link, (node,), None)
            self.conditional_messages += 1
            for bit, source in self.bit_home.items():
                if source == home:
                    self.bit_known[bit].add(node)

    # -- emission ---------------------------------------------------------------------------

    def _emit(
        self,
        op: Any,
        qubits: tuple[int, ...],
        clbits: tuple[int, ...] = (),
        condition: int | None = None,
        predicate: tuple[Test, ...] = (),
    ) -> None:
        self.records.append(_Record(op, qubits, clbits, condition, predicate))

    def _noise(self, qubit: int) -> NoiseSpec:
        return self.slots[self.owner[qubit]].noise

    def _marker(self, link: LinkSlot) -> int:
        return self.marker_ids.setdefault(link.name, len(self.marker_ids))

    def _marker_gate(self, label: str) -> IGate:
        gate = self.marker_gates.get(label)
        if gate is None:
            gate = self.marker_gates[label] = IGate(label=label)
        return gate

    def _wait(self, link: LinkSlot, nodes: tuple[str, ...], extra: int | None) -> None:
        """Idle marker on every qubit alive on `nodes` while a message travels (both ends for
        a gadget, the receiver for a conditional's bits): data qubits, open mirrors, and
        `extra` (the half of a pair waiting for its correction)."""
        for node in nodes:
            self.messages[(link.name, node)] += 1
        if link.classical_latency_us <= 0:
            return
        alive = [*self.where, *(self.comm[n] for n in self.held)]
        waiting = sorted(q for q in alive if self.owner[q] in nodes)
        if extra is not None:
            waiting.append(extra)
        waiting = [q for q in waiting if self._noise(q).t1_microseconds]
        if not waiting:
            return
        gate = self._marker_gate(f"qorch_idle_{self._marker(link)}")
        for q in waiting:
            self._emit(gate, (q,))
        self.idle_qubits.setdefault(link.name, set()).update(waiting)

    def circuit(self, logical: QuantumCircuit, basis: Sequence[str]) -> QuantumCircuit:
        """The program in `basis`: the logical circuit's registers, then communication qubits
        and the feed-forward register when there is remote work.

        Instructions are written one by one in the order scheduled. Translating the finished
        program instead would pass it through a DAG, whose topological order may reuse a
        freed qubit before the feed-forward correction of its measurement, a pattern
        `simulate_composite` can no longer defer.
        """
        program = logical.copy_empty_like()
        extra = len(self.owner) - self.width
        if extra:
            program.add_register(QuantumRegister(extra, COMM_REGISTER))
            program.add_register(ClassicalRegister(2, FEED_FORWARD_REGISTER))
        qubits, clbits = program.qubits, program.clbits
        writer = _Writer(basis)
        for rec in self.records:
            targets = [qubits[q] for q in rec.qubits]
            steps, phase = writer.steps(rec.operation)
            bits = [clbits[c] for c in rec.clbits]
            if rec.condition is None and not rec.predicate:
                program.global_phase += phase
                for op, where in steps:
                    program.append(op, [targets[i] for i in where], bits)
                continue
            # A phase inside a branch is global to that branch of the mixture: dropped.
            condition = (
                (clbits[rec.condition], 1)
                if rec.condition is not None
                else _condition(rec.predicate, program)
            )
            with program.if_test(condition):
                for op, where in steps:
                    program.append(op, [targets[i] for i in where], bits)
        return program

    def fits(self) -> bool:
        used = Counter(self.owner)
        return all(used[n] <= self.slots[n].free_qubits for n in used)


def _condition(predicate: Sequence[Test], program: QuantumCircuit) -> Any:
    """The predicate as an `if` condition on the program's bits: a (bit or register, value)
    pair when it is one test that holds, a classical expression otherwise."""
    terms: list[Any] = []
    for test in predicate:
        if test.expression is not None:  # on the circuit's own bits, which the program keeps
            if len(predicate) == 1 and test.holds:
                return test.expression
            terms.append(test.expression if test.holds else expr.logic_not(test.expression))
            continue
        bits = [program.clbits[b] for b in test.bits]
        register = next((r for r in program.cregs if list(r) == bits), None)
        if len(predicate) == 1 and test.holds and (len(bits) == 1 or register is not None):
            return (bits[0] if len(bits) == 1 else register, test.value)
        if len(bits) == 1:
            term = expr.lift(bits[0]) if test.value else expr.logic_not(bits[0])
        elif register is not None:
            term = expr.equal(register, test.value)
        else:
            term = _bits_equal(bits, test.value)
        terms.append(term if test.holds else expr.logic_not(term))
    condition = terms[0]
    for term in terms[1:]:
        condition = expr.logic_and(condition, term)
    return condition


def _bits_equal(bits: Sequence[Clbit], value: int) -> Any:
    """bits (least significant first) == value, as a classical expression."""
    out: Any = None
    for k, bit in enumerate(bits):
        term = expr.lift(bit) if (value >> k) & 1 else expr.logic_not(bit)
        out = term if out is None else expr.logic_and(out, term)
    return out


@dataclass(frozen=True)
class _Run:
    """Consecutive remote gates of one qubit towards one node: a teledata candidate.

    The qubit moves before unit `start` and back before unit `end` (None: it stays, because
    only measurements follow). `saving` is what the run would take as gadgets (gates that use
    the qubit diagonally sharing its cat) less the pairs of the move: a first guess, since
    cats of the other qubits may pack the run too.
    """

    qubit: int
    node: str
    start: int
    end: int | None
    saving: int


def _qubit_runs(
    qubit: int, units: Sequence[_Unit], later: list[int], owner: Sequence[str]
) -> list[_Run]:
    """The teledata candidates of one qubit, whose units are `later`."""
    home = owner[qubit]
    found: list[_Run] = []
    node: str | None = None  # the node of the current run
    start, cost, mirrored = 0, 0, False

    def finish(end: int | None) -> None:
        saving = cost - (1 if end is None else 2)
        if node is not None and saving > 0:
            found.append(_Run(qubit, node, start, end, saving))

    for pos, i in enumerate(later):
        unit = units[i]
        if unit.kind == "barrier":
            continue
        if unit.kind == "op":
            if unit.operation.name in _NOT_GATES:
                rest = (units[k] for k in later[pos:])
                stays = all(
                    r.kind == "barrier" or (r.kind == "op" and r.operation.name == "measure")
                    for r in rest
                )
                finish(None if stays else i)
                if stays:
                    return found
                node = None
            elif not unit.diagonal[0]:
                mirrored = False
            continue
        k = unit.qubits.index(qubit)
        there = owner[unit.qubits[1 - k]]
        if there != node:
            finish(i)
            node = there if there != home else None
            start, cost, mirrored = i, 0, False
        if node is None:
            continue
        # What gadgets would cost, counting only the qubit's own cat: a gate that uses the
        # qubit diagonally rides on its open mirror, any other needs a pair of its own.
        if unit.diagonal[k]:
            cost += 0 if mirrored else 1
            mirrored = True
        else:
            cost += 1
            mirrored = False
    finish(None)
    return found


def _runs(units: Sequence[_Unit], owner: Sequence[str]) -> list[_Run]:
    """Teledata candidates on the partition's placement, most promising first."""
    touches: list[list[int]] = [[] for _ in owner]
    for i, unit in enumerate(units):
        for q in unit.qubits:
            touches[q].append(i)
    found = [run for q in range(len(owner)) for run in _qubit_runs(q, units, touches[q], owner)]
    found.sort(key=lambda r: (-r.saving, r.start, r.qubit))
    return found


def _schedule(
    units: Sequence[_Unit],
    owner: Sequence[str],
    slots: Mapping[str, NodeSlot],
    index: LinkIndex,
    node_order: Sequence[str],
    num_clbits: int,
    teledata: bool,
) -> _Builder:
    """Cat sharing everywhere, plus each teledata run that lowers the program's Bell pairs.

    Runs are tried greedily on the whole schedule, since a move also changes which cats stay
    open around it; one that needs a link the plan lacks, more qubits than a node has free, or
    a program too wide for one agent to co-simulate is dropped.
    """

    def build(runs: Sequence[_Run]) -> _Builder:
        moves: dict[int, list[tuple[int, str]]] = {}
        for run in runs:  # returns before departures at the same unit
            if run.end is not None:
                moves.setdefault(run.end, []).insert(0, (run.qubit, owner[run.qubit]))
        for run in runs:
            moves.setdefault(run.start, []).append((run.qubit, run.node))
        return _Builder(units, owner, slots, index, node_order, num_clbits, moves).build()

    best = build([])
    if not teledata or not best.pairs or not best.fits():
        return best
    # A move must not make a program that one agent could co-simulate too wide for it; one
    # already too wide is limited by the nodes' free qubits alone.
    widest = MAX_COSIMULATED_QUBITS if len(best.owner) <= MAX_COSIMULATED_QUBITS else math.inf
    chosen: list[_Run] = []
    for run in _runs(units, owner)[:MAX_TELEDATA_TRIALS]:
        try:
            trial = build([*chosen, run])
        except ValueError:
            continue
        if not trial.fits() or len(trial.owner) > widest:
            continue
        if sum(trial.pairs.values()) < sum(best.pairs.values()):
            best, chosen = trial, [*chosen, run]
    return best


@dataclass(frozen=True)
class LinkPairs:
    """How one link's pairs reach a program: heralded, aged while the half on `waiting_node`
    waits for its partner, then purified (`link_physics`). Counts are per shot."""

    link: str
    pairs: int
    raw_fidelity: float  # the link's Werner fidelity at the herald
    waiting_node: str
    memory: MemoryDecay
    purified: Purified
    seconds_per_pair: float
    attempts_per_pair: float

    @property
    def fidelity(self) -> float:
        """Fidelity of a pair as the gadgets use it."""
        return self.purified.state.fidelity

    @property
    def raw_pairs(self) -> float:
        """Expected heralded pairs the link makes for one shot's pairs."""
        return self.pairs * self.purified.raw_pairs

    @property
    def generation_seconds(self) -> float:
        return self.raw_pairs * self.seconds_per_pair

    def noise(self, label: str, qubits: Sequence[int]) -> BellPairNoise:
        """The marker's noise: the raw pair exactly (Werner, then the memory's relaxation),
        or the purified pair's Bell-diagonal weights."""
        if self.purified.rounds:
            state = self.purified.state
            return BellPairNoise(
                label=label,
                link=self.link,
                fidelity=state.fidelity,
                qubits=sorted(qubits),
                paulis=list(state.paulis()),
            )
        memory = self.memory
        return BellPairNoise(
            label=label,
            link=self.link,
            fidelity=self.raw_fidelity,
            qubits=sorted(qubits),
            memory=None
            if memory.is_identity()
            else MemoryFactors(
                population_decay=memory.population, coherence_decay=memory.coherence
            ),
        )


#: (protocol, rounds) per link name; a link not named is used raw.
PurificationChoice = Mapping[str, tuple[Protocol | None, int]]
#: Most combinations of per-link purification options the planner compares.
MAX_PURIFICATION_CHOICES = 256


def link_pairs(
    link: LinkSlot, pairs: int, noise: NoiseSpec, protocol: Protocol | None, rounds: int
) -> LinkPairs:
    """The pairs of `link` as a program gets them, the waiting half in a memory with `noise`;
    PurificationError when `rounds` are asked of pairs at fidelity <= 1/2."""
    memory = heralding_wait(noise, link.generation_rate_hz, link.success_probability)
    raw = aged(BellDiagonal.werner(link.fidelity), memory)
    if rounds and link.fidelity <= CONVERGENCE_FIDELITY:
        raise PurificationError(
            f"link {link.name}: purification needs pairs of fidelity above"
            f" {CONVERGENCE_FIDELITY:g}, and the link makes {link.fidelity:.4g}, so it cannot"
            " converge (raise the link's fidelity or remove spec.purification)"
        )
    try:
        purified = purify(raw, protocol, rounds)
    except PurificationError:
        wait = mean_wait_seconds(link.generation_rate_hz, link.success_probability)
        raise PurificationError(
            f"link {link.name}: purification needs pairs of fidelity above"
            f" {CONVERGENCE_FIDELITY:g}, and its pairs of {link.fidelity:.4g} fall to"
            f" {raw.fidelity:.4g} waiting {wait * 1e6:.3g} us for their herald in the memory"
            f" of {link.a}, so it cannot converge (a faster link, or longer T1/T2)"
        ) from None
    return LinkPairs(
        link=link.name,
        pairs=pairs,
        raw_fidelity=link.fidelity,
        waiting_node=link.a,
        memory=memory,
        purified=purified,
        seconds_per_pair=link.seconds_per_pair,
        attempts_per_pair=link.expected_attempts_per_pair,
    )


def _noise_description(
    builder: _Builder,
    basis: list[str],
    used: Sequence[NodeSlot],
    link_by_name: Mapping[str, LinkSlot],
    pairs: Mapping[str, LinkPairs],
) -> CompositeNoise:
    """What the agent needs to rebuild the program's noise: nodes per qubit, link markers."""
    return CompositeNoise(
        basis_gates=basis,
        nodes={n.name: n.noise for n in used},
        qubit_owner=builder.owner,
        bell_pairs=[
            pairs[name].noise(f"qorch_bell_{builder.marker_ids[name]}", sorted(qubits))
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


def _work_factors(
    program: QuantumCircuit,
    builder: _Builder,
    slots: Mapping[str, NodeSlot],
    link_by_name: Mapping[str, LinkSlot],
) -> dict[str, float]:
    """Each node's own work, then idling per feed-forward message: what the pairs leave."""
    factors: dict[str, float] = {}
    for node in sorted(set(builder.owner)):
        mine = {q for q, n in enumerate(builder.owner) if n == node}
        for kind, f in fidelity_factors(noisy_profile(program, mine), slots[node].noise).items():
            if f < 1:
                factors[f"{kind} on {node}"] = f
    for (name, node), waits in sorted(builder.messages.items()):
        latency = link_by_name[name].classical_latency_us
        survival = idle_survival(slots[node].noise, latency) ** waits
        if survival < 1:
            factors[f"feed-forward waits on {node} ({waits} x {latency:g} us over {name})"] = (
                survival
            )
    return factors


def _pair_factors(pairs: Mapping[str, LinkPairs]) -> dict[str, float]:
    """F per Bell pair, as the program gets it."""
    factors: dict[str, float] = {}
    for name, use in sorted(pairs.items()):
        f = use.fidelity
        if f >= 1:
            continue
        how = (
            f", {use.purified.rounds} round(s) of {use.purified.protocol}"
            if use.purified.rounds
            else ""
        )
        if not use.memory.is_identity():
            how = f", aged waiting for the herald on {use.waiting_node}" + how
        factors[f"{use.pairs} Bell pair(s) over {name} at F={f:.4g}{how}"] = bell_pair_survival(
            f, use.pairs
        )
    return factors


def _choices(
    links: Sequence[LinkSlot], fixed: PurificationChoice | None
) -> list[dict[str, tuple[Protocol | None, int]]]:
    """Purification choices to compare: the given one, or every combination of the links'
    policy options (their first options alone past MAX_PURIFICATION_CHOICES), fewest rounds
    first."""
    if fixed is not None:
        return [{x.name: fixed.get(x.name, (None, 0)) for x in links}]
    options = {x.name: x.purification.options() if x.purification else [(None, 0)] for x in links}
    names = sorted(options)
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*options.values())]
    if len(combos) > MAX_PURIFICATION_CHOICES:
        combos = [{n: options[n][0] for n in names}]
    return combos


def _choose(
    compiled: Sequence[tuple[dict[str, LinkPairs], FidelityEstimate]],
    fidelity_budget: float | None,
    max_seconds: float | None,
) -> int:
    """Index of the choice to plan: without a budget the first (fewest rounds); with one,
    the fewest raw pairs among those that meet it in time, else the best estimate in time."""
    if fidelity_budget is None or len(compiled) == 1:
        return 0

    def seconds(i: int) -> float:
        return max((u.generation_seconds for u in compiled[i][0].values()), default=0.0)

    def raw(i: int) -> float:
        return sum(u.raw_pairs for u in compiled[i][0].values())

    in_time = [i for i in range(len(compiled)) if max_seconds is None or seconds(i) <= max_seconds]
    meets = [i for i in in_time if compiled[i][1].value >= fidelity_budget]
    if meets:
        return min(meets, key=lambda i: (raw(i), -compiled[i][1].value, i))
    if in_time:
        return max(in_time, key=lambda i: (compiled[i][1].value, -i))
    return 0


def compile_teleport(
    circuit: QuantumCircuit,
    partition: Partition,
    nodes: Sequence[NodeSlot],
    links: Sequence[LinkSlot],
    *,
    teledata: bool = True,
    limits: UnrollLimits | None = None,
    purification: PurificationChoice | None = None,
    fidelity_budget: float | None = None,
    max_seconds: float | None = None,
) -> TeleportProgram:
    """The co-simulated program of `circuit` placed by `partition`; ValueError if impossible.

    `teledata=False` keeps every qubit on its node (cat sharing only), for comparison. Loops
    are unrolled within `limits` (the sanitizer's defaults) and `if`/`else` becomes
    conditional operations, their bits sent to the node that acts on them.

    Pairs are purified as `purification` says, or as the links' policies allow: the fewest
    rounds without a `fidelity_budget`; with one, the fewest raw pairs that meet it with
    every link's pairs of one shot heralded within `max_seconds` (see `_choose`).
    PurificationError (a ValueError) when purification is needed of pairs at fidelity <= 1/2.
    """
    missing = [q for q in range(circuit.num_qubits) if q not in partition.assignment]
    if missing:
        raise ValueError(f"the partition places no node for qubits {missing}")
    slots = {n.name: n for n in nodes}
    unknown = sorted(set(partition.assignment.values()) - set(slots))
    if unknown:
        raise ValueError(f"the partition uses unknown nodes {unknown}")
    names = {r.name for r in [*circuit.qregs, *circuit.cregs]}
    if {COMM_REGISTER, FEED_FORWARD_REGISTER} & names:
        raise ValueError(f"register names {COMM_REGISTER}/{FEED_FORWARD_REGISTER} are reserved")
    used = [slots[n] for n in partition.nodes]
    basis = program_basis(used)
    one_qubit = [g for g in basis if g not in TWO_QUBIT_GATES]
    owner = [partition.assignment[q] for q in range(circuit.num_qubits)]
    index = LinkIndex(links)
    try:
        logical = for_distribution(unroll(circuit, limits), one_qubit)
        units = _units(logical)
        builder = _schedule(
            units, owner, slots, index, partition.nodes, logical.num_clbits, teledata
        )
        program = builder.circuit(logical, basis)
    except TranspilerError as exc:
        raise ValueError(f"cannot write the circuit in the gates {basis}: {exc}") from exc
    per_node = Counter(builder.owner)
    over = {n: c for n, c in per_node.items() if c > slots[n].free_qubits}
    if over:
        detail = ", ".join(f"{n} needs {c} > {slots[n].free_qubits} free" for n, c in over.items())
        raise ValueError(f"the program does not fit its nodes: {detail}")

    link_by_name = {link.name: link for link in links}
    used_links = [link_by_name[name] for name in sorted(builder.pairs)]
    base = _work_factors(program, builder, slots, link_by_name)
    compiled: list[tuple[dict[str, LinkPairs], FidelityEstimate]] = []
    refused: PurificationError | None = None
    for choice in _choices(used_links, purification):
        try:
            uses = {
                x.name: link_pairs(x, builder.pairs[x.name], slots[x.a].noise, *choice[x.name])
                for x in used_links
            }
        except PurificationError as exc:
            refused = refused or exc
            continue
        compiled.append((uses, FidelityEstimate({**base, **_pair_factors(uses)})))
    if not compiled:
        assert refused is not None
        raise refused
    best = _choose(compiled, fidelity_budget, max_seconds)
    uses, estimate = compiled[best]
    if refused is not None and fidelity_budget is not None and estimate.value < fidelity_budget:
        raise refused  # the budget needs purification the link cannot give
    noise = _noise_description(builder, basis, used, link_by_name, uses)
    pairs = dict(sorted(builder.pairs.items()))
    return TeleportProgram(
        circuit=program,
        noise=noise.model_dump(mode="json", by_alias=True, exclude_none=True),
        qubit_owner=builder.owner,
        bell_pairs=pairs,
        expected_attempts={k: u.raw_pairs * u.attempts_per_pair for k, u in uses.items()},
        expected_generation_seconds={k: u.generation_seconds for k, u in uses.items()},
        estimated_fidelity=estimate.value,
        note=CO_SIMULATION_NOTE,
        fidelity=estimate,
        original_register_sizes=tuple(r.size for r in circuit.cregs),
        original_num_clbits=circuit.num_clbits,
        nonlocal_gates=sum(
            2 if u.kind == "zz" else 1
            for u in units
            if u.kind in ("cx", "cz", "zz") and owner[u.qubits[0]] != owner[u.qubits[1]]
        ),
        teledata=builder.teledata,
        conditional_messages=builder.conditional_messages,
        link_pairs=uses,
    )
