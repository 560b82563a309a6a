"""Predicted Hellinger fidelity: what a job's own counts will score against the exact answer.

The product of survival probabilities (`fidelity`) is a lower bound: many errors leave the
output distribution alone (a Z before a measurement), others move weight to outcomes the
ideal circuit also has. And a job's verification compares its *counts*, a finite sample, with
the exact distribution, which lowers the fidelity again where the outcomes are many. The
prediction therefore simulates, once, what the job will sample from, and computes the
expected Hellinger fidelity of that many shots of it:

1. The circuit as the node runs it (transpiled to its gates; for teleport, the co-simulated
   program with its feed-forward deferred, as `simulate_composite` runs it), its final
   measurements replaced by the probabilities of the measured qubits, under the same Aer
   noise model as the job: exactly with the density-matrix method where 4^n costs less
   than the trajectories, otherwise averaged over seeded noisy trajectories (each one
   contributes its whole outcome distribution, not one sample), a fraction of the job's
   shots.
2. The final measurements' classical errors (relaxation while measuring, then the readout
   flip) applied per bit with the measuring node's figures.
3. The expected (sum_x sqrt(p_x N_x / S))^2 for N multinomial with S shots over that
   distribution, by seeded draws, p the exact distribution.

It needs circuits whose only measurements come last (after deferral for teleport programs),
and simulations expected to take at most MAX_SECONDS; for others the estimate stays the lower
bound.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.transpiler import StagedPassManager, generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from qorch.api.quantum_node import NoiseSpec
from qorch.memory_limit import EXACT_BYTES_PER_OUTCOME, simulating, widest_fitting
from qorch.qpu.aer import bounded_simulator
from qorch.qpu.circuits import fingerprint
from qorch.qpu.composite_noise import (
    CompositeNoise,
    build_composite_noise_model,
    defer_feed_forward,
    parse_description,
)
from qorch.qpu.noise import build_noise_model
from qorch.qpu.simulation_process import SimulationInterrupted, SimulationProcess
from qorch.single_flight import SingleFlight

#: Seeds of the trajectories and of the draws: the same inputs give the same estimate.
SEED = 2026
#: Noisy trajectories per job shot, and their bounds: their cost is that share of the job's.
TRAJECTORY_SHARE = 1 / 24
MIN_TRAJECTORIES, MAX_TRAJECTORIES = 24, 512
#: Widest exact prediction (4^11 entries of a density matrix: 64 MiB).
MATRIX_QUBITS = 11
#: A noisy statevector trajectory's cost over a density matrix's, per amplitude (noise
#: sampling, Kraus branches): 167 trajectories of 8 qubits took twice the 8-qubit matrix, of
#: 10 qubits a quarter of it (MQT QAOA, graph state, Deutsch-Jozsa under the benchmark's
#: noise). So the matrix up to 2^n = 4 x trajectories. A teleport program's composite noise
#: is all Kraus maps on the statevector: 167 trajectories of 11 qubits took 1.5x the matrix.
TRAJECTORY_COST = 4
KRAUS_TRAJECTORY_COST = 16
#: Multinomial draws of the job's shots whose Hellinger fidelities are averaged.
DRAWS = 24
#: Widest circuit predicted: the probabilities of 2^24 outcomes are 128 MiB per array, and
#: the exact statevector, the kept ideal and the readout's copies peak at about
#: EXACT_BYTES_PER_OUTCOME; narrower where the memory limit (a pod's) would not hold that.
MAX_PREDICTED_QUBITS = widest_fitting(EXACT_BYTES_PER_OUTCOME, 24)
#: Seconds per operation, amplitude (density-matrix entry) and trajectory of a simulation
#: before one was measured (QFT-20 on 2 idle cores); then the last one measured, never less.
#: A simulation expected to take longer than ASIDE_SECONDS runs in the simulation process:
#: planning runs in a worker thread of the operator, and Aer holds the interpreter lock
#: while it runs, so there it would stall the operator's event loop.
SIMULATION_RATE = 2e-10
ASIDE_SECONDS = 0.5
#: A simulation expected to take longer is not run: the estimate stays the lower bound. The
#: simulation process serves every job's planning in turn, and a 20-qubit teleport program
#: of 4,000 operations (well within the sanitizer's limits) ran 10 minutes there and on.
MAX_SECONDS = 30.0
#: Smaller simulations (expected shorter at the reference rate) teach no rate: their time is
#: mostly Aer's cost per call and noise model (a millisecond for 80 units gave 1e-5 s per
#: unit, and sent the next 6-qubit density matrix, milliseconds of work, aside).
RATE_MIN_SECONDS = 0.05
#: Statevector amplitude-operations that cost about as much as the stabilizer method's
#: probability of one outcome (measured at 8 to 16 qubits: a few hundred).
STABILIZER_OUTCOME_COST = 256
#: Predictions kept across jobs (a float each, by a digest of everything it depends on).
PREDICTIONS_KEPT = 4096
_rate = SIMULATION_RATE
_ASIDE = SimulationProcess()
log = logging.getLogger(__name__)


def close_simulation_process() -> None:
    """Stop the process of long predictions, if one started (the operator's cleanup)."""
    _ASIDE.close()


#: Instructions that change nothing but a qubit's noise (markers, waits): after its final
#: measurement they are dropped, not a reason to give up.
_AFTER_MEASURE = frozenset({"id", "delay", "barrier"})


#: Gates the exact simulation is written in.
_SIMULATED = ["u", "cx", "reset", "delay"]


@dataclass(frozen=True)
class IdealOutput:
    """Exact probabilities of a circuit's measured clbits (bit j of an index is `bits[j]`),
    and that circuit's fingerprint: it names them in the keys of predictions (a digest of
    the probabilities themselves took 10 ms at 20 qubits, half a second at 26)."""

    bits: tuple[int, ...]
    probabilities: np.ndarray
    source: bytes


def _split_final_measurements(
    circuit: QuantumCircuit,
) -> tuple[QuantumCircuit, dict[int, int]] | None:
    """The circuit without its final measurements, and clbit -> qubit for them; None when a
    measurement or control flow remains before the end (the prediction does not apply)."""
    last: dict[int, int] = {}  # qubit -> index of the last instruction acting on it
    for i, inst in enumerate(circuit.data):
        if inst.operation.name not in _AFTER_MEASURE:
            for q in inst.qubits:
                last[circuit.find_bit(q).index] = i
    body = circuit.copy_empty_like()
    measured: dict[int, int] = {}
    for i, inst in enumerate(circuit.data):
        op = inst.operation
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if op.name == "measure" and last[qubits[0]] == i:
            clbit = circuit.find_bit(inst.clbits[0]).index
            if clbit in measured:
                return None
            measured[clbit] = qubits[0]
            continue
        if op.name == "measure" or getattr(op, "blocks", None) or inst.clbits:
            return None
        if op.name in _AFTER_MEASURE and set(qubits) & set(measured.values()):
            continue  # noise on a qubit already read cannot change its bit
        if op.name != "barrier":
            body.append(op, inst.qubits)
    if not measured or len(set(measured.values())) != len(measured):
        return None
    return body, measured


def ideal_output(circuit: QuantumCircuit) -> IdealOutput | None:
    """The exact distribution of the measured clbits, or None (mid-circuit measurements,
    control flow, nothing measured, or too wide)."""
    if circuit.num_qubits > MAX_PREDICTED_QUBITS:
        return None
    split = _split_final_measurements(circuit)
    if split is None:
        return None
    body, measured = split
    bits = tuple(sorted(measured))
    qubits = [measured[c] for c in bits]
    # As written where Aer knows every gate (transpiling costs more than the simulation).
    known = AerSimulator().configuration().basis_gates
    if not all(inst.operation.name in known for inst in body.data):
        # No coupling map: the qubits keep their indices.
        body = transpile(body, basis_gates=_SIMULATED, optimization_level=0)
    body.save_probabilities(qubits)
    with simulating(EXACT_BYTES_PER_OUTCOME << body.num_qubits):
        probabilities = _aside_if_long(_simulate, body, None, 1, "statevector")
    if probabilities is None:
        return None
    return IdealOutput(bits, probabilities, fingerprint(circuit))


def _simulate(
    circuit: QuantumCircuit, model: NoiseModel | None, runs: int, method: str
) -> np.ndarray | None:
    """The mean of the probabilities `circuit` saves over `runs` seeded runs."""
    # Double precision, as the job runs: single was no faster for trajectories, and a
    # density matrix under Kraus channels took 35x longer (10 qubits: 17 s against 0.5 s).
    simulator = bounded_simulator(method=method, noise_model=model)
    result = simulator.run(circuit, shots=runs, seed_simulator=SEED).result()
    if not result.success:
        return None
    return np.asarray(result.data()["probabilities"], dtype=float)


def _timed(
    simulate: Callable[[QuantumCircuit, NoiseModel | None, int, str], np.ndarray | None],
    circuit: QuantumCircuit,
    model: NoiseModel | None,
    runs: int,
    method: str,
) -> tuple[np.ndarray | None, float]:
    """`simulate(...)` and its seconds, timed where it runs (not a process start)."""
    began = time.perf_counter()
    return simulate(circuit, model, runs, method), time.perf_counter() - began


def _aside_if_long(
    simulate: Callable[[QuantumCircuit, NoiseModel | None, int, str], np.ndarray | None],
    circuit: QuantumCircuit,
    model: NoiseModel | None,
    runs: int,
    method: str,
) -> np.ndarray | None:
    """`simulate(...)` here, or in the simulation process when expected to take long."""
    global _rate
    width = 2 * circuit.num_qubits if method == "density_matrix" else circuit.num_qubits
    units = len(circuit.data) * 2**width * runs
    if _rate * units > MAX_SECONDS:  # at debug: a job that waits is planned again and again
        log.debug(
            "not simulated for a prediction: %d qubits, %d operations, %d run(s) would take"
            " about %.0f s",
            circuit.num_qubits,
            len(circuit.data),
            runs,
            _rate * units,
        )
        return None
    timed: tuple[np.ndarray | None, float] | None = None
    if _rate * units > ASIDE_SECONDS:
        # The process dies with the thread that started it: then simulate here after all.
        with contextlib.suppress(SimulationInterrupted):
            timed = _ASIDE.call_blocking(_timed, simulate, circuit, model, runs, method)
    if timed is None:
        timed = _timed(simulate, circuit, model, runs, method)
    probabilities, seconds = timed
    if SIMULATION_RATE * units >= RATE_MIN_SECONDS:
        _rate = max(SIMULATION_RATE, seconds / max(units, 1))
    return probabilities


def _readout_channel(noise: NoiseSpec) -> np.ndarray:
    """M[read, true] of one final measurement: relaxation while measuring, then the flip."""
    flip = noise.readout_error or 0.0
    decay = 0.0
    if noise.t1_microseconds and noise.measure_nanoseconds:
        decay = 1 - math.exp(-noise.measure_nanoseconds / (noise.t1_microseconds * 1e3))
    one_to_zero = decay * (1 - flip) + (1 - decay) * flip
    return np.array([[1 - flip, one_to_zero], [flip, 1 - one_to_zero]])


def _apply_per_bit(q: np.ndarray, channels: Sequence[np.ndarray]) -> np.ndarray:
    """Each bit j of the index through channels[j]."""
    k = len(channels)
    tensor = q.reshape([2] * k)
    for j, m in enumerate(channels):
        if np.allclose(m, np.eye(2)):
            continue
        axis = k - 1 - j  # C order: the first axis is the highest bit
        tensor = np.moveaxis(np.tensordot(m, tensor, axes=([1], [axis])), 0, axis)
    return tensor.reshape(-1)


def expected_hellinger(p: np.ndarray, q: np.ndarray, shots: int) -> float:
    """Expected Hellinger fidelity to `p` of the counts of `shots` draws from `q`."""
    q = np.clip(q, 0.0, None)
    # Few passes over the outcomes: at 26 qubits each reads 512 MiB.
    kept = q > 1e-15 * q.sum()
    rng = np.random.default_rng(SEED)
    if np.count_nonzero(kept) <= shots:
        support = np.flatnonzero(kept)
        weights = q[support]
        draws = rng.multinomial(shots, weights / weights.sum(), size=DRAWS)
        return float(np.mean((np.sqrt(draws) @ np.sqrt(p[support] / shots)) ** 2))
    q[~kept] = 0.0
    # More outcomes than shots: the counts of a draw are sparse. Draw the shots themselves
    # (a multinomial's counts are those of as many categorical draws), not a DRAWS x
    # outcomes matrix: 3 GiB and seconds for 24 qubits of noisy output. In place, so this
    # holds one more array of the outcomes, not several (a pod's memory limit).
    cdf = np.cumsum(q, out=q)
    cdf /= cdf[-1]  # exactly 1 at the end: every uniform draw in [0, 1) lands inside
    fidelities = []
    for _ in range(DRAWS):
        # side="right": an impossible outcome's interval is empty, no draw lands there.
        landed = np.searchsorted(cdf, rng.random(shots), side="right")
        outcomes, counts = np.unique(landed, return_counts=True)
        fidelities.append(float(np.sqrt(counts) @ np.sqrt(p[outcomes] / shots)) ** 2)
    return float(np.mean(fidelities))


def _noisy_probabilities(
    body: QuantumCircuit,
    qubits: list[int],
    model: NoiseModel,
    shots: int,
    outcomes: int,
    as_channels: Callable[[], NoiseModel | None] | None = None,
    trajectory_cost: float = TRAJECTORY_COST,
) -> np.ndarray | None:
    """Outcome probabilities of `qubits` at the end of `body` under `model`, for a job of
    `shots` shots whose exact output has `outcomes` possible outcomes: exact (density
    matrix) where that costs no more than the trajectories would, else the mean over seeded
    trajectories, a `TRAJECTORY_SHARE` of the job's shots, each `trajectory_cost` times a
    density matrix's cost per amplitude. `as_channels` gives the same noise as one channel
    per gate, which the density matrix reads faster."""
    body = body.copy()
    body.save_probabilities(qubits)
    runs = max(MIN_TRAJECTORIES, min(MAX_TRAJECTORIES, round(shots * TRAJECTORY_SHARE)))
    width = body.num_qubits
    # The matrix has 2^n times a trajectory's amplitudes: the cheaper of the two.
    if width <= MATRIX_QUBITS and 2**width <= trajectory_cost * runs:
        matrix_model = (as_channels() if as_channels else None) or model
        return _aside_if_long(_simulate, body, matrix_model, 1, "density_matrix")
    return _aside_if_long(_simulate, body, model, runs, _trajectory_method(body, outcomes))


def _trajectory_method(body: QuantumCircuit, outcomes: int) -> str:
    """Aer's own choice ("automatic": stabilizer for a Clifford circuit under Pauli and
    reset noise), unless the output spreads over many outcomes: the stabilizer method lists
    the probabilities outcome by outcome, the statevector has them all at once. A 10-qubit
    graph state (1024 outcomes), 167 trajectories: stabilizer 640 ms, statevector 70 ms; at
    16 qubits 47 s and 1.9 s. A GHZ state (2 outcomes) at 16 qubits: 42 ms and 1.3 s."""
    per_outcome = 2**body.num_qubits * max(len(body.data), 1) / max(outcomes, 1)
    return "automatic" if per_outcome > STABILIZER_OUTCOME_COST else "statevector"


def _gates_noiseless(model: NoiseModel | None) -> bool:
    """Whether only measurements carry noise (readout, relaxation while measuring)."""
    return model is None or not set(model.noise_instructions) - {"measure"}


def _predict(
    program: QuantumCircuit,
    model: NoiseModel | None,
    noise_of_qubit: Sequence[NoiseSpec],
    ideal: IdealOutput,
    shots: int,
    as_channels: Callable[[], NoiseModel | None] | None = None,
    trajectory_cost: float = TRAJECTORY_COST,
) -> float | None:
    if program.num_qubits > MAX_PREDICTED_QUBITS:
        return None
    split = _split_final_measurements(program)
    if split is None:
        return None
    body, measured = split
    if tuple(sorted(measured)) != ideal.bits:
        return None
    qubits = [measured[c] for c in ideal.bits]
    with simulating(EXACT_BYTES_PER_OUTCOME << program.num_qubits):
        if _gates_noiseless(model):
            q = ideal.probabilities  # the gates are noiseless: the ideal output, then readout
        else:
            outcomes = int(np.count_nonzero(ideal.probabilities > 1e-12))
            noisy = _noisy_probabilities(
                body, qubits, model, shots, outcomes, as_channels, trajectory_cost
            )
            if noisy is None:
                return None
            q = noisy
        q = _apply_per_bit(q, [_readout_channel(noise_of_qubit[x]) for x in qubits])
        return expected_hellinger(ideal.probabilities, q, shots)


def _node_model(
    noise_json: str, basis_gates: tuple[str, ...], channels: bool = False
) -> NoiseModel | None:
    """A node's noise model, built once per noise figures (the planner asks for each job)."""
    noise = NoiseSpec.model_validate_json
    return _MODELS.get(
        (noise_json, basis_gates, channels),
        lambda: build_noise_model(noise(noise_json), list(basis_gates), channels=channels),
    )


_MODELS: SingleFlight[NoiseModel | None] = SingleFlight(64)
#: Predictions by a digest of what they depend on, across jobs: a batch of jobs often runs
#: one circuit on the same nodes, and each prediction is a simulation.
_PREDICTIONS: SingleFlight[float | None] = SingleFlight(PREDICTIONS_KEPT, keep_none=False)


def _key(kind: str, circuit: QuantumCircuit, noise: str, ideal: IdealOutput, shots: int) -> bytes:
    """A digest of what a prediction depends on: 32 bytes kept however large the noise."""
    digest = hashlib.blake2b(digest_size=32)
    for part in (kind, noise, repr(ideal.bits), str(shots)):
        digest.update(part.encode() + b"\0")
    digest.update(fingerprint(circuit))
    digest.update(ideal.source)
    return digest.digest()


def predict_on_node(
    circuit: QuantumCircuit,
    noise: NoiseSpec,
    basis_gates: Sequence[str],
    ideal: IdealOutput,
    shots: int,
) -> float | None:
    """Expected Hellinger fidelity of `shots` shots of `circuit` on a node with this noise
    (transpiled to its gates as the node's executor does); None where it does not apply."""
    noise_json, basis = noise.model_dump_json(), tuple(basis_gates)
    key = _key("node", circuit, f"{noise_json} {basis}", ideal, shots)
    return _PREDICTIONS.get(
        key, lambda: _predict_on_node(circuit, noise, noise_json, basis, ideal, shots)
    )


@functools.lru_cache(maxsize=16)
def _pass_manager(basis_gates: tuple[str, ...]) -> tuple[StagedPassManager, threading.Lock]:
    """What `transpile(..., optimization_level=1)` runs, built once per gate set (building
    it cost more than running it on a small circuit); its passes keep state while they run,
    so one run at a time."""
    pm = generate_preset_pass_manager(1, basis_gates=list(basis_gates), seed_transpiler=SEED)
    return pm, threading.Lock()


def _predict_on_node(
    circuit: QuantumCircuit,
    noise: NoiseSpec,
    noise_json: str,
    basis_gates: tuple[str, ...],
    ideal: IdealOutput,
    shots: int,
) -> float | None:
    model = _node_model(noise_json, basis_gates)
    if _gates_noiseless(model):  # the ideal output misread: no simulation, no transpiling
        channels = [_readout_channel(noise)] * len(ideal.bits)
        with simulating(EXACT_BYTES_PER_OUTCOME << len(ideal.bits)):
            q = _apply_per_bit(ideal.probabilities, channels)
            return expected_hellinger(ideal.probabilities, q, shots)
    pass_manager, lock = _pass_manager(basis_gates)
    with lock:
        native = pass_manager.run(circuit)
    as_channels = functools.partial(_node_model, noise_json, basis_gates, channels=True)
    return _predict(native, model, [noise] * native.num_qubits, ideal, shots, as_channels)


def predict_program(
    program: QuantumCircuit,
    description: Mapping[str, object],
    ideal: IdealOutput,
    shots: int,
) -> float | None:
    """The same for a co-simulated program and its composite noise description."""
    desc = parse_description(description)
    key = _key("program", program, desc.model_dump_json(), ideal, shots)
    return _PREDICTIONS.get(key, lambda: _predict_program(program, desc, ideal, shots))


def _predict_program(
    program: QuantumCircuit, desc: CompositeNoise, ideal: IdealOutput, shots: int
) -> float | None:
    model = build_composite_noise_model(desc)
    deferred = defer_feed_forward(program, keep_resets=not model.is_ideal())
    noises = [desc.nodes[owner] for owner in desc.qubit_owner]
    as_channels = functools.partial(build_composite_noise_model, desc, channels=True)
    return _predict(deferred, model, noises, ideal, shots, as_channels, KRAUS_TRAJECTORY_COST)
