"""Aer noise model of a QuantumNode, built from its noise spec."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.quantum_info import Choi, Kraus, SuperOp
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    pauli_error,
    thermal_relaxation_error,
)

from qorch.api.quantum_node import NoiseSpec

# Frame changes, implemented in software on hardware: no duration, no error.
VIRTUAL_GATES = frozenset({"rz", "p", "u1", "id", "barrier", "delay", "measure", "reset"})
TWO_QUBIT_GATES = frozenset({"cx", "cz", "ecr", "swap", "iswap", "rzz", "cy", "ch"})


class SerialisedOnce(NoiseModel):
    """A NoiseModel that Aer serialises once. Aer turns its model into a dict on every run,
    a JSON round trip term by term: 7 of the 13 ms a 3-qubit density matrix took under a
    quickstart node's noise, with the interpreter lock held. The copy is forgotten by every
    method that changes the model (Aer adds a circuit's own error instructions to a deep
    copy through them)."""

    def __init__(self, basis_gates: list[str] | None = None) -> None:
        # Set before anything else: a deep copy in another thread must not see the
        # attribute appear.
        self._serialised: dict[str, Any] | None = None
        super().__init__(basis_gates)

    def to_dict(self, serializable: bool = False) -> dict[str, Any]:
        if not serializable:
            return super().to_dict()
        if self._serialised is None:
            self._serialised = super().to_dict(serializable=True)
        return self._serialised

    def _changed(self) -> None:
        self._serialised = None

    def reset(self) -> None:
        self._changed()
        super().reset()

    def add_basis_gates(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().add_basis_gates(*args, **kwargs)

    def add_all_qubit_quantum_error(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().add_all_qubit_quantum_error(*args, **kwargs)

    def add_quantum_error(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().add_quantum_error(*args, **kwargs)

    def add_all_qubit_readout_error(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().add_all_qubit_readout_error(*args, **kwargs)

    def add_readout_error(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().add_readout_error(*args, **kwargs)


def _relaxation(noise: NoiseSpec, nanoseconds: float | None, qubits: int) -> QuantumError | None:
    if noise.t1_microseconds is None or not nanoseconds:
        return None
    t1 = noise.t1_microseconds * 1e3  # ns, the unit of the gate times
    # Without a T2, dephasing is limited by relaxation alone (T2 = 2 T1).
    t2 = noise.t2_microseconds * 1e3 if noise.t2_microseconds else 2 * t1
    one = thermal_relaxation_error(t1, t2, nanoseconds)
    return one if qubits == 1 else one.expand(one)


def _compose(*errors: QuantumError | None) -> QuantumError | None:
    present = [e for e in errors if e is not None]
    if not present:
        return None
    out = present[0]
    for err in present[1:]:
        out = out.compose(err)
    return out


def _channel(*errors: QuantumError | None) -> QuantumError | None:
    """The errors applied in turn, as one Kraus channel: the same map."""
    present = [e for e in errors if e is not None]
    if not present:
        return None
    superop = SuperOp(present[0].to_quantumchannel())
    for err in present[1:]:
        superop = superop.compose(err.to_quantumchannel())
    # Kraus operators from the eigenvectors of the Choi matrix, which is Hermitian and
    # positive for a physical channel. `Kraus(superop)` does the same through SciPy, whose
    # import took 120 ms in a process that had no other use for it (an agent's start).
    choi = Choi(superop)
    dim_in, dim_out = int(np.prod(choi.input_dims())), int(np.prod(choi.output_dims()))
    values, vectors = np.linalg.eigh(choi.data)
    operators = [
        np.sqrt(value) * vector.reshape((dim_out, dim_in), order="F")
        for value, vector in zip(values, vectors.T, strict=True)
        if value > 1e-12
    ]
    return _Channel(Kraus(operators))


class _Channel(QuantumError):
    """One Kraus map, built from errors that act: never the identity. Aer asks each error it
    is given whether it is, and for a Kraus map it answers through SciPy (see above)."""

    def ideal(self) -> bool:
        return False


@dataclass(frozen=True)
class NodeErrors:
    """A node's errors: on its one- and two-qubit gates, while measuring, the misread, and
    both of those as one error on a deferred measurement's marker."""

    gate: QuantumError | None
    two_qubit_gate: QuantumError | None
    measure: QuantumError | None
    readout: ReadoutError | None
    deferred_measure: QuantumError | None


@functools.lru_cache(maxsize=64)
def node_errors(noise_json: str, channels: bool) -> NodeErrors:
    """A node's errors, built once per noise figures: as channels they take milliseconds
    each, and every program a node takes part in needs them."""
    noise = NoiseSpec.model_validate_json(noise_json)
    compose = _channel if channels else _compose
    measure = compose(_relaxation(noise, noise.measure_nanoseconds, 1))
    flip = noise.readout_error
    return NodeErrors(
        gate=compose(
            depolarizing_error(noise.single_qubit_error, 1) if noise.single_qubit_error else None,
            _relaxation(noise, noise.single_qubit_gate_nanoseconds, 1),
        ),
        two_qubit_gate=compose(
            depolarizing_error(noise.two_qubit_error, 2) if noise.two_qubit_error else None,
            _relaxation(noise, noise.two_qubit_gate_nanoseconds, 2),
        ),
        measure=measure,
        readout=ReadoutError([[1 - flip, flip], [flip, 1 - flip]]) if flip else None,
        # A deferred measurement: relaxation while measuring, then the misread as a bit flip.
        deferred_measure=compose(
            measure, pauli_error([("X", flip), ("I", 1 - flip)]) if flip else None
        ),
    )


def build_noise_model(
    noise: NoiseSpec,
    basis_gates: list[str],
    serialised_once: bool = True,
    channels: bool = False,
    readout: bool = True,
) -> NoiseModel | None:
    """The node's noise as an Aer NoiseModel, or None when the spec adds no noise.
    `serialised_once=False`: a plain NoiseModel, as a user of Aer builds it (the benchmarks'
    warm-Aer baseline).

    `channels`: each error as one Kraus channel, for density-matrix runs. Aer turns every
    term of every error into a superoperator on each run; a depolarizing error composed with
    relaxation has dozens of terms, and a 3-qubit density matrix took 7.5 ms, 1.0 ms as
    channels (the same probabilities within 1e-9). Not for trajectories: on the statevector
    Aer samples a mixture's terms cheaply but applies a Kraus map operator by operator.

    `readout=False`: without the misread, the errors built for the full model (cached)."""
    kind = SerialisedOnce if serialised_once else NoiseModel
    model = kind(basis_gates=[g for g in basis_gates if g not in ("measure", "reset")])
    one_q = [g for g in basis_gates if g not in VIRTUAL_GATES and g not in TWO_QUBIT_GATES]
    two_q = [g for g in basis_gates if g in TWO_QUBIT_GATES]
    errors = node_errors(noise.model_dump_json(), channels)
    if errors.gate is not None and one_q:
        model.add_all_qubit_quantum_error(errors.gate, one_q)
    if errors.two_qubit_gate is not None and two_q:
        model.add_all_qubit_quantum_error(errors.two_qubit_gate, two_q)
    if errors.measure is not None:
        model.add_all_qubit_quantum_error(errors.measure, ["measure"])
    if errors.readout is not None and readout:
        model.add_all_qubit_readout_error(errors.readout)
    return None if model.is_ideal() else model
