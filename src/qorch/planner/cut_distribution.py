"""Output distributions of cut circuits: quasi-probabilities knitted from the subexperiments.

The projector onto an outcome x of the measured qubits is a product over nodes of projectors
onto each node's part x_A, and a quasi-probability decomposition (QPD) of the cut gates holds
for any product observable. So, as for a Pauli observable,

    p(x) = sum_i c_i prod_A q_{A,i}(x_A),   q_{A,i}(x_A) = E[(-1)^(QPD bits) 1{node A reads x_A}],

with c_i the coefficients of the QPD terms and q_{A,i} estimated from the counts of term i's
subexperiment on node A. Measuring every output qubit in Z gives all the indicators at once:
the subexperiments are those of the observable Z on each measured qubit (`plan_cut` with
that one observable), and their `observable_measurements` bits are the node's outcome.
The sum of Kronecker products is CutQC's reconstruction for wire cuts, with the QPD's terms
in place of CutQC's edge bases.

Marginals and conditionals are linear in the indicator too: merging a node's outcomes that
agree on the kept bits (and dropping those that disagree with fixed bits) before knitting
gives the marginal (or the joint probability with the fixed bits) without ever forming the
full distribution. Top-k outcomes use this for CutQC's dynamic definition: the most probable
bin (outcomes sharing their first bits) is expanded by the next bits, best first, until k
outcomes are resolved; each expansion holds at most 2^chunk numbers.

Uncertainty: per outcome, the standard error of its quasi-probability from shot noise,
propagated exactly as for expectation values (`cutting` module): each q_{A,i}(x_A) is the
mean of a +/-1-or-0 variable whose square is the indicator, so its variance of the mean is
(f - q^2) / (n - 1) with f the fraction of shots reading x_A; a term's variance is
prod(q^2 + v) - prod(q^2) over nodes, and terms add with c_i^2.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit

from qorch.api.distributed_job import OutputSpec

from .circuits import measured_clbits
from .cutting import OBSERVABLE_REGISTER, QPD_REGISTER, CutInfeasible, CutPlan, plan_cut
from .partition import Partition

#: Output bits whose full distribution a cut job may ask for (QORCH_MAX_DISTRIBUTION_BITS).
DEFAULT_MAX_DISTRIBUTION_BITS = 24
#: Entries each knitting step multiplies at once (32 MiB of float64).
_KNIT_CHUNK = 1 << 22


class OutputTooWide(CutInfeasible):
    """The full distribution asked for has more output bits than the policy allows."""


@dataclass(frozen=True)
class OutputRequest:
    """What a distribution job returns: the full distribution (no marginals, no top_k),
    marginals over lists of classical bits, and/or the top_k most probable outcomes."""

    marginals: tuple[tuple[int, ...], ...] = ()
    top_k: int | None = None

    @property
    def full(self) -> bool:
        return not self.marginals and self.top_k is None


def output_request(spec: OutputSpec | None) -> OutputRequest | None:
    """The request of a job's `spec.output`; None when it has none."""
    if spec is None:
        return None
    return OutputRequest(tuple(tuple(m) for m in spec.marginals or ()), spec.top_k)


@dataclass(frozen=True)
class DistributionPlan:
    """A cut whose subexperiments measure every output qubit in Z, and how clbits read them.

    `qubits` are the measured qubits, ascending: bit j of an outcome index is qubits[j].
    `clbit_qubit` maps each measured clbit to its qubit; other clbits read 0.
    """

    knitting: CutPlan
    qubits: tuple[int, ...]
    clbit_qubit: Mapping[int, int]
    num_clbits: int
    node_qubits: Mapping[str, tuple[int, ...]]  # measured qubits of each node, ascending


def output_qubits(circuit: QuantumCircuit) -> tuple[dict[int, int], tuple[int, ...]]:
    """clbit -> qubit of the measurements, and the measured qubits ascending."""
    clbits = measured_clbits(circuit)
    return clbits, tuple(sorted(set(clbits.values())))


def check_request(
    circuit: QuantumCircuit, request: OutputRequest, max_bits: int
) -> tuple[dict[int, int], tuple[int, ...]]:
    """The measurements, when the request can be held; OutputTooWide or ValueError saying
    what to change otherwise."""
    clbits, qubits = output_qubits(circuit)
    if not qubits:
        raise CutInfeasible("the circuit measures nothing: there is no distribution to return")
    for bits in request.marginals:
        outside = [b for b in bits if not 0 <= b < circuit.num_clbits]
        if outside:
            raise CutInfeasible(
                f"spec.output.marginals names classical bits {outside}; the circuit has"
                f" {circuit.num_clbits} (0..{circuit.num_clbits - 1})"
            )
        if len(bits) > max_bits:
            raise OutputTooWide(
                f"a marginal over {len(bits)} bits is wider than the limit of {max_bits}"
                " output bits (QORCH_MAX_DISTRIBUTION_BITS): split it into narrower marginals"
            )
    if request.full and len(qubits) > max_bits:
        raise OutputTooWide(
            f"the full output distribution has {len(qubits)} bits, more than the limit of"
            f" {max_bits} (QORCH_MAX_DISTRIBUTION_BITS; 2^{len(qubits)} outcomes are too many"
            " to hold): ask for marginals on named bits (spec.output.marginals: [[0, 1, 2]])"
            " or the most probable outcomes (spec.output.topK: 10)"
        )
    return clbits, qubits


def plan_cut_distribution(
    circuit: QuantumCircuit,
    partition: Partition,
    max_sampling_overhead: float,
    request: OutputRequest,
    max_bits: int = DEFAULT_MAX_DISTRIBUTION_BITS,
) -> DistributionPlan:
    """Cut `circuit` along `partition` so that its output distribution can be knitted back.

    Raises OutputTooWide when the request cannot be held, CutInfeasible (or ValueError) when
    the circuit cannot be cut as asked."""
    clbits, qubits = check_request(circuit, request, max_bits)
    measured = set(qubits)
    observable = "".join("Z" if q in measured else "I" for q in reversed(range(circuit.num_qubits)))
    knitting = plan_cut(circuit, [observable], partition, max_sampling_overhead)
    node_qubits = {
        node: tuple(q for q in sorted(partition.assignment) if partition.assignment[q] == node)
        for node in knitting.subexperiments
    }
    return DistributionPlan(
        knitting=knitting,
        qubits=qubits,
        clbit_qubit=clbits,
        num_clbits=circuit.num_clbits,
        node_qubits={n: tuple(q for q in qs if q in measured) for n, qs in node_qubits.items()},
    )


@dataclass(frozen=True)
class NodeTerms:
    """One node's subexperiments reduced to what knitting needs.

    `outcomes[u]` is a distinct outcome of the node's measured qubits (bit j is the node's
    j-th measured qubit); `quasi[i, u]` the mean of (-1)^(QPD bits) 1{outcome u} in term i,
    `frequency[i, u]` the fraction of its shots that read u, `shots[i]` its shots.
    """

    qubits: tuple[int, ...]
    outcomes: np.ndarray
    quasi: np.ndarray
    frequency: np.ndarray
    shots: np.ndarray


def reduce_node(
    qubits: Sequence[int],
    circuits: Sequence[QuantumCircuit],
    counts: Sequence[Mapping[str, int]],
) -> NodeTerms:
    """`counts[i]` of subexperiment `circuits[i]` (term i), reduced (see NodeTerms)."""
    if len(counts) != len(circuits):
        raise ValueError(f"{len(counts)} results for {len(circuits)} subexperiments")
    index: dict[int, int] = {}
    rows: list[dict[int, tuple[int, int]]] = []
    shots = np.zeros(len(circuits))
    for i, (circuit, got) in enumerate(zip(circuits, counts, strict=True)):
        registers = {reg.name: [circuit.find_bit(b).index for b in reg] for reg in circuit.cregs}
        # With no output qubit on the node, the cutter still measures one: not an output.
        obs_bits = registers.get(OBSERVABLE_REGISTER, [])[: len(qubits)]
        qpd_bits = registers.get(QPD_REGISTER, [])
        width = circuit.num_clbits
        row: dict[int, tuple[int, int]] = {}
        total = 0
        for key, hits in got.items():
            flat = key.replace(" ", "")
            if len(flat) != width:
                raise ValueError(f"bitstring {key!r} has {len(flat)} bits, the circuit {width}")
            sign = -1 if sum(flat[width - 1 - c] == "1" for c in qpd_bits) % 2 else 1
            outcome = sum(1 << j for j, c in enumerate(obs_bits) if flat[width - 1 - c] == "1")
            signed, seen = row.get(outcome, (0, 0))
            row[outcome] = (signed + sign * int(hits), seen + int(hits))
            index.setdefault(outcome, len(index))
            total += int(hits)
        if total == 0:
            raise ValueError("a subexperiment has no shots")
        shots[i] = total
        rows.append(row)
    quasi = np.zeros((len(circuits), len(index)))
    frequency = np.zeros((len(circuits), len(index)))
    for i, row in enumerate(rows):
        for outcome, (signed, seen) in row.items():
            quasi[i, index[outcome]] = signed / shots[i]
            frequency[i, index[outcome]] = seen / shots[i]
    outcomes = np.fromiter(index, dtype=np.int64, count=len(index))
    return NodeTerms(tuple(qubits), outcomes, quasi, frequency, shots)


def reduce_results(
    plan: DistributionPlan, results: Mapping[str, Sequence[Mapping[str, int]]]
) -> list[NodeTerms]:
    """Every node's reduced subexperiments, from `results[node][k]`, the counts of
    `plan.knitting.subexperiments[node][k]`."""
    subexperiments = plan.knitting.subexperiments
    if set(results) != set(subexperiments):
        raise ValueError(
            f"results cover nodes {sorted(results)}, the plan has {sorted(subexperiments)}"
        )
    return [
        reduce_node(plan.node_qubits[node], subexperiments[node], results[node])
        for node in sorted(subexperiments)
    ]


@dataclass(frozen=True)
class Quasi:
    """Quasi-probabilities over outcomes of `qubits` (bit j of an outcome is qubits[j]), with
    the variance of each from shot noise; only outcomes some term observed are listed."""

    qubits: tuple[int, ...]
    outcomes: np.ndarray
    values: np.ndarray
    variances: np.ndarray

    @property
    def standard_errors(self) -> np.ndarray:
        return np.sqrt(self.variances)


def _project(
    node: NodeTerms, keep: Sequence[int], fixed: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The node's terms over the outcomes of its qubits in `keep` (bit j of an outcome is
    the j-th of `keep`, whatever node it is on), summed over its other qubits, with its
    qubits in `fixed` held at their values: (outcomes, quasi, frequency)."""
    agree = np.ones(len(node.outcomes), dtype=bool)
    projected = np.zeros(len(node.outcomes), dtype=np.int64)
    position = {q: j for j, q in enumerate(keep)}
    for j, q in enumerate(node.qubits):
        bit = (node.outcomes >> j) & 1
        if q in fixed:
            agree &= bit == fixed[q]
        if q in position:
            projected |= bit << position[q]
    distinct, inverse = np.unique(projected[agree], return_inverse=True)
    quasi = np.zeros((len(node.shots), len(distinct)))
    frequency = np.zeros_like(quasi)
    np.add.at(quasi.T, inverse, node.quasi[:, agree].T)
    np.add.at(frequency.T, inverse, node.frequency[:, agree].T)
    return distinct, quasi, frequency


def _knit(coefficients: np.ndarray, factors: Sequence[np.ndarray]) -> np.ndarray:
    """sum_i coefficients[i] kron_A factors[A][i], flattened with the last factor fastest,
    built a few terms at a time so that no step holds more than _KNIT_CHUNK per term block."""
    terms = len(coefficients)
    head = math.prod(f.shape[1] for f in factors[:-1])
    out = np.zeros(head * factors[-1].shape[1])
    step = max(1, _KNIT_CHUNK // max(head, 1))
    for start in range(0, terms, step):
        block = slice(start, start + step)
        left = coefficients[block, None]
        for factor in factors[:-1]:
            left = (left[:, :, None] * factor[block, None, :]).reshape(left.shape[0], -1)
        out += (left.T @ factors[-1][block]).reshape(-1)
    return out


def knit(
    nodes: Sequence[NodeTerms],
    coefficients: Sequence[float],
    qubits: Sequence[int],
    fixed: Mapping[int, int] | None = None,
) -> Quasi:
    """Quasi-probabilities of the outcomes of `qubits` (jointly with `fixed` qubits at their
    values, when given), and their variances. Holds at most the product over nodes of the
    distinct outcomes they observed on `qubits`, never more than 2^len(qubits)."""
    held = fixed or {}
    c = np.asarray(coefficients, dtype=float)
    projected = [_project(node, qubits, held) for node in nodes]
    if any(len(outcomes) == 0 for outcomes, _, _ in projected):
        empty = np.zeros(0)
        return Quasi(tuple(qubits), np.zeros(0, dtype=np.int64), empty, empty)
    values = _knit(c, [q for _, q, _ in projected])
    variances = []
    for node, (_, q, f) in zip(nodes, projected, strict=True):
        v = np.maximum(f - q**2, 0.0) / np.maximum(node.shots - 1, 1)[:, None]
        variances.append(q**2 + v)
    second = _knit(c**2, variances)
    first = _knit(c**2, [q**2 for _, q, _ in projected])
    outcomes = np.zeros(1, dtype=np.int64)
    for distinct, _, _ in projected:  # nodes own disjoint qubits: outcomes add
        outcomes = (outcomes[:, None] | distinct[None, :]).reshape(-1)
    keep = (values != 0) | (second != 0)
    return Quasi(tuple(qubits), outcomes[keep], values[keep], np.maximum(second - first, 0.0)[keep])


def nearest_probabilities(values: np.ndarray) -> np.ndarray:
    """The probability distribution nearest (in L2) to quasi-probabilities over the same
    outcomes: Smolin, Gambetta and Smith's algorithm, as Qiskit's
    `QuasiDistribution.nearest_probability_distribution`, vectorised."""
    n = len(values)
    if n == 0:
        return values.copy()
    order = np.argsort(values, kind="stable")
    ascending = values[order]
    before = np.concatenate([[0.0], np.cumsum(ascending)[:-1]])
    # Walking up from the most negative, an entry is dropped while it stays negative after
    # its share of what was dropped before it; the first one that does not ends the walk.
    dropped = ascending + before / (n - np.arange(n)) < 0
    r = int(np.argmin(dropped)) if not dropped.all() else n
    out = np.zeros(n)
    if r < n:
        out[order[r:]] = ascending[r:] + before[r] / (n - r)
    return out


def top_outcomes(
    nodes: Sequence[NodeTerms],
    coefficients: Sequence[float],
    qubits: Sequence[int],
    k: int,
    chunk: int,
    max_expansions: int = 10_000,
) -> Quasi:
    """The k most probable outcomes of `qubits` by CutQC's dynamic definition: bins fix the
    first bits of `qubits` and merge the rest; the most probable bin is expanded by the next
    `chunk` bits (its 2^chunk sub-bins knitted jointly with the bits it fixes), keeping its k
    most probable sub-bins, until k bins are fully resolved or `max_expansions` ran out."""
    width = len(qubits)
    # Heap of (-probability, tie, resolved bits, outcome so far, variance).
    heap: list[tuple[float, int, int, int, float]] = [(-1.0, 0, 0, 0, 0.0)]
    tie = 1
    found: list[tuple[int, float, float]] = []
    expansions = 0
    while heap and len(found) < k and expansions < max_expansions:
        negative, _, depth, prefix, variance = heapq.heappop(heap)
        if depth == width:
            found.append((prefix, -negative, variance))
            continue
        expansions += 1
        fixed = {qubits[j]: (prefix >> j) & 1 for j in range(depth)}
        active = list(qubits[depth : depth + chunk])
        sub = knit(nodes, coefficients, active, fixed)
        for j in np.argsort(-sub.values, kind="stable")[:k]:
            outcome = prefix | (int(sub.outcomes[j]) << depth)
            entry = (-float(sub.values[j]), tie, depth + len(active), outcome)
            heapq.heappush(heap, (*entry, float(sub.variances[j])))
            tie += 1
    return Quasi(
        tuple(qubits),
        np.array([o for o, _, _ in found], dtype=np.int64),
        np.array([p for _, p, _ in found]),
        np.array([v for _, _, v in found]),
    )


def bitstrings(
    outcomes: np.ndarray, qubits: Sequence[int], bits: Sequence[int], clbit_qubit: Mapping[int, int]
) -> list[str]:
    """Keys over the classical `bits` (the first rightmost) of outcomes over `qubits`: a
    bit reads its qubit's value, or 0 when no measurement writes it."""
    position = {q: j for j, q in enumerate(qubits)}
    columns = []
    for clbit in reversed(bits):
        q = clbit_qubit.get(clbit)
        if q is None or q not in position:
            columns.append(np.zeros(len(outcomes), dtype=np.uint8))
        else:
            columns.append(((outcomes >> position[q]) & 1).astype(np.uint8))
    if not columns:
        return [""] * len(outcomes)
    text = (np.stack(columns, axis=1) + ord("0")).astype(np.uint8).tobytes().decode("ascii")
    width = len(bits)
    return [text[i : i + width] for i in range(0, len(text), width)]


def marginal_qubits(bits: Sequence[int], clbit_qubit: Mapping[int, int]) -> tuple[int, ...]:
    """The distinct measured qubits that classical `bits` read, ascending."""
    return tuple(sorted({clbit_qubit[b] for b in bits if b in clbit_qubit}))
