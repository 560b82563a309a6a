"""Runs one circuit on qiskit-aer as the node's processor would: gates, coupling, noise."""

from __future__ import annotations

import time
from dataclasses import dataclass

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ForLoopOp, IfElseOp, SwitchCaseOp, WhileLoopOp
from qiskit.transpiler import CouplingMap, Target
from qiskit_aer import AerSimulator

from qorch.api.quantum_node import QuantumNodeSpec

from .circuits import measures, measures_only_at_end
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


class NodeExecutor:
    """A simulated QPU: transpiles to the node and samples with its noise model."""

    def __init__(self, spec: QuantumNodeSpec) -> None:
        self.spec = spec
        self.noise_model = build_noise_model(spec.noise, spec.basis_gates)
        self.simulator = AerSimulator(noise_model=self.noise_model)
        self.target = node_target(spec)
        # Readout error is applied to sampled outcomes; any gate noise makes Aer simulate
        # every shot on its own.
        gates_only = spec.noise.model_copy(update={"readout_error": None})
        self.noiseless_gates = build_noise_model(gates_only, spec.basis_gates) is None

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

    def samples_at_once(self, compiled: QuantumCircuit) -> bool:
        """Whether Aer will draw every shot of `compiled` from one simulation."""
        return self.noiseless_gates and measures_only_at_end(compiled)

    def sample(self, compiled: QuantumCircuit, shots: int, seed: int | None = None) -> Sample:
        """Run a circuit from `compile` (of this executor or one with the same target)."""
        if shots < 1:
            raise ProgramRejected(f"shots must be at least 1, got {shots}")
        start = time.perf_counter()
        if not measures(compiled):  # nothing to count (a circuit run for its basis circuits)
            return Sample({}, 0.0, False)
        result = self.simulator.run(compiled, shots=shots, seed_simulator=seed).result()
        if not result.success:
            raise RuntimeError(f"simulation failed: {result.status}")
        counts = {k: int(v) for k, v in result.get_counts().items()}
        sampled = bool(result.results[0].metadata.get("measure_sampling", False))
        return Sample(counts, time.perf_counter() - start, sampled)

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
