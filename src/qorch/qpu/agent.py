"""The QPU agent: a node's simulated processor behind an async HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, assert_never

import yaml
from aiohttp import web
from pydantic import ValidationError
from qiskit import QuantumCircuit

from qorch.agent_protocol import (
    AgentError,
    AgentRequest,
    AttestReply,
    AttestRequest,
    CalibrateRequest,
    CalibrationReply,
    CancelReply,
    CancelRequest,
    EchoRequest,
    ErrorCode,
    HealthReply,
    HealthRequest,
    LinkLatencyReply,
    LinkLatencyRequest,
    Message,
    ProbeLinkReply,
    ProbeLinkRequest,
    RunProgress,
    RunRequest,
    RunResult,
    WaitRequest,
    parse_request,
)
from qorch.api.quantum_node import QuantumNode
from qorch.channel.http import ChannelServer, ServerLimits
from qorch.telemetry import tracing
from qorch.telemetry.agent import AgentTelemetry, declared_calibration
from qorch.telemetry.feedforward import echo_reply

from .agent_keys import AgentKeys
from .attestor import Attestor
from .calibration import SHOTS as CALIBRATION_SHOTS
from .calibration import calibration_circuits, figures
from .circuits import decode_circuit
from .composite_noise import (
    MAX_COSIMULATED_QUBITS,
    build_composite_noise_model,
    parse_description,
    simulate_composite,
)
from .executor import Execution, NodeExecutor, ProgramRejected, Sample
from .link_probe import probe
from .link_state import LinkStates
from .peer import PeerMessaging, decode_keys
from .simulation_process import IN_PROCESS_SECONDS, SimulationInterrupted, SimulationProcess

log = logging.getLogger(__name__)

T = TypeVar("T")
# A chunk's work for its shots (units of `_shot_cost`), and its sampler in the simulation
# process.
InChild = tuple[Callable[[int], float], Callable[[int, int | None], Awaitable[Sample]]]

# Results kept for idempotent re-delivery of a program after a pipeline restart.
RESULT_CACHE_SIZE = 256
# Cancelled program ids remembered, so that a late or re-sent `run` of one is refused.
CANCELLED_CACHE_SIZE = RESULT_CACHE_SIZE
# A circuit's shots run in chunks with the QPU free in between, as a processor calibrates
# between shot batches: a waiting calibration gets in, a cancelled program stops. A circuit
# Aer samples (final measurements, no gate noise) is one chunk: one simulation serves every
# shot. Otherwise the first chunk is small and prices the rest, sized to take about
# CHUNK_SECONDS each (an unseeded program's first is sized from earlier programs' rate).
# Aer holds the interpreter lock for a whole run, so the agent answers nothing else while a
# chunk runs: the first is small enough for a deep circuit to keep health checks answered.
FIRST_CHUNK_SHOTS = 8
CHUNK_SECONDS = 0.5
#: From this width a node's programs are mostly long steps, run in the simulation process:
#: a served agent starts that process at once, not in its first job's time (a second).
WARM_SIMULATION_QUBITS = 16
#: The same under gate noise: Aer evolves one density matrix, 4^n per gate, or simulates
#: shot by shot; a QFT-10's matrix is half a second, and its first run in a process just
#: started took a second.
WARM_NOISY_QUBITS = 10
#: The longest it delays listening for that (the process imports Aer: about a second).
WARM_WAIT_SECONDS = 30.0
#: How long a calibration or link probe waits for the QPU: many chunks, and well inside the
#: operator's timeouts for them.
QPU_WAIT_SECONDS = 10.0
# Seconds per unit of `_shot_cost` of one statevector simulation before any was measured:
# QFT-20 on 2 idle cores takes 2e-10, 10x is for a loaded machine. The agent's own runs
# raise it (see `_simulation_rate`).
SIMULATION_RATE = 2e-9
# A seeded program's chunks grow by this factor instead of by time (see `next_chunk_shots`).
SEEDED_CHUNK_GROWTH = 4
# Longest a `run` or `wait` holds its request before answering with the program's progress:
# a caller following a long program hears from the agent at least this often.
MAX_WAIT_SECONDS = 60.0
# How long a stopping agent lets the calls it still serves finish.
STOP_GRACE_SECONDS = 2.0


def next_chunk_shots(
    remaining: int,
    last_shots: int,
    last_seconds: float,
    *,
    sampled: bool,
    seeded: bool,
    target_seconds: float = CHUNK_SECONDS,
) -> int:
    """Shots of a circuit's next chunk, from how its last chunk went.

    A measure-sampled run draws every shot from one simulation, so its cost barely depends on
    its shots: the rest go in one chunk rather than paying for the simulation once per chunk.
    Otherwise each shot is simulated on its own and the last chunk's rate sizes the next.
    Seeded counts depend on how the shots are split (Aer picks its method from a run's shot
    count, and a sampled run draws all its shots from one generator), so a seeded program
    grows its chunks by a fixed factor, giving the same split, and counts, on every run.
    """
    if sampled:
        return remaining
    if seeded:
        size = last_shots * SEEDED_CHUNK_GROWTH
    else:
        size = int(target_seconds * last_shots / max(last_seconds, 1e-6))
    return max(1, min(remaining, size))


class QpuAgent:
    """Runs programs one at a time, as a processor does; a repeated program id is not re-run.

    With `node_file`, the node's manifest is re-read whenever that file changes (see
    `refresh`), so its noise can drift while the agent runs; with `link_files`, so can the
    physical state of its links (qorch.qpu.link_state), which link probes measure. With
    `attestor`, it answers `attest` challenges with TPM quotes (qorch.qpu.attestor).
    """

    def __init__(
        self,
        node: QuantumNode,
        node_file: str | Path | None = None,
        attestor: Attestor | None = None,
        link_files: Sequence[str | Path] = (),
        link_dir: str | Path | None = None,
    ) -> None:
        self.node = node
        self.links = LinkStates(link_files, link_dir)
        # Probes without a seed of their own draw from this counter: an agent's sequence of
        # probes is the same on every run.
        self._probes = 0
        self._calibrations = 0
        self.attestor = attestor
        self.executor = NodeExecutor(node.spec)
        self.started = time.time()
        self.programs_run = 0
        # Held per step (a chunk of shots, a calibration, a link probe); `_program` is held
        # for a whole program, so programs do not interleave but calibrations get in.
        self._qpu = asyncio.Lock()
        self._program = asyncio.Lock()
        self._results: OrderedDict[str, asyncio.Task[RunResult]] = OrderedDict()
        # Cancelled program ids, each with whether it was queued or running then.
        self._cancelled: OrderedDict[str, bool] = OrderedDict()
        # The program whose step is in a worker thread: it cannot be interrupted there, so a
        # cancel marks it in `_stopping` and it stops at its next step.
        self._stepping: str | None = None
        self._stopping: set[str] = set()
        # Long chunks run there instead (see qorch.qpu.simulation_process).
        self.simulation = SimulationProcess()
        self._in_child: str | None = None
        # Shots done and to do of each program not finished yet; the one holding `_program`.
        self._shots: dict[str, list[int]] = {}
        self._running: str | None = None
        self.first_chunk_shots = FIRST_CHUNK_SHOTS
        self.chunk_seconds = CHUNK_SECONDS
        self.qpu_wait_seconds = QPU_WAIT_SECONDS
        # Seconds per shot and unit of `_shot_cost`, from the last chunk simulated shot by
        # shot: it sizes an unseeded program's first chunk, saving the small pricing chunk.
        self._shot_rate: float | None = None
        # The same for one simulation of a run of all shots at once (a chunk that goes to
        # the simulation process when expected long): the last measured, or SIMULATION_RATE.
        self._simulation_rate = SIMULATION_RATE
        self.node_file = Path(node_file) if node_file is not None else None
        # Unset, so the first check reads the file: it may have changed since `node` was read.
        self._node_file_state: tuple[int, int, int] | str | None = None
        self.telemetry = AgentTelemetry.from_env(node)
        # The channel to other agents (LOCC wire cuts); `build_app` opens it.
        self.peers: PeerMessaging | None = None

    def close(self) -> None:
        """Stop the simulation process, if one started."""
        self.simulation.close()

    async def handle(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One channel call: its request read (a malformed one is a BadRequest naming the
        field, and the agent serves the next call as usual), served, its reply as sent."""
        self.refresh()
        request = parse_request(op, payload)
        self.telemetry.received(request)
        return (await self.serve(request)).wire()

    async def serve(self, request: AgentRequest) -> Message:
        match request:
            case RunRequest():
                return await self.run(request)
            case WaitRequest():
                return await self.wait(request)
            case CancelRequest():
                return self.cancel(request)
            case HealthRequest():
                return self.health()
            case CalibrateRequest():
                return await self.calibrate()
            case ProbeLinkRequest():
                return await self.probe_link(request)
            case EchoRequest():  # feed-forward latency probes between linked nodes
                return echo_reply(request)
            case AttestRequest():
                return await self.attest(request)
            case LinkLatencyRequest():
                return await self.link_latency(request)
            case _:
                assert_never(request)

    def health(self) -> HealthReply:
        return HealthReply(
            node=self.node.metadata.name,
            qubits=self.node.spec.qubits,
            programs_run=self.programs_run,
            busy=self._qpu.locked() or self._program.locked(),
            uptime_seconds=round(time.time() - self.started, 3),
        )

    async def attest(self, request: AttestRequest) -> AttestReply:
        if self.attestor is None:
            raise AgentError(ErrorCode.NO_TPM, f"node {self.node.metadata.name} runs without a TPM")
        return await self.attestor.attest(request)

    def refresh(self) -> None:
        """Take up the node file's manifest if the file changed since the last look.

        Called before every operation and every chunk of a program, hence a plain `stat`
        when nothing changed. A kubelet updates a mounted ConfigMap in place like this, so the
        node's noise can drift without a restart that would lose the programs in flight. A
        manifest that is invalid, or names another node, is ignored with one warning.
        """
        if self.node_file is None:
            return
        try:
            stat = os.stat(self.node_file)
        except OSError as exc:
            if self._node_file_state != "missing":
                self._node_file_state = "missing"
                log.warning("node file %s unreadable (%s): kept", self.node_file, exc.strerror)
            return
        state = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if state == self._node_file_state:
            return
        self._node_file_state = state
        try:
            from qorch.api.yamlload import load_file  # bounded: size, nesting, aliases

            node = QuantumNode.model_validate(load_file(self.node_file))
        except OSError as exc:
            return self._ignore_node_file(f"unreadable ({exc.strerror})")
        except yaml.YAMLError as exc:
            return self._ignore_node_file(f"not YAML or JSON ({type(exc).__name__})")
        except ValidationError as exc:
            # Locations only: the messages quote the input.
            where = ", ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors()[:5])
            return self._ignore_node_file(f"not a valid QuantumNode (at {where})")
        if node.metadata.name != self.node.metadata.name:
            return self._ignore_node_file(f"it names another node, {node.metadata.name!r}")
        if node == self.node:
            return
        try:
            executor = NodeExecutor(node.spec)
        except Exception as exc:
            return self._ignore_node_file(f"its node cannot be simulated ({type(exc).__name__})")
        self.node, self.executor = node, executor
        # The figures now describe the new noise until the next calibration measures it.
        self.telemetry.calibration = {
            k: v for k, v in declared_calibration(node).items() if v is not None
        }
        self.telemetry.write()
        log.info("node file %s reloaded", self.node_file)

    def _ignore_node_file(self, why: str) -> None:
        log.warning(
            "node file %s ignored: %s; node %s kept", self.node_file, why, self.node.metadata.name
        )

    def cancel(self, request: CancelRequest) -> CancelReply:
        """Stop programs: queued ones never run, a running one stops at its next chunk, and a
        `run` of any of these ids, now or later, fails with Cancelled. A program already
        finished is reported as such and its result kept."""
        cancelled: list[str] = []
        unknown: list[str] = []
        finished: list[str] = []
        for program_id in dict.fromkeys(request.program_ids):
            task = self._results.get(program_id)
            if (
                task is not None
                and task.done()
                and not task.cancelled()
                and task.exception() is None
                and program_id not in self._cancelled
            ):
                finished.append(program_id)
                continue
            live = task is not None and not task.done()
            known = self._cancelled.get(program_id, False) or live
            # Unknown ids are remembered too: a cancel may overtake its program's `run`.
            self._cancelled[program_id] = known
            self._cancelled.move_to_end(program_id)
            while len(self._cancelled) > CANCELLED_CACHE_SIZE:
                self._cancelled.popitem(last=False)
            (cancelled if known else unknown).append(program_id)
            if task is None or task.done():
                continue
            if self._stepping == program_id:
                self._stopping.add(program_id)
                if self._in_child == program_id:
                    self.simulation.kill()
            else:
                # Waiting for the QPU (or not started): it never gets it.
                task.cancel()
            log.info("program %s cancelled", program_id)
        return CancelReply(cancelled=cancelled, unknown=unknown, finished=finished)

    def calibration_pair(self) -> tuple[int, int] | None:
        """Qubits of the two-qubit calibration: the first coupled pair."""
        spec = self.node.spec
        if spec.qubits < 2:
            return None
        return (spec.coupling_map[0][0], spec.coupling_map[0][1]) if spec.coupling_map else (0, 1)

    @contextlib.asynccontextmanager
    async def _qpu_between_steps(self, what: str) -> AsyncIterator[None]:
        """The QPU for a calibration or a link probe: it waits for the chunk of shots that
        holds it, but not for a program that runs as one step (a noiseless one does, for
        hours perhaps). Kept waiting, the operator would time out and find the node
        unreachable, and move the very job that keeps it busy."""
        try:
            await asyncio.wait_for(self._qpu.acquire(), self.qpu_wait_seconds)
        except TimeoutError:
            msg = f"{what} skipped: a program step holds the QPU (the last figures stand)"
            raise AgentError(ErrorCode.BUSY, msg) from None
        try:
            yield
        finally:
            self._qpu.release()

    async def calibrate(self) -> CalibrationReply:
        """Run the calibration circuits under this node's noise; report the figures."""
        started = time.perf_counter()
        circuits = calibration_circuits(self.node.spec.qubits, self.calibration_pair())
        # Seeded from a counter, as probes are: an agent's calibrations are the same on every
        # run, so the figures planned with (qorch.pipeline.figures) are too.
        async with self._qpu_between_steps("calibration"):
            seed = self._calibrations * 1_000_003  # counted once run: a skipped one is not
            self._calibrations += 1
            counts = await asyncio.to_thread(
                self.executor.run_all, list(circuits.values()), CALIBRATION_SHOTS, seed, 0
            )
        result = figures(dict(zip(circuits, counts, strict=True)), self.node.spec.qubits)
        self.telemetry.set_calibration(
            fidelity=result.fidelity,
            singleQubitError=result.single_qubit_error,
            twoQubitError=result.two_qubit_error,
            readoutError=result.readout_error,
        )
        return CalibrationReply(
            node=self.node.metadata.name,
            readout_error=result.readout_error,
            readout_error_0to1=result.readout_error_0to1,
            readout_error_1to0=result.readout_error_1to0,
            single_qubit_error=result.single_qubit_error,
            two_qubit_error=result.two_qubit_error,
            fidelity=result.fidelity,
            error_rate=result.error_rate,
            seconds=round(time.perf_counter() - started, 3),
        )

    async def probe_link(self, request: ProbeLinkRequest) -> ProbeLinkReply:
        """Generate and measure Bell pairs shared with a linked node (co-simulated here):
        of the link's physical state where this agent holds it (its link file), else of
        the figures the request carries, as the reply's `source` says."""
        a, b = request.readout_errors
        state = self.links.spec(request.link) if request.link is not None else None
        fidelity, success, rate = (
            (state.fidelity, state.success_probability, state.generation_rate_hz)
            if state is not None
            else (request.fidelity, request.success_probability, request.generation_rate_hz)
        )
        async with self._qpu_between_steps("link probe"):
            seed = request.seed if request.seed is not None else self._probes
            self._probes += 1
            result = await asyncio.to_thread(
                probe, fidelity, success, rate, request.pairs, (a, b), seed
            )
        return ProbeLinkReply(
            measured_fidelity=round(result.measured_fidelity, 6),
            fidelity_std_error=round(result.fidelity_std_error, 6),
            attempts=result.attempts,
            successes=result.successes,
            mean_generation_seconds=result.mean_generation_seconds,
            agreements=result.agreements,
            source="request" if state is None else "linkState",
        )

    async def link_latency(self, request: LinkLatencyRequest) -> LinkLatencyReply:
        """Measure the classical path to a linked node's agent over the peer channel, or
        admit that agent's echoes (qorch.qpu.peer)."""
        if self.peers is None:
            raise AgentError(ErrorCode.PROGRAM_REJECTED, "this agent serves no peer channel")
        keys = decode_keys(request.peer_public_keys, "link_latency.peerPublicKeys")
        if request.role == "answer":
            self.peers.answer_echoes(request.exchange, keys, request.wait_seconds)
            return LinkLatencyReply()
        assert request.peer_endpoint is not None  # the request's validator
        samples = await self.peers.measure_latency(
            request.exchange, request.peer_endpoint, keys, request.samples, request.wait_seconds
        )
        return LinkLatencyReply(samples_seconds=samples)

    async def run(self, request: RunRequest) -> RunResult | RunProgress:
        """Run a program (once per id) and return its result. With `waitSeconds`, answer
        after at most that long: the result if the program is done by then, else its
        progress (see `progress`); `wait` then follows it with short calls."""
        program_id = request.program_id
        if program_id in self._cancelled:
            raise _cancelled(program_id)
        task = self._results.get(program_id)
        if task is None:
            task = asyncio.create_task(self._execute(request))
            task.add_done_callback(_retrieve)
            self._results[program_id] = task
            while len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        return await self._outcome(program_id, task, _wait_seconds(request))

    async def wait(self, request: WaitRequest) -> RunResult | RunProgress:
        """A program sent earlier by `run`: its result once done, else after `waitSeconds`
        its progress. An id this agent does not hold (it restarted, or the result was
        evicted) is an UnknownProgram error, so the caller knows the program is lost."""
        program_id = request.program_id
        if program_id in self._cancelled:
            raise _cancelled(program_id)
        task = self._results.get(program_id)
        if task is None:
            raise AgentError(
                ErrorCode.UNKNOWN_PROGRAM, f"program {program_id} is not held by this agent"
            )
        return await self._outcome(program_id, task, _wait_seconds(request))

    def progress(self, program_id: str) -> RunProgress:
        """A program not finished yet: whether it is Queued behind another program or
        Running, and its shots done so far out of all its circuits' shots."""
        done, total = self._shots.get(program_id, (0, 0))
        return RunProgress(
            program_id=program_id,
            node=self.node.metadata.name,
            state="Running" if self._running == program_id else "Queued",
            shots_done=done,
            shots_total=total,
        )

    async def _outcome(
        self, program_id: str, task: asyncio.Task[RunResult], wait: float | None
    ) -> RunResult | RunProgress:
        try:
            if wait is None:
                # shield: a client that disconnects must not cancel the run others may await.
                return await asyncio.shield(task)
            # asyncio.wait neither cancels the task on timeout nor when this caller goes away.
            await asyncio.wait([task], timeout=wait)
            if not task.done():
                return self.progress(program_id)
            return task.result()
        except AgentError:
            if self._results.get(program_id) is task:
                self._results.pop(program_id)  # a refused program may be re-sent corrected
            raise
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this caller went away; the program carries on
            if self._results.get(program_id) is task:
                self._results.pop(program_id)
            raise _cancelled(program_id) from None

    async def _execute(self, request: RunRequest) -> RunResult:
        """One circuit (`circuit`) or a batch (`circuits`, e.g. cut subexperiments); with
        `noise`, a program spanning several nodes, co-simulated under that composite noise."""
        program_id, shots = request.program_id, request.shots
        noise, seed = request.noise, request.seed
        circuits = _circuits(request)
        if request.locc is not None:
            return await self._locc(request, circuits)
        if noise is not None:
            try:
                parse_description(noise)  # refuse a malformed description up front
            except ValueError as exc:
                raise AgentError(ErrorCode.BAD_REQUEST, f"run.noise: {exc}") from exc
        started = time.perf_counter()
        results = []
        self._shots[program_id] = [0, shots * len(circuits)]
        try:
            async with self._program:
                self._running = program_id
                for index, circuit in enumerate(circuits):
                    # Aer seeds shot i with seed + i: space the seeds so circuits stay independent.
                    circuit_seed = None if seed is None else seed + index * 1_000_003
                    results.append(
                        await self._run_one(program_id, circuit, shots, circuit_seed, noise)
                    )
                if program_id in self._stopping:  # cancelled during its last chunk
                    raise _cancelled(program_id)
        finally:
            self._stopping.discard(program_id)
            self._shots.pop(program_id, None)
            if self._running == program_id:
                self._running = None
        self.programs_run += 1
        elapsed = time.perf_counter() - started
        self.telemetry.program_finished(
            shots=shots * len(circuits),
            transpile_seconds=sum(r.transpile_seconds for r in results),
            simulate_seconds=sum(r.simulate_seconds for r in results),
        )
        batch = request.circuits is not None
        return RunResult(
            program_id=program_id,
            node=self.node.metadata.name,
            shots=shots,
            transpile_seconds=round(sum(r.transpile_seconds for r in results), 6),
            simulate_seconds=round(elapsed, 6),
            results=[r.counts for r in results] if batch else None,
            counts=None if batch else results[0].counts,
        )

    async def _locc(self, request: RunRequest, circuits: list[QuantumCircuit]) -> RunResult:
        """One side of an LOCC wire cut, its messages straight to or from the peer agent."""
        if self.peers is None:
            raise AgentError(ErrorCode.PROGRAM_REJECTED, "this agent serves no peer channel")
        program_id = request.program_id

        async def run(circuit: QuantumCircuit, shots: int, seed: int | None) -> dict[str, int]:
            return (await self._run_one(program_id, circuit, shots, seed, None)).counts

        result = await self.peers.execute(
            request, circuits, self.node.metadata.name, self._program, run
        )
        self.programs_run += 1
        self.telemetry.program_finished(shots=request.shots * len(circuits))
        return result

    async def _run_one(
        self,
        program_id: str,
        circuit: QuantumCircuit,
        shots: int,
        seed: int | None,
        noise: dict[str, Any] | None,
    ) -> Execution:
        """One circuit, transpiled once, its shots sampled in chunks."""
        sample: Callable[[int, int | None], Sample]
        try:
            if noise is None:
                self.executor.check(circuit, shots)

                executor = self.executor
                as_written = executor.runs_as_written(circuit)

                def compile_() -> tuple[NodeExecutor, QuantumCircuit, float]:
                    begun = time.perf_counter()
                    compiled = executor.compile(circuit, seed)
                    return executor, compiled, time.perf_counter() - begun

                if as_written:
                    compiler, compiled, transpile_seconds = executor, circuit, 0.0
                else:
                    compiler, compiled, transpile_seconds = await self._step(program_id, compile_)
                # One simulation (or one per branch) serves every shot: a first small chunk
                # would cost a second.
                cost = _shot_cost(compiled)
                at_once = compiler.samples_at_once(compiled, shots)
                first = shots if at_once else self._first_chunk(shots, seed, cost)

                def executor_now() -> NodeExecutor:
                    # A reloaded manifest's noise applies from the next chunk on; a changed
                    # target would not fit the compiled circuit, so it waits for the next
                    # program, as does any change to a circuit run as written (one chunk,
                    # whose gates a noise model of the node's gates would not all reach).
                    current = self.executor
                    if as_written or not current.same_target(compiler):
                        return compiler
                    return current

                def sample(shots: int, seed: int | None) -> Sample:
                    return executor_now().sample(compiled, shots, seed)

                async def sample_in_child(shots: int, seed: int | None) -> Sample:
                    return await self.simulation.sample(executor_now(), compiled, shots, seed)

                def work_units(shots: int) -> float:
                    return cost * compiler.simulations(compiled, shots)

                # Chunks simulated shot by shot are sized to CHUNK_SECONDS: only a chunk of
                # all the shots may take long.
                in_child = (work_units, sample_in_child) if at_once else None

            else:
                if circuit.num_qubits > MAX_COSIMULATED_QUBITS:
                    raise ProgramRejected(
                        f"co-simulated program has {circuit.num_qubits} qubits; at most"
                        f" {MAX_COSIMULATED_QUBITS} fit one agent's statevector"
                    )
                # Under ideal composite noise the resets are dropped and Aer samples all shots
                # from one statevector (see simulate_composite); otherwise shot by shot.
                sampled = build_composite_noise_model(parse_description(noise)).is_ideal()
                transpile_seconds = 0.0
                first, cost = self.first_chunk_shots, None
                in_child = None

                def sample(shots: int, seed: int | None) -> Sample:
                    begun = time.perf_counter()
                    counts = simulate_composite(circuit, noise, shots, seed)
                    return Sample(counts, time.perf_counter() - begun, sampled)

            counts, seconds = await self._sample_in_chunks(
                program_id, sample, shots, seed, first, cost, in_child
            )
            return Execution(counts, transpile_seconds, seconds)
        except AgentError:
            raise
        except ProgramRejected as exc:
            raise AgentError(ErrorCode.PROGRAM_REJECTED, str(exc)) from exc
        except Exception as exc:
            # The type only: an error's text may quote the circuit.
            log.warning("program %s failed: %s", program_id, type(exc).__name__)
            self.telemetry.program_failed()
            raise AgentError(ErrorCode.EXECUTION_FAILED, str(exc)) from exc

    async def _sample_in_chunks(
        self,
        program_id: str,
        sample: Callable[[int, int | None], Sample],
        shots: int,
        seed: int | None,
        first: int,
        cost: float | None = None,
        in_child: InChild | None = None,
    ) -> tuple[dict[str, int], float]:
        """All `shots`, a chunk per step, the first of `first` shots; the counts and the
        seconds spent simulating. With the circuit's `cost`, chunks simulated shot by shot
        update the agent's rate. With `in_child` (a chunk's work in units of `_shot_cost`, and
        its sampler in the simulation process), a chunk expected beyond IN_PROCESS_SECONDS
        runs there."""
        counts: Counter[str] = Counter()
        seconds = 0.0
        done = 0
        size = min(shots, first)
        while True:
            # Aer seeds shot i of a run with seed + i, so counting on from the shots done
            # keeps the chunks' shots distinct, and a run simulated shot by shot gets the
            # same counts however it is split.
            chunk_seed = None if seed is None else seed + done
            units = in_child[0](size) if in_child is not None else 0.0
            if in_child is not None and self._simulation_rate * units > IN_PROCESS_SECONDS:
                child_work = functools.partial(in_child[1], size, chunk_seed)
                chunk = await self._step_in_child(program_id, child_work)
            else:
                chunk = await self._step(program_id, functools.partial(sample, size, chunk_seed))
            if units > 0 and chunk.seconds > 0:
                self._simulation_rate = max(SIMULATION_RATE, chunk.seconds / units)
            counts.update(chunk.counts)
            seconds += chunk.seconds
            if cost and not chunk.sampled and chunk.seconds > 0:
                self._shot_rate = chunk.seconds / (size * cost)
            done += size
            if program_id in self._shots:
                self._shots[program_id][0] += size
            if done >= shots:
                return dict(counts), seconds
            size = next_chunk_shots(
                shots - done,
                size,
                chunk.seconds,
                sampled=chunk.sampled,
                seeded=seed is not None,
                target_seconds=self.chunk_seconds,
            )

    def _first_chunk(self, shots: int, seed: int | None, cost: float) -> int:
        """The first chunk of a circuit simulated shot by shot: about CHUNK_SECONDS at the
        rate of earlier chunks, else small, to price the rest. A seeded program always starts
        small: its split, and so its counts, must not depend on the agent's history."""
        if seed is not None or self._shot_rate is None:
            return min(shots, self.first_chunk_shots)
        estimate = int(self.chunk_seconds / (self._shot_rate * cost))
        return max(min(shots, self.first_chunk_shots), min(shots, estimate))

    async def _step_in_child(self, program_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """`_step`, its work in the simulation process: a cancel kills it there."""
        async with self._qpu:
            if program_id in self._stopping:
                raise _cancelled(program_id)
            self.refresh()
            self._stepping = self._in_child = program_id
            try:
                return await work()
            except SimulationInterrupted:
                if program_id in self._stopping:
                    raise _cancelled(program_id) from None
                raise
            finally:
                self._stepping = self._in_child = None

    async def _step(self, program_id: str, work: Callable[[], T]) -> T:
        """One step of a program on the QPU, in a worker thread, behind whoever holds the QPU.
        A program cancelled meanwhile goes no further."""
        async with self._qpu:
            if program_id in self._stopping:
                raise _cancelled(program_id)
            self.refresh()
            self._stepping = program_id
            try:
                return await asyncio.to_thread(work)
            finally:
                self._stepping = None


def _shot_cost(compiled: QuantumCircuit) -> float:
    """What one shot of a circuit simulated on its own costs, up to a rate: its operations
    times its statevector's size."""
    return float(max(1, len(compiled.data)) * 2**compiled.num_qubits)


def _cancelled(program_id: str) -> AgentError:
    return AgentError(ErrorCode.CANCELLED, f"program {program_id} was cancelled")


def _circuits(request: RunRequest) -> list[QuantumCircuit]:
    """The program's circuits decoded; a BadRequest names the one that is not a circuit."""
    decoded = []
    for index, data in enumerate(request.encoded):
        try:
            decoded.append(decode_circuit(data))
        except ValueError as exc:
            where = "circuit" if request.circuits is None else f"circuits.{index}"
            raise AgentError(ErrorCode.BAD_REQUEST, f"run.{where}: {exc}") from exc
    return decoded


def _wait_seconds(request: RunRequest | WaitRequest) -> float | None:
    """`waitSeconds` of a run or wait, at most MAX_WAIT_SECONDS; None when absent (the
    call then answers only with the program's result)."""
    wait = request.wait_seconds
    return None if wait is None else min(wait, MAX_WAIT_SECONDS)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a program's outcome as seen: every client awaiting it may have gone away."""
    if not task.cancelled():
        task.exception()


def build_app(
    agent: QpuAgent, keys: AgentKeys, server_limits: ServerLimits | None = None
) -> web.Application:
    """Programs and results only over the authenticated channel; /healthz says nothing more
    than that the process is up, for the kubelet's probes. Serve it with
    `server_limits.runner_options()` (see `serve`). The channel's keys follow their files
    (a key rotation without a restart, see qorch.qpu.agent_keys)."""
    app = web.Application()
    server = ChannelServer(
        keys.identity,
        keys.trusted,
        agent.telemetry.traced(agent.handle),
        server_limits=server_limits,
        refresh_keys=keys.refresh,
    )
    keys.attach(server)
    agent.telemetry.attach(server).add_routes(app)
    agent.peers = PeerMessaging(lambda: keys.identity, agent.telemetry, server_limits)
    agent.peers.add_routes(app)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.add_routes([web.get("/healthz", healthz)])
    return app


async def serve(
    node: QuantumNode,
    host: str,
    port: int,
    keys: AgentKeys,
    node_file: str | Path | None = None,
    attestor: Attestor | None = None,
    link_files: Sequence[str | Path] = (),
    link_dir: str | Path | None = None,
) -> None:
    """Serve until SIGTERM; prints the bound URL so a launcher can find a port-0 agent.
    With `node_file`, the node follows changes to that manifest (see `QpuAgent.refresh`),
    and its links to their `link_files` and the files in `link_dir`
    (qorch.qpu.link_state); the keys follow their files (see qorch.qpu.agent_keys); with
    `attestor`, it answers `attest` challenges."""
    if not keys.trusted:
        raise ValueError("no trusted operator key: the agent would answer nobody")
    agent = QpuAgent(
        node, node_file=node_file, attestor=attestor, link_files=link_files, link_dir=link_dir
    )
    agent.telemetry.configure_tracing()  # here, not in QpuAgent: in-process agents keep theirs
    noiseless = agent.executor.noiseless_gates
    if node.spec.qubits >= (WARM_SIMULATION_QUBITS if noiseless else WARM_NOISY_QUBITS):
        # Listening means ready to run at speed: a job's first step, or its planning on the
        # same cores, would otherwise share them with the process's start.
        warming = asyncio.ensure_future(agent.simulation.warm(agent.executor.spec))
        warming.add_done_callback(_retrieve)  # a failed start shows again at the first step
        await asyncio.wait([warming], timeout=WARM_WAIT_SECONDS)
    limits = ServerLimits()
    runner = web.AppRunner(
        build_app(agent, keys, server_limits=limits),
        access_log=None,
        # On SIGTERM a call still served (a program's step) ends with the agent, as on a
        # crash: the operator moves its job. It gets a moment, not aiohttp's 60 s.
        shutdown_timeout=STOP_GRACE_SECONDS,
        **limits.runner_options(),
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=limits.listen_backlog)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # In its pod the agent is PID 1, for which the kernel drops a signal that has no handler:
    # without these, deleting the pod would wait out its grace period until SIGKILL. Before
    # the line that says it listens: a launcher may stop it at once after.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"qpu-agent {node.metadata.name} listening on http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
        log.info("qpu-agent %s stopping", node.metadata.name)
    finally:
        agent.close()  # first: a step in the simulation process ends now
        await runner.cleanup()
        tracing.shutdown_tracing()  # the spans still batched, to the spool or OTLP
