"""The `cut` strategy: circuit knitting with qiskit-addon-cutting, one piece per node.

Every two-qubit gate between two nodes is cut into a quasi-probability decomposition (QPD):
each node runs its own subexperiments, with no link and no shared state, and the expectation
values are knitted back classically. The price is the sampling overhead, the product over
cuts of gamma^2 (9 per CNOT cut), by which the shots must grow for the same precision.

Weights are generated exactly (`num_samples=inf`): every term of the decomposition is run
once, so the only randomness is shot noise.

Standard errors propagate shot noise through the reconstruction. Each subexperiment k
measures a +/-1 valued product (observable parity times the QPD parity), whose mean from n
shots has variance (1 - mean^2) / (n - 1). A term of the knitted sum is a product over nodes
of independent means, so its variance is exactly prod(E^2 + V) - prod(E^2) with the
estimates in place of E and V; terms share no subexperiment, so their variances add with the
squared coefficients. This is the delta method without its linearisation; it needs no
resampling and is cheap.

Readout correction (`reconstruct(..., readout=...)`): every bit a subexperiment measures,
observable and QPD bits alike, enters the knitting only through a +/-1 factor (-1)^bit. Under
classical assignment errors p(1|0), p(0|1) the factor read averages to a + b (-1)^x, with
a = p(0|1) - p(1|0) and b = 1 - p(1|0) - p(0|1), so (factor - a) / b averages to the ideal
one; bits flip independently given the true outcomes, so the product of the corrected
factors averages to the ideal product. This is the tensored inverse of the assignment matrix
applied to each subexperiment's counts, evaluated exactly on the products the knitting needs
rather than on a 2^k distribution. Bits a subexperiment never measures (a QPD bit of a term
that measures nothing) read 0 and are not corrected. The variance of each mean then comes
from the per-shot second moment, which the correction raises above 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit
from qiskit.exceptions import QiskitError
from qiskit.quantum_info import Clifford, Pauli, PauliList, StabilizerState, Statevector
from qiskit_addon_cutting import generate_cutting_experiments, partition_problem
from qiskit_addon_cutting.qpd import WeightType
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

from .circuits import measured_clbits, translate, without_measurements
from .partition import Partition

#: Two-qubit gates qiskit-addon-cutting decomposes natively; cutting one of these directly is
#: cheaper than cutting the CNOTs of its decomposition (an RZZ(θ) cut costs (1 + 2|sin θ|)^2,
#: its two CNOTs 81).
CUTTABLE = (
    "cx", "cy", "cz", "ch", "ecr", "csx", "cs", "csdg", "cp", "crx", "cry", "crz",
    "rxx", "ryy", "rzz", "rzx", "swap", "iswap", "dcx",
)  # fmt: skip
ONE_QUBIT = ("u", "rz", "sx", "x", "h", "s", "sdg", "t", "tdg", "rx", "ry", "y", "z", "p")
#: Subexperiments of one node; beyond this the plan is unreasonable whatever the bound says.
MAX_SUBEXPERIMENTS = 20_000
#: Exact expectation values by statevector up to this width (2^24 amplitudes, 256 MiB).
MAX_EXACT_QUBITS = 24
#: Stabilizer simulation of Clifford circuits keeps a 2n x 2n bit tableau (5000 qubits: 100 MB,
#: twice while a circuit is applied) and rewrites two of its 2n-row columns per gate.
MAX_STABILIZER_QUBITS = 5000
#: Gates times qubits: the tableau update costs 0.05 to 0.08 s per million (0.8 s for 8000
#: gates on 2000 qubits, 7.5 s for 20,000 on 5000, on the development machine).
MAX_STABILIZER_WORK = 10**8
OBSERVABLE_REGISTER = "observable_measurements"
QPD_REGISTER = "qpd_measurements"


class CutInfeasible(ValueError):
    """The circuit cannot be cut as asked; the message says why (e.g. the overhead bound)."""


def parse_observables(observables: Sequence[str], width: int) -> PauliList:
    """Pauli strings over the circuit's qubits, qubit 0 rightmost, as a PauliList."""
    if not observables:
        raise ValueError("at least one observable is needed")
    for obs in observables:
        if len(obs) != width or set(obs) - set("IXYZ"):
            raise ValueError(f"observable {obs!r} must be {width} characters of I, X, Y, Z")
    return PauliList(list(observables))


def prepare_for_cutting(circuit: QuantumCircuit) -> QuantumCircuit:
    """Without final measurements, in one-qubit gates plus gates the cutter handles."""
    return translate(without_measurements(circuit), [*ONE_QUBIT, *CUTTABLE])


@dataclass(frozen=True)
class ReadoutErrors:
    """A node's readout assignment errors, taken as the same on every bit it reads."""

    zero_to_one: float  # p(1|0)
    one_to_zero: float  # p(0|1)

    def factors(self) -> tuple[float, float]:
        """Unbiased estimates of the ideal (-1)^x from a bit read as 0 and as 1."""
        a = self.one_to_zero - self.zero_to_one
        b = 1.0 - self.zero_to_one - self.one_to_zero
        if b <= 0:
            raise ValueError("readout errors with p(1|0) + p(0|1) >= 1 cannot be inverted")
        return (1.0 - a) / b, (-1.0 - a) / b


IDEAL_FACTORS = (1.0, -1.0)


@dataclass(frozen=True)
class _Counts:
    """One subexperiment's counts, reduced to the means and variances the knitting needs."""

    means: np.ndarray
    variances: np.ndarray


@dataclass(frozen=True)
class CutPlan:
    """Subexperiments per node, and how to knit their counts back into expectation values."""

    subexperiments: dict[str, list[QuantumCircuit]]
    sampling_overhead: float
    num_cuts: int
    observables: tuple[str, ...]
    coefficients: list[tuple[float, WeightType]] = field(repr=False)
    subobservables: dict[str, PauliList] = field(repr=False)

    @property
    def num_subexperiments(self) -> int:
        return sum(len(v) for v in self.subexperiments.values())

    def reconstruct(
        self,
        results: Mapping[str, Sequence[Mapping[str, int]]],
        readout: Mapping[str, ReadoutErrors] | None = None,
    ) -> tuple[list[float], list[float]]:
        """Expectation values of `observables`, in order, and their standard errors.

        `results[node][k]` are the counts of `subexperiments[node][k]`, keyed by Qiskit
        bitstrings (registers separated by spaces or not). With `readout`, one entry per
        node, each measured bit is corrected for that node's assignment errors (see the
        module docstring).
        """
        if set(results) != set(self.subexperiments):
            raise ValueError(
                f"results cover nodes {sorted(results)}, the plan has {sorted(self.subexperiments)}"
            )
        collections = {n: ObservableCollection(obs) for n, obs in self.subobservables.items()}
        reduced: dict[str, list[_Counts]] = {}
        for node, circuits in self.subexperiments.items():
            counts = results[node]
            groups = collections[node].groups
            if len(counts) != len(circuits):
                raise ValueError(
                    f"{node}: {len(counts)} results for {len(circuits)} subexperiments"
                )
            errors = readout[node] if readout is not None else None
            reduced[node] = [
                _reduce(circuit, counts[k], groups[k % len(groups)].pauli_bitmasks, errors)
                for k, circuit in enumerate(circuits)
            ]
        width = len(self.observables)
        values = np.zeros(width)
        variances = np.zeros(width)
        for i, (coefficient, _) in enumerate(self.coefficients):
            product_mean = np.ones(width)
            product_second = np.ones(width)  # prod of E[X^2] = E^2 + V per factor
            for node, collection in collections.items():
                groups = len(collection.groups)
                for j, sub in enumerate(self.subobservables[node]):
                    places = collection.lookup[sub]
                    mean = np.mean([reduced[node][i * groups + g].means[n] for g, n in places])
                    var = (
                        sum(reduced[node][i * groups + g].variances[n] for g, n in places)
                        / len(places) ** 2
                    )
                    product_mean[j] *= mean
                    product_second[j] *= mean**2 + var
            values += coefficient * product_mean
            variances += coefficient**2 * np.maximum(product_second - product_mean**2, 0.0)
        return [float(v) for v in values], [float(math.sqrt(v)) for v in variances]


def _registers(circuit: QuantumCircuit) -> dict[str, list[int]]:
    return {reg.name: [circuit.find_bit(b).index for b in reg] for reg in circuit.cregs}


def _reduce(
    circuit: QuantumCircuit,
    counts: Mapping[str, int],
    masks: Sequence[int],
    readout: ReadoutErrors | None = None,
) -> _Counts:
    """Mean and variance of the mean of each +/-1 observable the subexperiment measures."""
    registers = _registers(circuit)
    obs_bits = registers.get(OBSERVABLE_REGISTER, [])
    qpd_bits = registers.get(QPD_REGISTER, [])
    width = circuit.num_clbits
    read = measured_clbits(circuit) if readout is not None else {}
    factor = {
        c: readout.factors() if readout is not None and c in read else IDEAL_FACTORS
        for c in [*obs_bits, *qpd_bits]
    }
    sums = np.zeros(len(masks))
    squares = np.zeros(len(masks))
    shots = 0
    for key, hits in counts.items():
        flat = key.replace(" ", "")
        if len(flat) != width:
            raise ValueError(f"bitstring {key!r} has {len(flat)} bits, the circuit {width}")
        sign = math.prod(factor[c][flat[width - 1 - c] == "1"] for c in qpd_bits)
        obs = [factor[c][flat[width - 1 - c] == "1"] for c in obs_bits]
        for m, mask in enumerate(masks):
            value = sign * math.prod(f for j, f in enumerate(obs) if mask >> j & 1)
            sums[m] += hits * value
            squares[m] += hits * value * value
        shots += int(hits)
    if shots == 0:
        raise ValueError("a subexperiment has no shots")
    means = sums / shots
    # Without correction every value is +/-1 and this is (1 - mean^2) / (n - 1).
    variances = np.maximum(squares / shots - means**2, 0.0) / max(shots - 1, 1)
    return _Counts(means, variances)


def plan_cut(
    circuit: QuantumCircuit,
    observables: Sequence[str],
    partition: Partition,
    max_sampling_overhead: float,
) -> CutPlan:
    """Cut `circuit` along `partition` into per-node subexperiments.

    Raises CutInfeasible when the sampling overhead exceeds `max_sampling_overhead` (checked
    before any subexperiment is built) or the plan would be unreasonably large.
    """
    prepared = prepare_for_cutting(circuit)
    paulis = parse_observables(observables, prepared.num_qubits)
    missing = [q for q in range(prepared.num_qubits) if q not in partition.assignment]
    if missing:
        raise ValueError(f"the partition places no node for qubits {missing}")
    labels = [partition.assignment[q] for q in range(prepared.num_qubits)]
    problem = partition_problem(prepared, partition_labels=labels, observables=paulis)
    overhead = float(np.prod([basis.overhead for basis in problem.bases]))
    if overhead > max_sampling_overhead:
        raise CutInfeasible(
            f"{len(problem.bases)} cut(s) cost a sampling overhead of {overhead:.4g}, above the"
            f" bound {max_sampling_overhead:g}"
        )
    terms = math.prod(len(basis.maps) for basis in problem.bases)
    groups = max(len(ObservableCollection(o).groups) for o in problem.subobservables.values())
    if terms * groups > MAX_SUBEXPERIMENTS:
        raise CutInfeasible(
            f"{terms * groups} subexperiments per node exceed the limit of {MAX_SUBEXPERIMENTS}"
        )
    subexperiments, coefficients = generate_cutting_experiments(
        problem.subcircuits, problem.subobservables, num_samples=np.inf
    )
    return CutPlan(
        subexperiments={str(k): list(v) for k, v in subexperiments.items()},
        sampling_overhead=overhead,
        num_cuts=len(problem.bases),
        observables=tuple(observables),
        coefficients=list(coefficients),
        subobservables={str(k): v for k, v in problem.subobservables.items()},
    )


def clifford_of(circuit: QuantumCircuit) -> Clifford | None:
    """The Clifford operator of a measurement-free circuit; None when it has a gate that is not
    Clifford (rotations by multiples of pi/2 are) or is too large to simulate."""
    width = circuit.num_qubits
    if width > MAX_STABILIZER_QUBITS or width * len(circuit.data) > MAX_STABILIZER_WORK:
        return None
    # Clifford(circuit) starts from a float64 identity, eight times the final tableau.
    identity = Clifford(np.eye(2 * width, dtype=bool), validate=False)
    try:
        return identity.compose(circuit)
    except QiskitError:
        return None


def exact_expectations(
    circuit: QuantumCircuit,
    observables: Sequence[str],
    max_statevector_qubits: int = MAX_EXACT_QUBITS,
) -> tuple[str, list[float]] | None:
    """How ("statevector" or "stabilizer") and <O> for each Pauli string on the circuit's
    final state: by statevector up to `max_statevector_qubits`, beyond that by stabilizer
    simulation if the circuit is Clifford; None when neither applies."""
    unitary = without_measurements(circuit)
    parse_observables(observables, unitary.num_qubits)
    state: Statevector | StabilizerState
    if unitary.num_qubits <= max_statevector_qubits:
        method, state = "statevector", Statevector(unitary)
    else:
        clifford = clifford_of(unitary)
        if clifford is None:
            return None
        method, state = "stabilizer", StabilizerState(clifford, validate=False)
    return method, [float(state.expectation_value(Pauli(obs)).real) for obs in observables]


def exact_expectation_values(circuit: QuantumCircuit, observables: Sequence[str]) -> list[float]:
    """<O> for each Pauli string on the circuit's final state (verification), by statevector
    up to MAX_EXACT_QUBITS and by stabilizer simulation beyond for a Clifford circuit."""
    exact = exact_expectations(circuit, observables)
    if exact is None:
        raise ValueError(
            f"{circuit.num_qubits} qubits exceed the statevector limit {MAX_EXACT_QUBITS} and"
            " the circuit is not a Clifford circuit within the stabilizer limits"
        )
    return exact[1]
