"""Runs one circuit on qiskit-aer as the node's processor would: gates, coupling, noise."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ForLoopOp, IfElseOp, SwitchCaseOp, WhileLoopOp
from qiskit.transpiler import CouplingMap, Target
from qiskit_aer import AerSimulator

from qorch.api.quantum_node import QuantumNodeSpec

from .aer import bounded_simulator
from .circuits import (
    active_qubits,
    branching_pays,
    defer_measurements,
    measures,
    measures_only_at_end,
)
from .noise import build_noise_model

# Feed-forward the simulator runs natively beside the node's gates.
CONTROL_FLOW = {
    "if_else": IfElseOp,
    "for_loop": ForLoopOp,
    "while_loop": WhileLoopOp,
    "switch_case": SwitchCaseOp,
}


def node_target(spec: QuantumNodeSpec) -> Target:
    """The node as a transpiler target: its gates, its coupling, and dynamic-circuit support."""
    target = Target.from_configuration(
        basis_gates=spec.basis_gates,
        num_qubits=spec.qubits,
        coupling_map=CouplingMap(spec.coupling_map) if spec.coupling_map else None,
    )
    for name, op in CONTROL_FLOW.items():
        target.add_instruction(op, name=name)
    return target


# Mid-circuit measurements deferred to ancillas at most: each doubles the statevector, and
# beyond a few, shot branching (one simulation per branch) is cheaper. Nor wider than
# 24 qubits in all (a 256 MiB statevector).
DEFERRED_QUBITS = 4
DEFERRED_WIDTH = 24


class ProgramRejected(ValueError):
    """The program cannot run on this node; the message says why."""


@dataclass(frozen=True)
class Execution:
    counts: dict[str, int]
    transpile_seconds: float
    simulate_seconds: float


@dataclass(frozen=True)
class Sample:
    """One batch of shots of a compiled circuit."""

    counts: dict[str, int]
    seconds: float
    #: Aer drew every shot from one simulation (measure sampling), so the run's cost hardly
    #: depends on its shots; otherwise each shot was simulated on its own.
    sampled: bool


# Widest circuit the executor runs as one density matrix (it asks Aer for that method, so
# Aer's own memory check no longer chooses): 4^13 entries take 1 GiB.
DENSITY_MATRIX_QUBITS = 13


@functools.cache
def _aer_operations() -> frozenset[str]:
    """What Aer runs as it is (a noise model's target lists only the node's gates)."""
    return frozenset(AerSimulator().target.operation_names)


def one_density_matrix(circuit: QuantumCircuit, shots: int, resets: bool = False) -> bool:
    """Whether Aer evolves one density matrix of `circuit` under gate noise and samples all
    the shots from it: its own choice for more shots than 2^n, n the qubits it simulates,
    measured only at the end (`resets`: resets allowed before). Split into chunks of fewer
    shots, the same run would be simulated shot by shot: 60 times slower for 60,000 shots on
    10 qubits."""
    width = active_qubits(circuit)
    return (
        width <= DENSITY_MATRIX_QUBITS
        and shots > 2**width
        and measures_only_at_end(circuit, resets=resets)
    )


class NodeExecutor:
    """A simulated QPU: transpiles to the node and samples with its noise model."""

    def __init__(self, spec: QuantumNodeSpec) -> None:
        self.spec = spec
        self.noise_model = build_noise_model(spec.noise, spec.basis_gates)
        self.target = node_target(spec)
        # Readout error is applied to sampled outcomes; any gate noise makes Aer simulate
        # every shot on its own.
        self.noiseless_gates = (
            build_noise_model(spec.noise, spec.basis_gates, readout=False) is None
        )
        self.simulator = bounded_simulator(noise_model=self.noise_model)

    @functools.cached_property
    def _matrix_simulator(self) -> AerSimulator:
        """For runs that evolve one density matrix: the same noise as one channel per gate,
        which Aer reads faster (see `build_noise_model`)."""
        channels = build_noise_model(self.spec.noise, self.spec.basis_gates, channels=True)
        return bounded_simulator(noise_model=channels, method="density_matrix")

    def same_target(self, other: NodeExecutor) -> bool:
        """Whether a circuit compiled by `other` fits this node as it is (its noise aside)."""
        mine, theirs = self.spec, other.spec
        return (mine.qubits, mine.basis_gates, mine.coupling_map) == (
            theirs.qubits,
            theirs.basis_gates,
            theirs.coupling_map,
        )

    def check(self, circuit: QuantumCircuit, shots: int = 1) -> None:
        if circuit.num_qubits > self.spec.qubits:
            raise ProgramRejected(
                f"circuit uses {circuit.num_qubits} qubits but the node has {self.spec.qubits}"
            )
        if shots < 1:
            raise ProgramRejected(f"shots must be at least 1, got {shots}")

    def compile(
        self, circuit: QuantumCircuit, seed: int | None = None, optimization_level: int = 1
    ) -> QuantumCircuit:
        self.check(circuit)
        return transpile(
            circuit,
            target=self.target,
            optimization_level=optimization_level,
            seed_transpiler=seed,
        )

    def runs_as_written(self, circuit: QuantumCircuit) -> bool:
        """Whether compiling `circuit` to the node would change none of its outcomes, only
        cost time (a transpile, and in Aer often a slower circuit): no gate noise, every
        measurement at the end, so that one run samples every shot and the node's noise
        cannot change between chunks, and only operations Aer has."""
        return (
            self.noiseless_gates
            and measures_only_at_end(circuit)
            and all(inst.operation.name in _aer_operations() for inst in circuit.data)
        )

    def samples_at_once(self, compiled: QuantumCircuit, shots: int) -> bool:
        """Whether one Aer run of `compiled` costs about the same for any number of shots:
        every shot drawn from one simulation (final or deferred measurements, or one density
        matrix under gate noise) or from one per branch (mid-circuit measurements, where
        branches stay few)."""
        if not self.noiseless_gates:
            return self._one_density_matrix(compiled, shots)
        return (
            measures_only_at_end(compiled)
            or self._deferred(compiled) is not None
            or branching_pays(compiled, shots)
        )

    def _one_density_matrix(self, compiled: QuantumCircuit, shots: int) -> bool:
        return one_density_matrix(compiled, shots)

    def simulations(self, compiled: QuantumCircuit, shots: int) -> float:
        """About how many simulations of `compiled`'s size Aer runs for `shots` shots."""
        if not self.noiseless_gates:
            # One density matrix costs about as much as 2^n shots (measured at 10 and 12).
            return (
                2.0 ** active_qubits(compiled)
                if self._one_density_matrix(compiled, shots)
                else shots
            )
        if measures_only_at_end(compiled):
            return 1
        if (deferred := self._deferred(compiled)) is not None:
            return 2.0 ** (deferred.num_qubits - compiled.num_qubits)
        # Shot branching: the final measurements split the branches again, so up to one
        # simulation per shot.
        return shots

    def _deferred(self, compiled: QuantumCircuit) -> QuantumCircuit | None:
        """`compiled` with its mid-circuit measurements deferred to ancillas, where the
        gates are noiseless and the wider statevector stays within a few qubits more."""
        if not self.noiseless_gates or measures_only_at_end(compiled):
            return None
        width = min(compiled.num_qubits + DEFERRED_QUBITS, DEFERRED_WIDTH)
        return defer_measurements(compiled, max_qubits=width)

    def sample(self, compiled: QuantumCircuit, shots: int, seed: int | None = None) -> Sample:
        """Run a circuit from `compile` (of this executor or one with the same target)."""
        if shots < 1:
            raise ProgramRejected(f"shots must be at least 1, got {shots}")
        start = time.perf_counter()
        if not measures(compiled):  # nothing to count (a circuit run for its basis circuits)
            return Sample({}, 0.0, False)
        deferred = self._deferred(compiled)
        # Without gate noise, shots part ways only at mid-circuit measurements: shot
        # branching simulates each distinct branch once instead of every shot (a cut's
        # measuring subexperiments, dynamic circuits) where that pays.
        branching = self.noiseless_gates and deferred is None and branching_pays(compiled, shots)
        # Priced and run unchunked as one density matrix: so it must be one, whatever
        # Aer's automatic choice would be.
        one_matrix = not self.noiseless_gates and self._one_density_matrix(compiled, shots)
        simulator = self._matrix_simulator if one_matrix else self.simulator
        result = simulator.run(
            deferred or compiled,
            shots=shots,
            seed_simulator=seed,
            shot_branching_enable=branching,
        ).result()
        if not result.success:
            raise RuntimeError(f"simulation failed: {result.status}")
        counts = {k: int(v) for k, v in result.get_counts().items()}
        sampled = bool(result.results[0].metadata.get("measure_sampling", False))
        return Sample(counts, time.perf_counter() - start, sampled)

    def sample_all(
        self, compiled: Sequence[QuantumCircuit], shots: int, seed: int
    ) -> list[dict[str, int]]:
        """The counts of each circuit as `sample` draws them, with one Aer run for all those
        measured only at the end that share a simulator: each run costs milliseconds of
        set-up (calibration's nine circuits: 115 ms of CPU one by one, 50 to 80 ms together).
        Seeded, though not with the seeds `sample` would give each."""
        counts: list[dict[str, int]] = [{} for _ in compiled]
        batches: dict[bool, list[int]] = {}
        for i, circuit in enumerate(compiled):
            if not measures(circuit):
                continue
            if not measures_only_at_end(circuit):
                counts[i] = self.sample(circuit, shots, seed + i).counts
                continue
            one_matrix = not self.noiseless_gates and self._one_density_matrix(circuit, shots)
            batches.setdefault(one_matrix, []).append(i)
        for one_matrix, indices in batches.items():
            simulator = self._matrix_simulator if one_matrix else self.simulator
            batch = [compiled[i] for i in indices]
            result = simulator.run(batch, shots=shots, seed_simulator=seed).result()
            if not result.success:
                raise RuntimeError(f"simulation failed: {result.status}")
            for j, i in enumerate(indices):
                counts[i] = {k: int(v) for k, v in result.get_counts(j).items()}
        return counts

    def run_all(
        self,
        circuits: Sequence[QuantumCircuit],
        shots: int,
        seed: int,
        optimization_level: int = 1,
    ) -> list[dict[str, int]]:
        """`run` of each circuit, compiled together and sampled by `sample_all`."""
        for circuit in circuits:
            self.check(circuit, shots)
        # One process: a pool for a few small circuits would cost more than it saves.
        compiled = transpile(
            list(circuits),
            target=self.target,
            optimization_level=optimization_level,
            seed_transpiler=seed,
            num_processes=1,
        )
        return self.sample_all(compiled, shots, seed)

    def run(
        self,
        circuit: QuantumCircuit,
        shots: int,
        seed: int | None = None,
        optimization_level: int = 1,
    ) -> Execution:
        self.check(circuit, shots)
        start = time.perf_counter()
        compiled = self.compile(circuit, seed, optimization_level)
        transpiled = time.perf_counter()
        sample = self.sample(compiled, shots, seed)
        return Execution(sample.counts, transpiled - start, sample.seconds)
