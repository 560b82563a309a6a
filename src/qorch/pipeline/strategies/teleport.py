"""`teleport`: nonlocal gates by Bell pairs; the nodes' programs co-simulated by one agent,
since entangled nodes share one quantum state."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit

from qorch.api.distributed_job import LinkUse, Plan, Program, PurificationUse
from qorch.planner.circuits import measured_clbits
from qorch.planner.link_physics import Protocol
from qorch.planner.observables import MeasurementBasis
from qorch.planner.partition import Partition
from qorch.planner.strategies import Candidate, estimate_teleport
from qorch.planner.teleport import TeleportProgram, compile_teleport

from ..planning import placement_of, recorded_partition, slots
from .base import Context, Shape, Strategy, Work
from .sampled import PROGRAM_ID, SampledWork, measurement_bases_of


@dataclass(frozen=True)
class TeleportWork(SampledWork):
    circuit: QuantumCircuit
    program: TeleportProgram
    bases: tuple[MeasurementBasis, ...] = ()
    # Each basis circuit compiled like the program: same placement, same noise.
    compiled_bases: tuple[TeleportProgram, ...] = ()

    def program_circuits(self) -> list[QuantumCircuit]:
        return [self.program.circuit, *(p.circuit for p in self.compiled_bases)]

    def noise(self) -> dict[str, Any] | None:
        return self.program.noise

    def counts(self, raw: Mapping[str, int]) -> dict[str, int]:
        return self.program.original_counts(raw)

    def qubit_owners(self, plan: Plan) -> list[str]:
        return list(self.program.qubit_owner[: self.circuit.num_qubits])

    def clbit_owners(self, plan: Plan) -> dict[int, str]:
        # The program keeps the circuit's qubits and clbits in place; its own bits come after.
        program = self.program
        return {
            clbit: program.qubit_owner[qubit]
            for clbit, qubit in measured_clbits(program.circuit).items()
            if clbit < program.original_num_clbits
        }

    def qubits_per_node(self, plan: Plan) -> dict[str, int]:
        return self.program.qubits_per_node()

    def bell_pairs_per_shot(self) -> dict[str, float]:
        # Raw heralded pairs: what the link makes, purification's consumption included.
        pairs: Counter[str] = Counter()
        for program in (self.program, *self.compiled_bases):  # each runs every shot
            pairs.update(program.raw_pairs() or program.bell_pairs)
        return dict(pairs)

    def lean(self) -> tuple[Work, str] | None:
        if not self.compiled_bases:
            return None
        return (
            dataclasses.replace(self, bases=(), compiled_bases=()),
            "observables not measured: the links cannot supply the basis circuits' Bell pairs"
            " within timeoutSeconds",
        )


class Teleport(Strategy):
    name = "teleport"
    preference = 1
    estimator = estimate_teleport

    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        program, part = candidate.plan, candidate.partition
        assert isinstance(program, TeleportProgram) and part is not None
        # What the program consumes, shared cats and teledata included, not the partition's
        # one-pair-per-nonlocal-gate proxy: reservations and link accounting follow these.
        return Shape(
            placement=placement_of(part),
            programs=[
                Program(
                    id=PROGRAM_ID, node=_cosimulating_node(program), shots=shots, note=program.note
                )
            ],
            nonlocal_gates=part.nonlocal_gates,
            bell_pairs=[_link_use(program, k, n) for k, n in sorted(program.bell_pairs.items())],
        )

    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> TeleportWork:
        assert isinstance(candidate.plan, TeleportProgram) and candidate.partition is not None
        return _with_bases(TeleportWork(circuit, candidate.plan), candidate.partition, context)

    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> TeleportWork:
        part = recorded_partition(plan)
        used = [n for n in context.nodes if n.metadata.name in part.nodes]
        node_slots, link_slots = slots(used, context.links, {})
        program = compile_teleport(
            circuit, part, node_slots, link_slots, purification=recorded_purification(plan)
        )
        return _with_bases(TeleportWork(circuit, program), part, context)


def _with_bases(work: TeleportWork, part: Partition, context: Context) -> TeleportWork:
    """The work with its measurement bases, each compiled as the program was (with `free` as
    the program saw it); without them when one does not compile alike."""
    bases = measurement_bases_of(work.circuit, context.observables)
    if not bases:
        return work
    used = [n for n in context.nodes if n.metadata.name in part.nodes]
    node_slots, link_slots = slots(used, context.links, context.free)
    try:
        choice = work.program.purification()
        compiled = tuple(
            compile_teleport(b.circuit, part, node_slots, link_slots, purification=choice)
            for b in bases
        )
    except ValueError:
        return work
    if any(p.noise != work.program.noise for p in compiled):
        return work  # one batch shares one noise description; never guess another's
    return dataclasses.replace(work, bases=bases, compiled_bases=compiled)


def _cosimulating_node(program: TeleportProgram) -> str:
    """The node whose agent runs a co-simulated program: the one holding most of it."""
    share = program.qubits_per_node()
    return max(sorted(share), key=lambda n: share[n])


def _link_use(program: TeleportProgram, link: str, pairs: int) -> LinkUse:
    """What the plan takes of one link, as the status records it."""
    use = program.link_pairs.get(link)
    if use is None:
        return LinkUse(link=link, bell_pairs=pairs)
    purified = use.purified
    return LinkUse(
        link=link,
        bell_pairs=pairs,
        raw_bell_pairs=round(use.raw_pairs, 6),
        pair_fidelity=round(use.fidelity, 6),
        generation_seconds=round(use.generation_seconds, 9),
        purification=PurificationUse(
            protocol=purified.protocol,
            rounds=purified.rounds,
            input_fidelity=round(purified.raw.fidelity, 6),
            output_fidelity=round(purified.state.fidelity, 6),
            success_probabilities=[round(p, 6) for p in purified.success_probabilities],
        )
        if purified.protocol is not None
        else None,
    )


def recorded_purification(plan: Plan) -> dict[str, tuple[Protocol | None, int]]:
    """The purification a recorded plan chose per link (raw where it records none)."""
    return {
        u.link: (u.purification.protocol, u.purification.rounds) if u.purification else (None, 0)
        for u in plan.bell_pairs
    }
