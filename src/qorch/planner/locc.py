"""Wire cuts with one-way classical communication (LOCC): the decomposition and its plan.

n wires from a sender node to a receiver node are cut jointly (Brenner, Piveteau, Sutter,
"Optimal wire cutting with classical communication", 2023). Let d = 2^n and U_0 .. U_d a
complete set of d + 1 mutually unbiased bases of the n wires (Clifford circuits; a complete
set of MUBs is a 2-design for measure-and-prepare). For basis k and shift r in {0..d-1}
the measure-and-prepare channel

    M_{k,r}(rho) = sum_i <i| U_k^+ rho U_k |i>  U_k |i xor r><i xor r| U_k^+

is one-way LOCC: the sender measures the wires in basis k, sends the outcome i, the receiver
prepares U_k |i xor r>. Averaged over the bases, M_{k,0} gives (rho + tr(rho) I) / (d + 1)
and the sum over r != 0 gives tr(rho) I - M_{k,0}, so

    id = sum_k [ d/(d+1) M_{k,0}  -  1/(d+1) sum_{r != 0} M_{k,r} ]

with sum |c| = (d + 1)(d/(d+1) + (d-1)/(d+1)) = 2d - 1 = 2^(n+1) - 1: 3 for one wire, 7
for two, against 4^n for wire cuts without communication. The sampling overhead is gamma^2.

Sampling: the shots are split evenly over the d + 1 bases; the receiver gives shift r to a
share |c_{k,r}| (d + 1) / gamma of the shots, i.e. d/(2d-1) for r = 0 and 1/(2d-1) for
each other r (stratified, in a random order), and the shot's value is gamma sign(c) times
the product of both sides' observable parities. The mean over a basis' shots, averaged over
the bases, is unbiased; its variance is at most gamma^2 / shots, and stratifying removes
what drawing the bases and shifts at random per shot would add. The knitting averages over
every pairing of sender and receiver shots with the same outcome (`basis_estimate`), which
can only lower the variance further.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.quantum_info import StabilizerState

from .circuits import translate, without_measurements
from .cutting import CUTTABLE, ONE_QUBIT, parse_observables

#: Wires cut jointly at most; the MUBs are tabulated up to this many.
MAX_WIRES = 2
#: Shots' outcomes per classical message between the two agents.
SHOTS_PER_MESSAGE = 1024
CUT_REGISTER = "cut"
OBSERVABLE_REGISTER = "obs"

# Stabilizer generators of each basis (Qiskit labels, qubit 0 rightmost): the 3 Pauli bases
# of one qubit; for two, the 15 non-identity Paulis split into 5 commuting triples.
_MUB_GENERATORS: dict[int, tuple[tuple[str, ...], ...]] = {
    1: (("Z",), ("X",), ("Y",)),
    2: (("ZI", "IZ"), ("XI", "IX"), ("YI", "IY"), ("XY", "YZ"), ("YX", "ZY")),
}


def gamma(wires: int) -> int:
    """Sampling cost per shot of cutting `wires` wires jointly with one-way LOCC."""
    return 2 ** (wires + 1) - 1


def lo_gamma(wires: int) -> int:
    """The same without classical communication (local operations only): 4^n."""
    return 4**wires


@cache
def basis_circuit(wires: int, k: int) -> QuantumCircuit:
    """U_k: the Clifford taking the computational basis of `wires` qubits to MUB k."""
    if wires not in _MUB_GENERATORS:
        raise ValueError(f"{wires} wire(s): LOCC cuts of 1 to {MAX_WIRES} wires are tabulated")
    state = StabilizerState.from_stabilizer_list(list(_MUB_GENERATORS[wires][k]))
    circuit = state.clifford.to_circuit()
    circuit.name = f"mub{k}"
    return circuit


def bases(wires: int) -> int:
    """How many bases: d + 1."""
    return 2**wires + 1


def coefficient(wires: int, r: int) -> float:
    """c_{k,r}, the same for every basis k."""
    d = 2**wires
    return d / (d + 1) if r == 0 else -1 / (d + 1)


def shift_probabilities(wires: int) -> np.ndarray:
    """Probability of drawing each shift r on a shot: |c_{k,r}| (d + 1) / gamma."""
    d = 2**wires
    weights = np.array([abs(coefficient(wires, r)) for r in range(d)]) * (d + 1)
    return weights / gamma(wires)


def sign(r: int) -> int:
    return 1 if r == 0 else -1


# -- finding the cut -------------------------------------------------------------------------


@dataclass(frozen=True)
class WireCut:
    """A circuit split at a point of its gate order: the sender runs the gates before, the
    receiver those after; `wires` are the qubits both touch (cut there)."""

    split: int
    sender_qubits: tuple[int, ...]  # the sender's, wires included (measured at the cut)
    receiver_qubits: tuple[int, ...]  # the receiver's, wires included (prepared at the cut)
    wires: tuple[int, ...]


def prepare(circuit: QuantumCircuit) -> QuantumCircuit:
    """Without final measurements and barriers, in the gates the cut is found over."""
    translated = translate(without_measurements(circuit), [*ONE_QUBIT, *CUTTABLE])
    out = translated.copy_empty_like()
    for inst in translated.data:
        if inst.operation.name != "barrier":
            out.append(inst)
    return out


def find_wire_cuts(circuit: QuantumCircuit) -> list[WireCut]:
    """Every split of the gate order into a sender and a receiver part whose only shared
    qubits are wires handed over (the sender never touches them again), fewest wires first,
    then the most even split. Idle qubits go to the sender. `split` counts the gates of
    `prepare(circuit)`."""
    prepared = prepare(circuit)
    ops = [[prepared.find_bit(q).index for q in inst.qubits] for inst in prepared.data]
    width = prepared.num_qubits
    cuts = []
    for split in range(1, len(ops)):
        before = {q for qs in ops[:split] for q in qs}
        after = {q for qs in ops[split:] for q in qs}
        wires = before & after
        if not wires or (not after - wires and not before - wires):
            continue
        idle = set(range(width)) - before - after
        if len(after) == width or len(before | idle) == width:
            continue  # one node holds every qubit: nothing is distributed
        cuts.append(
            WireCut(
                split,
                tuple(sorted(before | idle)),
                tuple(sorted(after)),
                tuple(sorted(wires)),
            )
        )
    # The same qubit sets at different splits are the same cut: keep the first.
    unique = {(c.sender_qubits, c.receiver_qubits): c for c in reversed(cuts)}
    return sorted(
        unique.values(),
        key=lambda c: (len(c.wires), abs(len(c.sender_qubits) - len(c.receiver_qubits)), c.split),
    )


# -- the subexperiments ----------------------------------------------------------------------


@dataclass(frozen=True)
class ObservableGroup:
    """Observables measured together: each qubit's basis letter, and which observables."""

    basis: tuple[str, ...]  # per qubit of the circuit, "I" where none is measured
    members: tuple[int, ...]


def group_observables(observables: Sequence[str], width: int) -> list[ObservableGroup]:
    """Qubit-wise commuting groups (Qiskit's grouping), every observable in one."""
    paulis = parse_observables(observables, width)
    groups: list[ObservableGroup] = []
    seen: set[int] = set()
    for group in paulis.group_qubit_wise_commuting():
        labels = {p.to_label().lstrip("+-i") for p in group}
        members = tuple(i for i, o in enumerate(observables) if o in labels and i not in seen)
        seen.update(members)
        basis = ["I"] * width
        for label in labels:
            for q, letter in enumerate(reversed(label)):
                if letter != "I":
                    basis[q] = letter
        groups.append(ObservableGroup(tuple(basis), members))
    return groups


def _rotate_and_measure(
    circuit: QuantumCircuit, qubits: Sequence[int], letters: Sequence[str], clbits: Sequence[int]
) -> None:
    for q, letter in zip(qubits, letters, strict=True):
        if letter == "Y":
            circuit.sdg(q)
        if letter in "XY":
            circuit.h(q)
    if qubits:
        circuit.measure(list(qubits), list(clbits))


def sender_circuit(
    prepared: QuantumCircuit, cut: WireCut, group: ObservableGroup, k: int
) -> QuantumCircuit:
    """The sender's part, then U_k^+ on the wires measured into `cut` (clbit j: wire j), and
    its other qubits in the group's basis into `obs`."""
    local = {q: i for i, q in enumerate(cut.sender_qubits)}
    kept = [q for q in cut.sender_qubits if q not in cut.wires]
    n = len(cut.wires)
    circuit = QuantumCircuit(
        QuantumRegister(len(local), "q"),
        ClassicalRegister(n, CUT_REGISTER),
        ClassicalRegister(max(len(kept), 1), OBSERVABLE_REGISTER),
        name=f"locc-send-{k}",
    )
    for inst in prepared.data[: cut.split]:
        circuit.append(inst.operation, [local[prepared.find_bit(q).index] for q in inst.qubits])
    wires = [local[w] for w in cut.wires]
    circuit.compose(basis_circuit(n, k).inverse(), qubits=wires, inplace=True)
    circuit.measure(wires, list(range(n)))
    _rotate_and_measure(
        circuit,
        [local[q] for q in kept],
        [group.basis[q] for q in kept],
        [n + j for j in range(len(kept))],
    )
    return circuit


def receiver_circuit(
    prepared: QuantumCircuit, cut: WireCut, group: ObservableGroup, k: int, p: int
) -> QuantumCircuit:
    """The receiver's part after preparing U_k |p> on the wires (wire j: bit j of p), all of
    its qubits measured in the group's basis into `obs`."""
    local = {q: i for i, q in enumerate(cut.receiver_qubits)}
    n = len(cut.wires)
    width = len(local)
    circuit = QuantumCircuit(
        QuantumRegister(width, "q"),
        ClassicalRegister(width, OBSERVABLE_REGISTER),
        name=f"locc-receive-{k}-{p}",
    )
    wires = [local[w] for w in cut.wires]
    for j, w in enumerate(wires):
        if p >> j & 1:
            circuit.x(w)
    circuit.compose(basis_circuit(n, k), qubits=wires, inplace=True)
    for inst in prepared.data[cut.split :]:
        circuit.append(inst.operation, [local[prepared.find_bit(q).index] for q in inst.qubits])
    _rotate_and_measure(
        circuit,
        list(range(width)),
        [group.basis[q] for q in cut.receiver_qubits],
        list(range(width)),
    )
    return circuit


@dataclass(frozen=True)
class Shots:
    """One subexperiment's shots, in the order the sender sent them: the sender's outcome
    (cut bits and observable bits), the receiver's draw r and outcome."""

    sender: Sequence[str]
    shifts: Sequence[int]
    receiver: Sequence[str]


def _bits(key: str) -> str:
    return key.replace(" ", "")


@dataclass(frozen=True)
class LoccCutPlan:
    """An LOCC wire cut between two nodes: per observable group and basis one subexperiment,
    its sender circuit and its receiver's d prepared variants."""

    sender: str
    receiver: str
    cut: WireCut
    groups: tuple[ObservableGroup, ...]
    observables: tuple[str, ...]
    sender_circuits: tuple[QuantumCircuit, ...]  # index g * (d+1) + k
    receiver_circuits: tuple[QuantumCircuit, ...]  # index (g * (d+1) + k) * d + p
    link: str = ""  # the link whose classical path carries the messages

    @property
    def wires(self) -> int:
        return len(self.cut.wires)

    @property
    def gamma(self) -> int:
        return gamma(self.wires)

    @property
    def sampling_overhead(self) -> float:
        return float(self.gamma**2)

    @property
    def num_subexperiments(self) -> int:
        return len(self.sender_circuits)

    def cut_bits(self, outcome: str) -> int:
        """The wires' outcome i from a sender bitstring (clbit j is bit j of i)."""
        flat = _bits(outcome)
        width = len(flat)
        return sum(1 << j for j in range(self.wires) if flat[width - 1 - j] == "1")

    def shots_per_subexperiment(self, shots: int) -> list[int]:
        """`shots` per group, split evenly over the bases (the first take the remainder)."""
        per_basis = bases(self.wires)
        base, extra = divmod(shots, per_basis)
        if base == 0:
            raise ValueError(f"{shots} shots cannot cover the {per_basis} bases of the cut")
        return [base + (1 if k < extra else 0) for _ in self.groups for k in range(per_basis)]

    def side_values(self, observable: int, sub: Shots) -> tuple[np.ndarray, np.ndarray]:
        """Shot by shot, the sender's parity of `observable` (+/-1) and the receiver's times
        gamma sign(c) (+/-gamma)."""
        label = self.observables[observable]
        kept = [q for q in self.cut.sender_qubits if q not in self.cut.wires]
        # The sender's `obs` register follows its cut bits: obs bit j is clbit wires + j.
        s_clbits = [self.wires + j for j, q in enumerate(kept) if label[-1 - q] != "I"]
        r_clbits = [j for j, q in enumerate(self.cut.receiver_qubits) if label[-1 - q] != "I"]
        sent = np.empty(len(sub.sender))
        received = np.empty(len(sub.sender))
        for t, (s, shift, r) in enumerate(zip(sub.sender, sub.shifts, sub.receiver, strict=True)):
            s_bits, r_bits = _bits(s), _bits(r)
            sent[t] = (-1) ** sum(s_bits[len(s_bits) - 1 - c] == "1" for c in s_clbits)
            parity = sum(r_bits[len(r_bits) - 1 - c] == "1" for c in r_clbits)
            received[t] = self.gamma * sign(shift) * (-1) ** parity
        return sent, received

    def shot_values(self, observable: int, sub: Shots) -> np.ndarray:
        """gamma sign(c) times both sides' parities of `observable`, shot by shot: the plain
        quasi-probability estimator's values."""
        sent, received = self.side_values(observable, sub)
        return sent * received

    def basis_estimate(self, observable: int, sub: Shots) -> tuple[float, float]:
        """One basis' estimate of `observable` and its variance.

        Given the wires' outcome i, the two sides are independent (the sender's qubits are
        left in a state fixed by i, the receiver's depends only on i and its own shift), so
        within the shots of each outcome any pairing of sender and receiver shots is as good
        as the one that happened. Averaging over all of them, the product of the two sides'
        means per outcome, weighted by the outcome's share of the shots, is unbiased and
        never noisier than pairing shot by shot. Its variance: per outcome the exact variance
        of a product of independent means, plus what the outcomes' random shares add.
        """
        sent, received = self.side_values(observable, sub)
        n = len(sent)
        outcomes = np.array([self.cut_bits(x) for x in sub.sender])
        parts: list[tuple[float, float]] = []
        conditional = 0.0
        for i in np.unique(outcomes):
            mask = outcomes == i
            k = int(mask.sum())
            s, r = sent[mask], received[mask]
            ms, mr = float(s.mean()), float(r.mean())
            vs = float(s.var(ddof=1)) / k if k > 1 else 1.0
            # The shifts are spread in proportion over a message, not within one outcome.
            vr = float(r.var(ddof=1)) / k if k > 1 else float(self.gamma**2)
            product = ms * mr
            conditional += (k / n) ** 2 * ((ms**2 + vs) * (mr**2 + vr) - product**2)
            parts.append((k / n, product))
        value = sum(w * p for w, p in parts)
        shares = max(sum(w * p * p for w, p in parts) - value**2, 0.0) / n
        return value, conditional + shares

    def reconstruct(self, shots: Sequence[Shots]) -> tuple[list[float], list[float]]:
        """Expectation values of `observables`, in order, and their standard errors, from
        each subexperiment's shots: per basis `basis_estimate`, averaged over the bases
        (each carries weight 1/(d+1))."""
        if len(shots) != self.num_subexperiments:
            raise ValueError(
                f"{len(shots)} subexperiments returned, the plan has {self.num_subexperiments}"
            )
        per_basis = bases(self.wires)
        values = [0.0] * len(self.observables)
        variances = [0.0] * len(self.observables)
        for g, group in enumerate(self.groups):
            for k in range(per_basis):
                sub = shots[g * per_basis + k]
                n = len(sub.sender)
                if n == 0 or len(sub.shifts) != n or len(sub.receiver) != n:
                    raise ValueError(
                        f"subexperiment {g * per_basis + k}: {n} sender shots,"
                        f" {len(sub.shifts)} draws, {len(sub.receiver)} receiver shots"
                    )
                for o in group.members:
                    value, variance = self.basis_estimate(o, sub)
                    values[o] += value / per_basis
                    variances[o] += variance / per_basis**2
        return values, [math.sqrt(v) for v in variances]


def plan_locc_cut(
    circuit: QuantumCircuit,
    observables: Sequence[str],
    sender: str,
    receiver: str,
    cut: WireCut,
    link: str = "",
) -> LoccCutPlan:
    """The subexperiments of `cut` from `sender` to `receiver` (messages over `link`)."""
    prepared = prepare(circuit)
    if len(cut.wires) > MAX_WIRES:
        raise ValueError(
            f"the cut needs {len(cut.wires)} wires; LOCC cuts of up to {MAX_WIRES} are supported"
        )
    groups = tuple(group_observables(observables, prepared.num_qubits))
    n = len(cut.wires)
    d = 2**n
    senders: list[QuantumCircuit] = []
    receivers: list[QuantumCircuit] = []
    for group in groups:
        for k in range(bases(n)):
            senders.append(sender_circuit(prepared, cut, group, k))
            receivers.extend(receiver_circuit(prepared, cut, group, k, p) for p in range(d))
    return LoccCutPlan(
        sender, receiver, cut, groups, tuple(observables), tuple(senders), tuple(receivers), link
    )
