"""Verify measured counts against an exact classical simulation where that is tractable.

Two simulations: a statevector up to MAX_STATEVECTOR_QUBITS, and, wider, a stabilizer tableau
for circuits of Clifford gates (`clifford_of`). Either needs every measurement to come last.
A dynamic circuit (mid-circuit measurement, reset, feed-forward, bounded loops) is simulated
exactly by deferred measurement (`dynamic_probabilities`) up to MAX_DEFERRED_QUBITS.

The statevector's outcome probabilities come from Aer (`save_probabilities`, 4-10x faster
than `quantum_info.Statevector` at 20-24 qubits) as one array; the counts are turned into
indices of it, so no step builds 2^n strings: the Hellinger fidelity needs the exact
probability of the outcomes observed only, and the number of possible outcomes.

Measuring the qubits M of a stabilizer state in Z gives each outcome y the probability
<Pi_y> = 2^-|M| sum over a in F2^M of (-1)^(a.y) <Z^a>, and <Z^a> is +/-1 when +/-Z^a (Z on
the qubits a picks, identity elsewhere, unmeasured qubits included) is in the stabilizer
group, 0 otherwise. Those a form a subspace of dimension r whose signs are a character of it,
so the sum is 2^r on the solutions of a.y = sign bit for r generators and 0 elsewhere: the
outcomes are uniform over an affine subspace of dimension k = |M| - r. The generators come
from Gaussian elimination of the stabilizer tableau on its X columns and on the Z columns of
the unmeasured qubits, with the signs carried through each row product.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Gate
from qiskit.circuit.library import SwapGate, XGate
from qiskit.quantum_info import Clifford

from qorch.api.distributed_job import Verification
from qorch.memory_limit import EXACT_BYTES_PER_OUTCOME, simulating_async, widest_fitting
from qorch.planner.cutting import clifford_of, exact_expectations
from qorch.planner.unroll import Test, predicated_steps, unroll
from qorch.qpu.aer import bounded_simulator
from qorch.qpu.simulation_process import SimulationProcess

#: Widest statevector verified: 2^26 amplitudes are 1 GiB, their probabilities 0.5 GiB more,
#: and as much again while they travel from the simulation process and arrive
#: (EXACT_BYTES_PER_OUTCOME); narrower where the memory limit (a pod's) would not hold that.
MAX_STATEVECTOR_QUBITS = widest_fitting(EXACT_BYTES_PER_OUTCOME, 26)
#: Widest circuit whose exact expectation values (quantum_info's Statevector, 8 s at 20 qubits
#: and slower by 2x per qubit) verify a cut job's reconstruction.
MAX_EXPECTATION_QUBITS = 20
#: Probabilities below this count as impossible outcomes (rounding of the simulation).
_IMPOSSIBLE = 1e-12
VERIFY_SLACK = 0.05
#: `AffineDistribution.as_dict` lists every outcome of the support; beyond this it refuses.
MAX_LISTED_OUTCOMES = 1 << 20

N = TypeVar("N", int, float)


def _final_measurements(circuit: QuantumCircuit) -> dict[int, int] | None:
    """clbit -> qubit for a circuit whose only measurements come last; None otherwise."""
    measured: dict[int, int] = {}
    done: set[int] = set()
    for inst in circuit.data:
        name = inst.operation.name
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if name == "measure":
            measured[circuit.find_bit(inst.clbits[0]).index] = qubits[0]
            done.add(qubits[0])
        elif name == "barrier":
            continue
        elif name in ("reset", "delay") or inst.operation.name in (
            "if_else",
            "while_loop",
            "for_loop",
            "switch_case",
        ):
            return None
        elif done.intersection(qubits):
            return None  # a gate after a measurement: mid-circuit measurement
    return measured


@dataclass(frozen=True, eq=False)
class ExactProbabilities:
    """The outcome probabilities of the measured qubits as one array, and how clbits read them:
    clbit c holds bit `clbit_index[c]` of the array index (qubits[j] is bit j), or 0 where that
    is -1 (never measured)."""

    num_clbits: int
    probabilities: np.ndarray
    clbit_index: np.ndarray

    def of(self, keys: Sequence[str]) -> np.ndarray:
        """The exact probability of each bitstring (over all clbits, clbit 0 rightmost)."""
        out = np.zeros(len(keys))
        width = self.num_clbits
        shaped = [i for i, key in enumerate(keys) if len(key) == width]
        if not shaped:
            return out
        text = "".join(keys[i] for i in shaped).encode("ascii", errors="replace")
        bits = (np.frombuffer(text, dtype=np.uint8).reshape(len(shaped), width) - ord("0"))[
            :, ::-1
        ]  # column c = clbit c; characters other than 0/1 land above 1 (uint8 wraps)
        ok = (bits <= 1).all(axis=1)
        unmeasured = self.clbit_index < 0
        ok &= ~bits[:, unmeasured].any(axis=1)
        positions = self.clbit_index[~unmeasured]
        read = bits[:, ~unmeasured].astype(np.int64)
        index = np.zeros(len(shaped), dtype=np.int64)
        seen: set[int] = set()
        for column, position in enumerate(positions.tolist()):
            if position in seen:  # two clbits that read one qubit must agree
                ok &= ((index >> position) & 1) == read[:, column]
            index |= read[:, column] << position
            seen.add(position)
        out[shaped] = np.where(ok, self.probabilities[index], 0.0)
        return out

    @property
    def support(self) -> int:
        """How many outcomes are possible."""
        return int(np.count_nonzero(self.probabilities > _IMPOSSIBLE))


def statevector_bytes(num_qubits: int) -> int:
    """Memory the exact simulation of that many qubits takes: amplitudes and probabilities."""
    return 24 << num_qubits


def _statevector_measured(circuit: QuantumCircuit) -> dict[int, int] | None:
    """clbit -> qubit of a circuit whose exact output the statevector gives: something
    measured, every measurement last, at most MAX_STATEVECTOR_QUBITS qubits; else None."""
    measured = _final_measurements(circuit)
    if not measured or circuit.num_qubits > MAX_STATEVECTOR_QUBITS:
        return None
    return measured


def exact_output_bytes(circuit: QuantumCircuit) -> int:
    """What `exact_probabilities(circuit)` returns takes (a double per outcome of the
    measured qubits); 0 where it returns none."""
    measured = _statevector_measured(circuit)
    return 0 if measured is None else 8 << len(set(measured.values()))


def exact_probabilities(circuit: QuantumCircuit) -> ExactProbabilities | None:
    """Exact outcome probabilities of a circuit whose measurements all come last, up to
    MAX_STATEVECTOR_QUBITS qubits; None for any other circuit."""
    measured = _statevector_measured(circuit)
    if measured is None:
        return None
    qubits = sorted(set(measured.values()))  # one qubit may be measured into several clbits
    position = {q: i for i, q in enumerate(qubits)}
    unitary = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name not in ("measure", "barrier"):
            unitary._append(inst)
    unitary.save_probabilities(qubits)
    simulator = bounded_simulator(method="statevector")
    try:
        result = simulator.run(unitary).result()
    except Exception:  # gates Aer does not know by name (custom definitions): expand them
        result = simulator.run(transpile(unitary, simulator, optimization_level=0)).result()
    probabilities = np.asarray(result.data()["probabilities"], dtype=float)
    clbit_index = np.array(
        [position[measured[c]] if c in measured else -1 for c in range(circuit.num_clbits)],
        dtype=np.int64,
    )
    return ExactProbabilities(circuit.num_clbits, probabilities, clbit_index)


def from_ideal(
    circuit: QuantumCircuit, bits: Sequence[int], probabilities: np.ndarray
) -> ExactProbabilities | None:
    """The planner's exact output of `circuit` (`planner.prediction.IdealOutput`: bit j of an
    index is clbit bits[j]) as `exact_probabilities` would compute it, so that verification
    need not simulate the circuit again; None where the two do not read the circuit alike
    (a qubit measured into several clbits, measurements before the end)."""
    measured = _final_measurements(circuit)
    if not measured or sorted(measured) != list(bits):
        return None
    if len(set(measured.values())) != len(measured) or len(probabilities) != 1 << len(bits):
        return None
    qubits = sorted(measured.values())
    k = len(qubits)
    planner_bit = {measured[c]: j for j, c in enumerate(bits)}  # qubit -> bit of the index
    # Axis a of a [2]*k tensor holds bit k-1-a; bit i of ours is qubits[i].
    axes = [k - 1 - planner_bit[qubits[k - 1 - a]] for a in range(k)]
    ours = probabilities.reshape([2] * k).transpose(axes).reshape(-1)
    position = {q: i for i, q in enumerate(qubits)}
    clbit_index = np.array(
        [position[measured[c]] if c in measured else -1 for c in range(circuit.num_clbits)],
        dtype=np.int64,
    )
    return ExactProbabilities(circuit.num_clbits, np.ascontiguousarray(ours), clbit_index)


#: From this width the exact simulation starts when the programs are sent, beside them, and
#: runs in a simulation process: Aer holds the interpreter lock while it runs (a second at
#: 22 qubits, minutes at 26), which in a thread would stall the operator's event loop.
EXACT_IN_PROCESS_QUBITS = 23


async def exact_beside(
    circuit: QuantumCircuit, process: SimulationProcess
) -> ExactProbabilities | None:
    """`exact_probabilities` of a circuit, started while its programs run: in a thread, or
    in `process` from EXACT_IN_PROCESS_QUBITS qubits."""
    if _statevector_measured(circuit) is None:
        return None  # not a statevector verification: nothing to start early
    async with simulating_async(EXACT_BYTES_PER_OUTCOME << circuit.num_qubits):
        if circuit.num_qubits >= EXACT_IN_PROCESS_QUBITS:
            return await process.call(exact_probabilities, circuit)
        return await asyncio.to_thread(exact_probabilities, circuit)


def exact_distribution(circuit: QuantumCircuit) -> dict[str, float] | None:
    """Exact outcome probabilities over all clbits (clbit 0 rightmost), when tractable, as a
    dictionary: for small circuits and tests; verification reads the array."""
    exact = exact_probabilities(circuit)
    if exact is None:
        return None
    out: dict[str, float] = {}
    for index in np.flatnonzero(exact.probabilities > _IMPOSSIBLE):
        bits = ["0"] * circuit.num_clbits
        for clbit, position in enumerate(exact.clbit_index):
            if position >= 0:
                bits[circuit.num_clbits - 1 - clbit] = str((int(index) >> int(position)) & 1)
        key = "".join(bits)
        out[key] = out.get(key, 0.0) + float(exact.probabilities[index])
    return out


@dataclass(frozen=True, eq=False)
class AffineDistribution:
    """The uniform distribution over the measured qubits' bits y (in the order of `qubits`)
    that solve `constraints` y = `signs` mod 2, written into clbits: clbit c holds
    y[`clbit_index`[c]], or 0 where that is -1 (never measured).

    The rows of `constraints` are independent, so the support has 2^`dimension` outcomes.
    """

    num_clbits: int
    qubits: tuple[int, ...]
    clbit_index: np.ndarray
    constraints: np.ndarray
    signs: np.ndarray

    @property
    def dimension(self) -> int:
        return len(self.qubits) - len(self.constraints)

    @cached_property
    def _echelon(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(constraints, signs, pivot columns) in reduced row echelon form. Only listing
        outcomes needs it, and it is the costly part on thousands of qubits."""
        return _row_echelon(self.constraints, self.signs)

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """Whether each bitstring (over all clbits, clbit 0 rightmost) is in the support."""
        inside = np.zeros(len(keys), dtype=bool)
        width = self.num_clbits
        shaped = [i for i, key in enumerate(keys) if len(key) == width]
        # Bounds the (keys x clbits) and (keys x constraints) arrays to ~4M entries.
        chunk = max(1, (1 << 22) // max(width, len(self.constraints), 1))
        unmeasured = self.clbit_index < 0
        reads = self.clbit_index[~unmeasured]
        for start in range(0, len(shaped), chunk):
            rows = shaped[start : start + chunk]
            text = "".join(keys[i] for i in rows).encode("ascii", errors="replace")
            chars = np.frombuffer(text, dtype=np.uint8).reshape(len(rows), width)
            bits = (chars - ord("0"))[:, ::-1]  # column c = clbit c
            ok = (bits <= 1).all(axis=1)  # uint8: characters below "0" wrap above 1
            ok &= ~bits[:, unmeasured].any(axis=1)
            y = np.zeros((len(rows), len(self.qubits)), dtype=np.uint8)
            y[:, reads] = bits[:, ~unmeasured]
            # Every clbit that reads a qubit must agree with the value y took for it.
            ok &= (bits[:, ~unmeasured] == y[:, reads]).all(axis=1)
            if len(self.constraints):
                parity = y.astype(np.float32) @ self.constraints.T.astype(np.float32)
                ok &= (parity.astype(np.int64) % 2 == self.signs).all(axis=1)
            inside[rows] = ok
        return inside

    def outcomes(self, free: np.ndarray) -> list[str]:
        """The bitstrings of the support picked by rows of `dimension` free bits each."""
        free = np.asarray(free, dtype=np.uint8)
        if free.ndim != 2 or free.shape[1] != self.dimension:
            raise ValueError(f"free bits must be rows of {self.dimension}, not {free.shape}")
        constraints, signs, pivots = self._echelon
        free_columns = np.setdiff1d(np.arange(len(self.qubits)), pivots)
        y = np.zeros((len(free), len(self.qubits)), dtype=np.uint8)
        y[:, free_columns] = free
        if len(pivots):
            rest = free.astype(np.int64) @ constraints[:, free_columns].T.astype(np.int64)
            y[:, pivots] = (rest + signs) % 2
        bits = np.zeros((len(free), self.num_clbits), dtype=np.uint8)
        measured = self.clbit_index >= 0
        bits[:, measured] = y[:, self.clbit_index[measured]]
        text = (bits[:, ::-1] + ord("0")).tobytes().decode("ascii")
        return [text[i : i + self.num_clbits] for i in range(0, len(text), self.num_clbits)]

    def as_dict(self) -> dict[str, float]:
        """Every outcome of the support with its probability, 2^-dimension."""
        k = self.dimension
        if 1 << k > MAX_LISTED_OUTCOMES:
            raise ValueError(f"2^{k} outcomes are too many to list")
        free = (np.arange(1 << k)[:, None] >> np.arange(k)) & 1
        return dict.fromkeys(self.outcomes(free), math.ldexp(1.0, -k))


def stabilizer_distribution(circuit: QuantumCircuit) -> AffineDistribution | None:
    """The exact outcome distribution of a Clifford circuit whose measurements all come last,
    of any width up to the stabilizer limits; None for any other circuit."""
    measured = _final_measurements(circuit)
    if measured is None or not measured:
        return None
    unitary = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name != "measure":
            unitary._append(inst)
    clifford = clifford_of(unitary)
    if clifford is None:
        return None
    qubits = sorted(set(measured.values()))
    position = {q: i for i, q in enumerate(qubits)}
    constraints, signs = _z_constraints(clifford, qubits)
    clbit_index = np.array(
        [position[measured[c]] if c in measured else -1 for c in range(circuit.num_clbits)],
        dtype=np.int64,
    )
    return AffineDistribution(
        num_clbits=circuit.num_clbits,
        qubits=tuple(qubits),
        clbit_index=clbit_index,
        constraints=constraints,
        signs=signs,
    )


def _eliminate(
    rows: np.ndarray,
    columns: Sequence[int],
    *,
    reduce_all: bool = False,
    before_product: Callable[[np.ndarray, int], None] | None = None,
) -> list[tuple[int, int]]:
    """Gaussian elimination over F2 in place on bit-packed `rows` (bit c of a row is bit
    c % 8 from the left of byte c // 8), pivoting on `columns` in order.

    Each pivot row is added into the rows not yet pivots that have a one in its column, or
    into all rows with one there if `reduce_all`; `before_product(targets, pivot)` sees every
    such addition first. Returns (row, column) for each pivot.
    """
    free = np.ones(len(rows), dtype=bool)
    pivots: list[tuple[int, int]] = []
    for column in columns:
        ones = (rows[:, column >> 3] >> (7 - (column & 7))) & 1 == 1
        candidates = np.flatnonzero(ones & free)
        if not candidates.size:
            continue
        pivot = int(candidates[0])
        free[pivot] = False
        targets = np.flatnonzero(ones) if reduce_all else candidates
        targets = targets[targets != pivot]
        if targets.size:
            if before_product is not None:
                before_product(targets, pivot)
            rows[targets] ^= rows[pivot]
        pivots.append((pivot, column))
    return pivots


def _z_constraints(clifford: Clifford, measured: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Generators of the stabilizers +/-Z^a with a on `measured` only: (a rows, sign bits)."""
    n = clifford.num_qubits
    width = (n + 7) // 8
    x = np.packbits(clifford.stab_x, axis=1)
    z = np.packbits(clifford.stab_z, axis=1)
    rows = np.concatenate([x, z], axis=1)
    # A row is i^q X^x Z^z (X part left of Z part): Y = iXZ, so q = 2 sign + |x & z|, and a
    # product picks up (-1)^(z1 . x2) from moving X^x2 left past Z^z1.
    q = (
        2 * clifford.stab_phase.astype(np.int64)
        + np.bitwise_count(x & z).sum(axis=1, dtype=np.int64)
    ) % 4

    def multiply(targets: np.ndarray, pivot: int) -> None:
        crossings = np.bitwise_count(rows[targets, width:] & rows[pivot, :width])
        q[targets] = (q[targets] + q[pivot] + 2 * crossings.sum(axis=1, dtype=np.int64)) % 4

    unmeasured = sorted(set(range(n)) - set(measured))
    columns = [*range(n), *(8 * width + c for c in unmeasured)]
    pivots = _eliminate(rows, columns, before_product=multiply)
    left = np.setdiff1d(np.arange(n), [row for row, _ in pivots])
    # Rows left are products of commuting Hermitian generators free of X: +/-Z^a, q even.
    # They stay independent, as the generators were, so their a are independent too.
    assert not (q[left] & 1).any()
    a = np.unpackbits(rows[left, width:], axis=1, count=n)[:, list(measured)]
    return a, (q[left] >> 1).astype(np.uint8)


def _row_echelon(
    constraints: np.ndarray, signs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same affine subspace with `constraints` in reduced row echelon form, and pivots."""
    m = constraints.shape[1]
    augmented = np.packbits(np.concatenate([constraints, signs[:, None]], axis=1), axis=1)
    pivots = _eliminate(augmented, range(m), reduce_all=True)
    order = [row for row, _ in pivots]
    reduced = np.unpackbits(augmented[order], axis=1, count=m + 1)
    return reduced[:, :m], reduced[:, m], np.array([c for _, c in pivots], dtype=np.int64)


def flatten(counts: Mapping[str, N]) -> dict[str, N]:
    """Counts keyed by one bitstring over all clbits (Qiskit separates registers by spaces)."""
    flat: dict[str, N] = {}
    for key, n in counts.items():
        k = key.replace(" ", "")
        flat[k] = flat[k] + n if k in flat else n
    return flat


def verify_counts(
    circuit: QuantumCircuit,
    counts: dict[str, int],
    estimated_fidelity: float | None,
    exact: ExactProbabilities | str | None = None,
) -> Verification:
    """Hellinger fidelity to the exact distribution, and the threshold it is judged against.

    Measurement cannot lower fidelity, so the classical fidelity of the output distribution
    is at least the state fidelity, which the plan estimates as F. Finite sampling lowers
    the empirical Hellinger fidelity by about (K - 1) / (4 N) for K outcomes and N shots;
    a further 0.05 absorbs the roughness of the estimate of F. When K is not small next to
    N this takes the threshold to 0 and the check is weak; the method says so. `exact`, the
    circuit's `exact_probabilities` when already simulated, saves simulating again; a
    string says why that simulation failed: it is not run again, and only a Clifford
    circuit is verified (by its tableau).
    """
    return verify_distribution(circuit, counts, sum(counts.values()), estimated_fidelity, exact)


def verify_distribution(
    circuit: QuantumCircuit,
    distribution: Mapping[str, float],
    shots: int,
    estimated_fidelity: float | None,
    exact: ExactProbabilities | str | None = None,
) -> Verification:
    """`verify_counts` for outcome weights that are not counts (a mitigated distribution,
    normalised or not) drawn from `shots` shots."""
    flat = flatten(distribution)
    if any(w < 0 for w in flat.values()):
        raise ValueError("Hellinger fidelity needs non-negative weights, not quasi-probabilities")
    keys = list(flat)
    weights = np.array([flat[key] for key in keys], dtype=float)
    weights /= weights.sum()
    failed = exact if isinstance(exact, str) else None
    if failed is None:
        exact = exact if exact is not None else exact_probabilities(circuit)
    if isinstance(exact, ExactProbabilities):
        p = exact.of(keys)
        return _judged(
            "statevector",
            float(np.sqrt(p * weights).sum()) ** 2,
            exact.support,
            float(weights[p > _IMPOSSIBLE].sum()),
            shots,
            estimated_fidelity,
        )
    affine = stabilizer_distribution(circuit)
    if affine is None and failed:
        return Verification(method=f"none; {failed}")
    if affine is None:
        # Mid-circuit measurement, reset, control flow or delays: deferred measurement.
        dynamic = dynamic_probabilities(circuit) if _final_measurements(circuit) is None else None
        if not isinstance(dynamic, ExactProbabilities):
            return Verification(method=dynamic or unverifiable(circuit))
        p = dynamic.of(keys)
        return _judged(
            "deferred measurement",
            float(np.sqrt(p * weights).sum()) ** 2,
            dynamic.support,
            float(weights[p > _IMPOSSIBLE].sum()),
            shots,
            estimated_fidelity,
        )
    inside = affine.contains(keys)
    # (sum over the support of sqrt(q_x 2^-k))^2, with 2^-k applied last: it underflows
    # alone for k past 1074, the product only when the fidelity itself is that small.
    fidelity = math.ldexp(float(np.sqrt(weights[inside]).sum()) ** 2, -affine.dimension)
    return _judged(
        "stabilizer",
        fidelity,
        1 << affine.dimension,
        float(weights[inside].sum()),
        shots,
        estimated_fidelity,
    )


#: Widest deferred-measurement circuit verified: the circuit's qubits plus one per mid-circuit
#: measurement, reset and negated multi-bit test; 2^20 amplitudes are 16 MiB and take well
#: under a second, small next to the shot-by-shot simulation a dynamic circuit needs.
MAX_DEFERRED_QUBITS = 20


class _Deferred:
    """A dynamic circuit as one unitary circuit on more qubits (deferred measurement).

    Measuring q into c copies q onto a fresh qubit with a CX (or reads q itself when nothing
    but measurements touches q afterwards); resetting q swaps it with a fresh |0> qubit that
    keeps the old state out of the way; an operation under a classical test becomes the
    operation controlled on the qubits holding the bits tested. Tracing out the extra qubits
    gives the dynamic circuit's joint distribution of the final clbit values exactly: the
    principle of deferred measurement (Nielsen and Chuang, 4.4).
    """

    def __init__(self, num_qubits: int) -> None:
        self.width = num_qubits
        self.ops: list[tuple[Any, list[int]]] = []
        self.source: dict[int, int] = {}  # clbit -> qubit holding its value

    def fresh(self) -> int:
        self.width += 1
        if self.width > MAX_DEFERRED_QUBITS:
            raise _TooWide
        return self.width - 1

    def controls(self, predicate: Sequence[Test]) -> list[tuple[int, int]] | None:
        """(qubit, value) pairs that hold exactly when the predicate does; None if it never
        can."""
        out: list[tuple[int, int]] = []
        for test in predicate:
            if test.expression is not None:
                flag = self.truth_table(test)
                if flag is None:  # the expression is constant on the bits as they stand
                    if test.passes(0):
                        continue
                    return None
                out.append((flag, int(test.holds)))
                continue
            pairs: list[tuple[int, int]] = []
            impossible = False
            for k, bit in enumerate(test.bits):
                want = (test.value >> k) & 1
                if bit in self.source:
                    pairs.append((self.source[bit], want))
                elif want:
                    impossible = True  # never written: the bit reads 0
            if test.value >> len(test.bits):
                impossible = True
            merged = _merge(pairs)
            if test.holds:
                if impossible or merged is None:
                    return None
                out.extend(merged)
            elif impossible or merged is None:
                continue  # the test never holds, so its negation always does
            elif not merged:
                return None  # the test always holds
            elif len(merged) == 1:
                out.append((merged[0][0], 1 - merged[0][1]))
            else:
                flag = self.fresh()
                self.controlled(XGate(), merged, [flag])
                out.append((flag, 0))
        return _merge(out)

    def truth_table(self, test: Test) -> int | None:
        """A fresh qubit set to whether the expression of `test` holds, one multi-controlled X
        per accepted reading (readings exclude each other, so the XORs add up to an OR); None
        when no bit it reads has been measured, the expression then being constant."""
        read = [(k, self.source[bit]) for k, bit in enumerate(test.bits) if bit in self.source]
        if not read:
            return None
        flag = self.fresh()
        free = {k for k, _ in read}
        for reading in sorted(test.accepts):
            if any((reading >> k) & 1 for k in range(len(test.bits)) if k not in free):
                continue  # needs a 1 from a bit never written
            controls = _merge([(q, (reading >> k) & 1) for k, q in read])
            if controls is not None:
                self.controlled(XGate(), controls, [flag])
        return flag

    def controlled(self, op: Any, controls: Sequence[tuple[int, int]], qubits: list[int]) -> None:
        if not controls:
            self.ops.append((op, qubits))
            return
        state = sum(v << i for i, (_, v) in enumerate(controls))
        gate = op.control(len(controls), ctrl_state=state)
        self.ops.append((gate, [q for q, _ in controls] + qubits))

    def measure(self, qubit: int, clbit: int, controls: list[tuple[int, int]], final: bool) -> None:
        """c = q under the controls, c unchanged otherwise."""
        if not controls and final:
            self.source[clbit] = qubit
            return
        a = self.fresh()
        now = _merge([*controls, (qubit, 1)])
        if now is not None:
            self.controlled(XGate(), now, [a])
        old = self.source.get(clbit)
        if controls and old is not None:
            both = _merge([*self.controls_not(controls), (old, 1)])
            if both is not None:
                self.controlled(XGate(), both, [a])
        self.source[clbit] = a

    def controls_not(self, controls: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if len(controls) == 1:
            return [(controls[0][0], 1 - controls[0][1])]
        flag = self.fresh()
        self.controlled(XGate(), controls, [flag])
        return [(flag, 0)]

    def reset(self, qubit: int, controls: list[tuple[int, int]]) -> None:
        junk = self.fresh()
        self.controlled(SwapGate(), controls, [qubit, junk])


class _TooWide(Exception):
    pass


def _merge(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Controls with each qubit once; None when two ask one qubit for different values."""
    seen: dict[int, int] = {}
    for q, v in pairs:
        if seen.setdefault(q, v) != v:
            return None
    return list(seen.items())


def _deferred_circuit(circuit: QuantumCircuit) -> tuple[QuantumCircuit, dict[int, int]] | str:
    """The deferred-measurement circuit and clbit -> qubit holding it, or why there is none."""
    try:
        steps = predicated_steps(unroll(circuit))
    except ValueError as exc:
        return f"none; {exc}"
    later: dict[int, int] = {}  # qubit -> index of its last step other than a measurement
    for i, step in enumerate(steps):
        if step.operation.name not in ("measure", "barrier"):
            for q in step.qubits:
                later[q] = i
    deferred = _Deferred(circuit.num_qubits)
    try:
        if circuit.num_qubits > MAX_DEFERRED_QUBITS:
            raise _TooWide
        for i, step in enumerate(steps):
            op, name = step.operation, step.operation.name
            if name in ("barrier", "delay", "id"):
                continue
            controls = deferred.controls(step.predicate)
            if controls is None:
                continue  # never runs
            if name == "measure":
                (q,), (c,) = step.qubits, step.clbits
                final = later.get(q, -1) < i
                deferred.measure(q, c, controls, final)
            elif name == "reset":
                deferred.reset(step.qubits[0], controls)
            elif isinstance(op, Gate) and not step.clbits:
                deferred.controlled(op, controls, list(step.qubits))
            else:
                return f"none; {name!r} has no exact deferred form"
    except _TooWide:
        return (
            f"none; {circuit.num_qubits} qubits with their mid-circuit measurements, resets"
            f" and feed-forward need more than {MAX_DEFERRED_QUBITS} qubits for an exact"
            " deferred-measurement simulation"
        )
    out = QuantumCircuit(deferred.width)
    for op, qubits in deferred.ops:
        out.append(op, qubits)
    return out, deferred.source


def dynamic_probabilities(circuit: QuantumCircuit) -> ExactProbabilities | str:
    """Exact final clbit probabilities of a dynamic circuit by deferred measurement (see
    `_Deferred`), bounded by MAX_DEFERRED_QUBITS; or why there are none."""
    built = _deferred_circuit(circuit)
    if isinstance(built, str):
        return built
    unitary, source = built
    qubits = sorted(set(source.values()))
    if not qubits:
        return "none; nothing measured"
    position = {q: i for i, q in enumerate(qubits)}
    simulator = bounded_simulator(method="statevector")

    def probabilities_of(program: QuantumCircuit) -> Any:
        program.save_probabilities(qubits)
        return simulator.run(program).result()

    try:
        try:
            result = probabilities_of(unitary.copy())
        except Exception:  # controlled gates Aer does not know by name: expand them
            # A fixed basis: transpiling for the simulator builds its target, ~0.4 s.
            result = probabilities_of(
                transpile(unitary, basis_gates=["u", "cx"], optimization_level=0)
            )
        probabilities = np.asarray(result.data()["probabilities"], dtype=float)
    except Exception as exc:  # no exact answer, not a crash
        return f"none; the deferred-measurement simulation failed: {exc}"
    clbit_index = np.array(
        [position[source[c]] if c in source else -1 for c in range(circuit.num_clbits)],
        dtype=np.int64,
    )
    return ExactProbabilities(circuit.num_clbits, probabilities, clbit_index)


def unverifiable(circuit: QuantumCircuit) -> str:
    """Why there is no exact distribution for a circuit, as the method `none` says it."""
    if _final_measurements(circuit) is None:
        built = _deferred_circuit(circuit)
        return built if isinstance(built, str) else "none; measurements before the end"
    if circuit.num_qubits > MAX_STATEVECTOR_QUBITS:
        gib = statevector_bytes(circuit.num_qubits) / 2**30
        return (
            f"none; {circuit.num_qubits} non-Clifford qubits would need {gib:.0f} GiB for the "
            f"exact statevector, beyond the {MAX_STATEVECTOR_QUBITS}-qubit limit (26, or"
            " fewer where the operator's memory limit is smaller)"
        )
    return "none; nothing measured"


def _judged(
    method: str,
    fidelity: float,
    outcomes: int,
    in_support: float,
    shots: int,
    estimated_fidelity: float | None,
    sampling_allowance: float = 0.0,
) -> Verification:
    """The Verification of a Hellinger fidelity to an exact distribution of `outcomes`
    outcomes; `in_support` (the observed weight on them) is only reported. A larger
    `sampling_allowance` replaces the one of `shots` multinomial samples."""
    expected = estimated_fidelity if estimated_fidelity is not None else 1.0
    # `outcomes` stays an int: 2^k overflows a float past k = 1023, long after the
    # allowance has taken any threshold to 0.
    allowance = (outcomes - 1) / (4 * shots) if outcomes < 1 << 1000 else math.inf
    allowance = max(allowance, sampling_allowance)
    threshold = expected - allowance - VERIFY_SLACK
    if threshold <= 0:
        # Only stabilizer supports, 2^k outcomes, grow past the statevector's 2^20.
        size = str(outcomes) if outcomes <= 1 << 20 else f"2^{outcomes.bit_length() - 1}"
        method += (
            f"; weak check: threshold 0 (estimated fidelity {expected:.4g} - sampling allowance"
            f" {allowance:.4g} for {size} exact outcomes and {shots} shots - {VERIFY_SLACK}),"
            f" so any fidelity passes; {in_support:.4f} of the weight is on exact outcomes"
        )
    return Verification(
        method=method,
        hellinger_fidelity=round(fidelity, 6),
        threshold=round(max(0.0, threshold), 6),
    )


def exact_outcome_probabilities(
    circuit: QuantumCircuit,
    qubits: Sequence[int],
    outcomes: np.ndarray,
    exact: ExactProbabilities | None = None,
) -> tuple[np.ndarray, int] | None:
    """Exact probability of each outcome of the measured `qubits` (bit j of an outcome is
    qubits[j]), summed over the other measured qubits, and how many outcomes of those qubits
    are possible; None when there is no exact statevector for the circuit. `exact`, the
    circuit's `exact_probabilities` when already simulated, saves simulating again."""
    exact = exact if exact is not None else exact_probabilities(circuit)
    measured = _final_measurements(circuit)
    if exact is None or measured is None:
        return None
    position = {q: i for i, q in enumerate(sorted(set(measured.values())))}
    width = len(position)
    # Axis a of the tensor is bit width - 1 - a of the index; summing the other axes leaves
    # the kept bits in descending order, so bit j of the flat index is the j-th kept, ascending.
    kept = sorted(position[q] for q in qubits)
    if [position[q] for q in qubits] != kept:
        raise ValueError("qubits must be listed in ascending order")
    tensor = exact.probabilities.reshape([2] * width)
    others = tuple(a for a in range(width) if width - 1 - a not in kept)
    marginal = tensor.sum(axis=others).reshape(-1) if others else exact.probabilities
    return marginal[outcomes], int(np.count_nonzero(marginal > _IMPOSSIBLE))


def verify_outcomes(
    circuit: QuantumCircuit,
    qubits: Sequence[int],
    outcomes: np.ndarray,
    weights: np.ndarray,
    shots: int,
    estimated_fidelity: float | None,
    standard_errors: np.ndarray | None = None,
    exact_simulation: ExactProbabilities | None = None,
) -> Verification:
    """`verify_distribution` for non-negative `weights` on `outcomes` of the measured `qubits`
    (a reconstructed distribution or marginal), against the exact marginal of those qubits.

    With the `standard_errors` of reconstructed weights, the sampling allowance is also at
    least sum_x min(s_x, s_x^2 / (4 w_x)): an outcome of weight w lowers the fidelity by
    about s^2 / (4 w), but noise on an impossible outcome costs its whole kept weight, of
    the order of s.
    """
    exact = exact_outcome_probabilities(circuit, qubits, outcomes, exact_simulation)
    if exact is None:
        return Verification(method=unverifiable(circuit))
    p, support = exact
    normalised = weights / weights.sum() if weights.sum() > 0 else weights
    spread = 0.0
    if standard_errors is not None:
        floor = np.maximum(normalised, _IMPOSSIBLE)
        spread = float(np.minimum(standard_errors, standard_errors**2 / (4 * floor)).sum())
    return _judged(
        "statevector",
        float(np.sqrt(p * normalised).sum()) ** 2,
        support,
        float(normalised[p > _IMPOSSIBLE].sum()),
        shots,
        estimated_fidelity,
        spread,
    )


def verify_expectations(
    circuit: QuantumCircuit,
    observables: Sequence[str],
    values: Sequence[float],
    errors: Sequence[float],
    estimated_fidelity: float | None,
) -> Verification:
    """Largest absolute error of knitted expectation values against exact ones, judged
    against 3 standard errors plus what noise can do: a state of fidelity F moves a Pauli
    expectation by at most 2 (1 - F). Exact values by statevector up to
    MAX_EXPECTATION_QUBITS, by stabilizer simulation beyond for a Clifford circuit."""
    exact = exact_expectations(
        circuit, list(observables), max_statevector_qubits=MAX_EXPECTATION_QUBITS
    )
    if exact is None:
        return Verification(method="none")
    method, expected = exact
    fidelity = estimated_fidelity if estimated_fidelity is not None else 1.0
    return Verification(
        method=method,
        absolute_error=round(max(abs(v - e) for v, e in zip(values, expected, strict=True)), 6),
        threshold=round(3 * max(errors, default=0.0) + 2 * (1 - fidelity), 6),
    )
