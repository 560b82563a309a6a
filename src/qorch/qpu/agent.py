"""The QPU agent: a node's simulated processor behind an async HTTP server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web
from qiskit import QuantumCircuit

from qorch.api.quantum_node import QuantumNode
from qorch.channel.http import ChannelServer
from qorch.channel.identity import Identity
from qorch.telemetry.agent import AgentTelemetry
from qorch.telemetry.feedforward import echo_reply

from .calibration import SHOTS as CALIBRATION_SHOTS
from .calibration import calibration_circuits, figures
from .circuits import decode_circuit
from .composite_noise import MAX_COSIMULATED_QUBITS, parse_description, simulate_composite
from .executor import Execution, NodeExecutor, ProgramRejected
from .link_probe import probe
from .transport import AgentError

log = logging.getLogger(__name__)

# Results kept for idempotent re-delivery of a program after a pipeline restart.
RESULT_CACHE_SIZE = 256


class QpuAgent:
    """Runs programs one at a time, as a processor does; a repeated program id is not re-run."""

    def __init__(self, node: QuantumNode) -> None:
        self.node = node
        self.executor = NodeExecutor(node.spec)
        self.started = time.time()
        self.programs_run = 0
        self._qpu = asyncio.Lock()
        self._results: OrderedDict[str, asyncio.Task[dict[str, Any]]] = OrderedDict()
        self.telemetry = AgentTelemetry.from_env(node)

    async def handle(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        if op == "health":
            return self.health()
        if op == "run":
            return await self.run(payload)
        if op == "calibrate":
            return await self.calibrate()
        if op == "echo":  # feed-forward latency probes between linked nodes
            return echo_reply(payload)
        if op == "probe_link":
            return await self.probe_link(payload)
        raise AgentError("UnknownOperation", f"unknown operation {op!r}")

    def health(self) -> dict[str, Any]:
        return {
            "node": self.node.metadata.name,
            "qubits": self.node.spec.qubits,
            "programsRun": self.programs_run,
            "busy": self._qpu.locked(),
            "uptimeSeconds": round(time.time() - self.started, 3),
        }

    def calibration_pair(self) -> tuple[int, int] | None:
        """Qubits of the two-qubit calibration: the first coupled pair."""
        spec = self.node.spec
        if spec.qubits < 2:
            return None
        return (spec.coupling_map[0][0], spec.coupling_map[0][1]) if spec.coupling_map else (0, 1)

    async def calibrate(self) -> dict[str, Any]:
        """Run the calibration circuits under this node's noise; report the figures."""
        started = time.perf_counter()
        circuits = calibration_circuits(self.node.spec.qubits, self.calibration_pair())
        counts: dict[str, dict[str, int]] = {}
        async with self._qpu:
            for name, circuit in circuits.items():
                execution = await asyncio.to_thread(
                    self.executor.run, circuit, CALIBRATION_SHOTS, None, 0
                )
                counts[name] = execution.counts
        result = figures(counts, self.node.spec.qubits)
        self.telemetry.set_calibration(
            fidelity=result.fidelity,
            singleQubitError=result.single_qubit_error,
            twoQubitError=result.two_qubit_error,
            readoutError=result.readout_error,
        )
        return {
            "node": self.node.metadata.name,
            "readoutError": result.readout_error,
            "singleQubitError": result.single_qubit_error,
            "twoQubitError": result.two_qubit_error,
            "fidelity": result.fidelity,
            "errorRate": result.error_rate,
            "seconds": round(time.perf_counter() - started, 3),
        }

    async def probe_link(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Generate and measure Bell pairs shared with a linked node (co-simulated here)."""
        try:
            args = (
                float(payload["fidelity"]),
                float(payload["successProbability"]),
                float(payload["generationRateHz"]),
                int(payload["pairs"]),
                tuple(float(r) for r in payload.get("readoutErrors", (0.0, 0.0)))[:2],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentError(
                "BadRequest", f"probe_link needs numeric link properties: {exc}"
            ) from None
        if not (
            0.25 < args[0] <= 1 and 0 < args[1] <= 1 and args[2] > 0 and 0 < args[3] <= 100_000
        ):
            raise AgentError("BadRequest", "link properties out of range")
        async with self._qpu:
            result = await asyncio.to_thread(probe, *args)  # type: ignore[arg-type]
        return {
            "measuredFidelity": round(result.measured_fidelity, 6),
            "fidelityStdError": round(result.fidelity_std_error, 6),
            "attempts": result.attempts,
            "successes": result.successes,
            "meanGenerationSeconds": result.mean_generation_seconds,
        }

    async def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        program_id = payload.get("programId")
        if not isinstance(program_id, str) or not program_id:
            raise AgentError("BadRequest", "programId must be a non-empty string")
        task = self._results.get(program_id)
        if task is None:
            task = asyncio.create_task(self._execute(program_id, payload))
            self._results[program_id] = task
            while len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        try:
            # shield: a client that disconnects must not cancel the run others may await.
            return await asyncio.shield(task)
        except AgentError:
            self._results.pop(program_id, None)  # a refused program may be re-sent corrected
            raise

    async def _execute(self, program_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One circuit (`circuit`) or a batch (`circuits`, e.g. cut subexperiments); with
        `noise`, a program spanning several nodes, co-simulated under that composite noise."""
        try:
            encoded = payload.get("circuits") or [payload.get("circuit", "")]
            circuits = [decode_circuit(str(c)) for c in encoded]
            shots = int(payload.get("shots", 0))
            noise = payload.get("noise")
            if noise is not None:
                parse_description(noise)  # refuse a malformed description up front
        except (ValueError, TypeError) as exc:
            raise AgentError("BadRequest", str(exc)) from exc
        seed = payload.get("seed")
        started = time.perf_counter()
        results = []
        async with self._qpu:
            for index, circuit in enumerate(circuits):
                # Aer seeds shot i with seed + i: space the seeds so circuits stay independent.
                circuit_seed = None if seed is None else int(seed) + index * 1_000_003
                results.append(await self._run_one(program_id, circuit, shots, circuit_seed, noise))
        self.programs_run += 1
        elapsed = time.perf_counter() - started
        self.telemetry.program_finished(
            shots=shots * len(circuits),
            transpile_seconds=sum(r.transpile_seconds for r in results),
            simulate_seconds=sum(r.simulate_seconds for r in results),
        )
        reply: dict[str, Any] = {
            "programId": program_id,
            "node": self.node.metadata.name,
            "shots": shots,
            "transpileSeconds": round(sum(r.transpile_seconds for r in results), 6),
            "simulateSeconds": round(elapsed, 6),
        }
        if "circuits" in payload:
            reply["results"] = [r.counts for r in results]
        else:
            reply["counts"] = results[0].counts
        return reply

    async def _run_one(
        self,
        program_id: str,
        circuit: QuantumCircuit,
        shots: int,
        seed: int | None,
        noise: dict[str, Any] | None,
    ) -> Execution:
        try:
            if noise is None:
                return await asyncio.to_thread(self.executor.run, circuit, shots, seed)
            if circuit.num_qubits > MAX_COSIMULATED_QUBITS:
                raise ProgramRejected(
                    f"co-simulated program has {circuit.num_qubits} qubits; at most"
                    f" {MAX_COSIMULATED_QUBITS} fit one agent's statevector"
                )
            begun = time.perf_counter()
            counts = await asyncio.to_thread(simulate_composite, circuit, noise, shots, seed)
            return Execution(counts, 0.0, time.perf_counter() - begun)
        except ProgramRejected as exc:
            raise AgentError("ProgramRejected", str(exc)) from exc
        except Exception as exc:
            # The type only: an error's text may quote the circuit.
            log.warning("program %s failed: %s", program_id, type(exc).__name__)
            self.telemetry.program_failed()
            raise AgentError("ExecutionFailed", str(exc)) from exc


def build_app(agent: QpuAgent, identity: Identity, trusted: list[bytes]) -> web.Application:
    """Programs and results only over the authenticated channel; /healthz says nothing more
    than that the process is up, for the kubelet's probes."""
    app = web.Application()
    server = ChannelServer(identity, trusted, agent.telemetry.traced(agent.handle))
    agent.telemetry.attach(server).add_routes(app)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.add_routes([web.get("/healthz", healthz)])
    return app


async def serve(
    node: QuantumNode, host: str, port: int, identity: Identity, trusted: list[bytes]
) -> None:
    """Serve until cancelled; prints the bound URL so a launcher can find a port-0 agent."""
    if not trusted:
        raise ValueError("no trusted operator key: the agent would answer nobody")
    agent = QpuAgent(node)
    agent.telemetry.configure_tracing()  # here, not in QpuAgent: in-process agents keep theirs
    runner = web.AppRunner(build_app(agent, identity, trusted), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"qpu-agent {node.metadata.name} listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
