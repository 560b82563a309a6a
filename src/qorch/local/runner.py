"""`qorch run`: the same pipeline as the operator, over an in-memory store and local agents."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qorch.api import TERMINAL_PHASES, DistributedJob, EntanglementLink, QuantumNode
from qorch.api.manifests import Manifests
from qorch.api.phases import JobPhases, NodePhases
from qorch.channel.identity import Identity
from qorch.import_collector import imports_then_freeze
from qorch.settings import Settings

from .agents import AgentProcess, Child, agent_threads, fork
from .world import LocalWorld, ref

if TYPE_CHECKING:
    from qorch.pipeline.job import JobPipeline, PipelineSettings

# The pipeline (Qiskit, Aer, the planner: a second of imports) is imported by `_run` once
# the agents are starting, which take about as long to import theirs on the other cores;
# the functions below import what they use of it from there.

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class Progress:
    """Timestamped progress lines for humans, on stderr when stdout carries JSON."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.t0 = time.perf_counter()

    def __call__(self, what: str, message: str) -> None:
        elapsed = time.perf_counter() - self.t0
        print(f"[{elapsed:7.2f}s] {what:<28} {message}", file=self.stream, flush=True)


class _Waits:
    """Jobs still moving, and how many of them wait for capacity: when every job left waits
    and no reservation changes for a whole wait, none will ever start."""

    def __init__(self, jobs: int) -> None:
        self.active = jobs
        self.waiting = 0


async def _drive(
    job: DistributedJob, pipeline: JobPipeline, progress: Progress, waits: _Waits
) -> None:
    from qorch.pipeline.job import suspended

    name = f"djob/{job.metadata.name}"
    while job.status.phase not in TERMINAL_PHASES:
        before = job.status.phase
        version = pipeline.reservations.version
        result = await pipeline.step_or_fail(job)  # a bug fails this job, not the run
        job.status = result.status
        if job.status.phase != before:
            progress(name, f"{job.status.phase:<10} {job.status.message}")
        if suspended(job.status):
            break  # held by spec.suspend: nothing in this run will resume it
        if job.status.phase == before and result.requeue_after is not None:
            waits.waiting += 1
            changed = await pipeline.reservations.changed(
                result.requeue_after, since=version, until=result.until
            )
            waits.waiting -= 1
            # Every job left waits and nothing moved since this one planned: nothing will
            # free capacity.
            if not changed and waits.waiting + 1 >= waits.active:
                job.status = pipeline.abandon(job, "no job is left to free capacity").status
                progress(name, f"{job.status.phase:<10} {job.status.message}")
                break
    waits.active -= 1


def _summary(jobs: list[DistributedJob], stream: TextIO) -> None:
    for job in jobs:
        s = job.status
        line = f"{job.metadata.name}: {s.phase}"
        if s.plan:
            line += f"  strategy={s.plan.strategy} nodes={s.plan.nodes}"
            if s.plan.estimated_fidelity is not None:
                line += f" estimatedFidelity={s.plan.estimated_fidelity:.4f}"
        v = s.result.verification if s.result else None
        if v and v.hellinger_fidelity is not None:
            line += f"  hellingerFidelity={v.hellinger_fidelity:.4f} (threshold {v.threshold:.4f})"
        elif v and v.absolute_error is not None:
            line += f"  absoluteError={v.absolute_error:.4f} (threshold {v.threshold:.4f})"
        m = s.result.mitigated if s.result else None
        if m and m.verification and m.verification.hellinger_fidelity is not None:
            line += f"  mitigated={m.verification.hellinger_fidelity:.4f}"
        elif m and m.verification and m.verification.absolute_error is not None:
            line += f"  mitigatedAbsoluteError={m.verification.absolute_error:.4f}"
        elif m and m.method.startswith("unavailable"):
            line += f"  mitigation {m.method}"
        if s.reroutes:
            line += "  rerouted from " + ",".join(r.resource for r in s.reroutes)
        print(line, file=stream)
        if s.phase != JobPhases.SUCCEEDED:
            print(f"  reason: {s.message}", file=stream)
        elif s.result and s.result.counts:
            top = sorted(s.result.counts.items(), key=lambda kv: -kv[1])[:8]
            print("  counts: " + ", ".join(f"{k}={v}" for k, v in top), file=stream)
        elif s.result and s.result.expectation_values is not None:
            pairs = zip(
                job.spec.observables or [],
                s.result.expectation_values,
                s.result.standard_errors or [],
                strict=False,
            )
            print("  " + ", ".join(f"<{o}>={v:+.4f}±{e:.4f}" for o, v, e in pairs), file=stream)


class EmbeddedControlPlane:
    """Agents on loopback for the `aer` nodes, an in-memory store, the shared pipeline."""

    def __init__(self, world: LocalWorld, workdir: Path, progress: Progress) -> None:
        self.world = world
        self.workdir = workdir  # keys and agent telemetry; deleted at the end of the run
        self.progress = progress
        self.agents: list[AgentProcess] = []
        self._spawned: list[tuple[QuantumNode, Child]] = []
        self._spawning = False
        self.observed = False
        self.settings = Settings.from_env()  # the operator's timer intervals, QORCH_*

    def telemetry_dir(self, node: QuantumNode) -> Path:
        return self.workdir / "telemetry" / ".".join(ref(node))

    def link_file(self, link: EntanglementLink) -> Path:
        """Where the agents of the link's nodes read its physical state: the manifest as
        declared at start; change it to make the simulated link drift."""
        return self.workdir / "links" / (".".join(ref(link)) + ".json")

    def _link_files(self, node: QuantumNode) -> list[Path]:
        out = []
        for link in self.world.links(node.metadata.namespace):
            if node.metadata.name in link.spec.nodes:
                path = self.link_file(link)
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    manifest = link.model_copy(update={"status": None})
                    path.write_text(manifest.model_dump_json(by_alias=True, exclude_none=True))
                out.append(path)
        return out

    async def spawn_agents(self) -> None:
        """Start one agent process per `aer` node, each with a fresh ML-DSA-65 identity;
        `start_agents` waits for them to listen."""
        if self._spawning:
            return
        self._spawning = True
        aer = [n for n in self.world.all_nodes() if n.spec.backend.type == "aer"]
        self.progress("control-plane", f"starting {len(aer)} QPU agent(s) on loopback")
        _, operator_pub = self.world.connections.identity.save(self.workdir / "operator")
        threads = agent_threads(len(aer))
        for node in aer:
            identity = Identity.generate()
            key_file, _ = identity.save(self.workdir / ".".join(ref(node)))
            self.world.node_keys[ref(node)] = identity.public_key
            proc = await fork(
                node,
                key_file,
                [operator_pub],
                self.telemetry_dir(node),
                threads=threads,
                link_files=self._link_files(node),
            )
            self._spawned.append((node, proc))

    async def start_agents(self) -> list[str]:
        """The agents `spawn_agents` started (it is called if nobody did), once they
        listen; errors if any."""
        await self.spawn_agents()
        started = await asyncio.gather(
            *(AgentProcess.adopt(node, proc) for node, proc in self._spawned),
            return_exceptions=True,
        )
        self.agents = [a for a in started if isinstance(a, AgentProcess)]
        for agent in self.agents:
            self.world.endpoints[ref(agent.node)] = agent.endpoint
        return [str(a) for a in started if isinstance(a, BaseException)]

    async def observe(self, calibrate: bool = True, probe_links: bool = True) -> None:
        """Health, calibration and links, as the operator's timers would; transitions after
        the first look are reported."""
        from qorch.pipeline.resources import calibrate_node, check_link, check_node, observe_link

        world = self.world
        before = {ref(n): n.status.phase for n in world.all_nodes()}
        every = world.all_nodes()
        checked = await asyncio.gather(
            *(check_node(n, world.agent(n), world.endpoint_of(n), 0) for n in every)
        )
        for node, status in zip(every, checked, strict=True):
            node.status = status
        if calibrate:
            reachable = [n for n in world.all_nodes() if n.status.phase != NodePhases.UNREACHABLE]
            calibrated = await asyncio.gather(
                *(calibrate_node(n, world.agent(n)) for n in reachable)
            )
            for node, status in zip(reachable, calibrated, strict=True):
                node.status = status
        for node in world.all_nodes():
            if self.observed and before[ref(node)] == node.status.phase:
                continue
            cal = node.status.calibration
            figure = f" calibration fidelity {cal.fidelity:.4f}" if cal and cal.fidelity else ""
            self.progress(
                f"qn/{node.metadata.name}",
                f"{node.status.phase:<10} {world.endpoint_of(node)}{figure}",
            )
        for link in world.all_links():
            nodes = {n.metadata.name: n for n in world.nodes(link.metadata.namespace)}
            was = link.status.phase
            if probe_links:
                link.status = await observe_link(link, nodes, world.agent, world.address)
            else:
                link.status = check_link(link, nodes)
            if self.observed and was == link.status.phase:
                continue
            latency = link.status.feedforward_latency_microseconds
            detail = f" classical path {latency:.0f} us (measured)" if latency else ""
            self.progress(f"qlink/{link.metadata.name}", f"{link.status.phase}{detail}")
        self.observed = True

    async def watch(self, settings: Settings) -> None:
        """While jobs run: the health timer, with calibration and link probes at their own
        (longer) intervals, so a node that degrades mid-job pauses and re-routes its jobs."""
        clock = time.monotonic
        calibrated = probed = clock()
        while True:
            await asyncio.sleep(settings.node_check_seconds)
            calibrate = clock() - calibrated >= settings.calibration_seconds
            probe = clock() - probed >= settings.link_check_seconds
            await self.observe(calibrate=calibrate, probe_links=probe)
            calibrated = clock() if calibrate else calibrated
            probed = clock() if probe else probed

    async def run_jobs(self, settings: PipelineSettings) -> list[DistributedJob]:
        from qorch.pipeline.job import JobPipeline
        from qorch.pipeline.reservations import Reservations

        pipeline = JobPipeline(self.world, Reservations(), settings)
        classes = settings.priority_classes
        jobs = sorted(self.world.jobs.values(), key=lambda j: -classes.of(j).value)
        waits = _Waits(len(jobs))
        watcher = asyncio.create_task(self.watch(self.settings))
        try:
            await asyncio.gather(*(_drive(job, pipeline, self.progress, waits) for job in jobs))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            pipeline.exact_outputs.close()
        return jobs

    def write_metrics(self, path: str) -> str | None:
        """Write the run's metrics to `path`; what went wrong, if it could not."""
        from qorch.telemetry.snapshot import write_metrics_file

        dirs = {ref(a.node): self.telemetry_dir(a.node) for a in self.agents}
        try:
            write_metrics_file(path, dirs)
        except OSError as exc:
            return f"error: --metrics-out {path}: cannot write it: {exc.strerror or exc}"
        return None

    async def close(self) -> None:
        try:
            await self.world.close()
        finally:
            await asyncio.gather(*(a.stop() for a in self.agents))
            adopted = {id(a.proc) for a in self.agents}
            for _, proc in self._spawned:  # started, but stopped before they listened
                if id(proc) not in adopted and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()


# A signal that ends `qorch run` stops its agents and removes its folder (which holds their
# private keys) before the process exits. SIGKILL cannot be caught: the folder stays, and so
# do agents it spawned; those it forked end with it (`agents._run_forked`).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Unusable(Exception):
    """Raised by `run`'s `prepare` for arguments the run cannot use: exit 2, the message
    on stderr."""


#: The pipeline's modules, imported once the agents are starting (see the imports above).
PIPELINE_MODULES = (
    "qorch.pipeline.job",
    "qorch.pipeline.resources",
    "qorch.telemetry.snapshot",
    "qorch.telemetry.tracing",
)


async def run(
    manifests: Manifests,
    output: str = "text",
    out: TextIO | None = None,
    settings: PipelineSettings | None = None,
    metrics_out: str | None = None,
    identity: Identity | None = None,
    prepare: Callable[[], PipelineSettings] | None = None,
) -> int:
    """Run the manifests' jobs; `identity` is the operator key external agents trust (a
    fresh one when None: only the agents started here will answer). `prepare`, when given,
    makes the settings once the agents are starting (its imports take about as long as
    theirs); an `Unusable` it raises ends the run with exit 2. On SIGINT, SIGTERM or SIGHUP
    the run stops, cleans up and returns 128 + the signal's number."""
    out = out or sys.stdout  # this one now, not the one at import (tests capture it)
    progress = Progress(sys.stderr if output == "json" else out)
    loop = asyncio.get_running_loop()
    work = asyncio.ensure_future(
        _run(manifests, output, out, progress, prepare or (lambda: settings), metrics_out, identity)
    )
    received: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        if not received:  # later signals must not interrupt the clean-up itself
            work.cancel()
        received.append(signum)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await work
    except asyncio.CancelledError:
        if not (received and work.cancelled()):
            raise
        print(
            f"qorch run: stopped by {received[0].name}; agents stopped, temporary files removed",
            file=sys.stderr,
        )
        return 128 + received[0].value
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def _run(
    manifests: Manifests,
    output: str,
    out: TextIO,
    progress: Progress,
    prepare: Callable[[], PipelineSettings | None],
    metrics_out: str | None,
    identity: Identity | None,
) -> int:
    traced = False
    unwritten = None
    try:
        with tempfile.TemporaryDirectory(prefix="qorch-run-") as workdir:
            plane = EmbeddedControlPlane(
                LocalWorld(manifests, identity or Identity.generate()), Path(workdir), progress
            )
            try:
                await plane.spawn_agents()
                # While they start (the event loop waits: their output waits in its pipes).
                # Frozen after: a full pass of the collector walks them all (80 ms, in the
                # middle of a 20-qubit job's plan).
                with imports_then_freeze():
                    for module in PIPELINE_MODULES:
                        importlib.import_module(module)
                try:
                    settings = prepare()
                except Unusable as exc:
                    print(exc, file=sys.stderr)
                    return EXIT_UNUSABLE
                from qorch.pipeline.job import PipelineSettings, suspended
                from qorch.telemetry.tracing import configure_tracing

                configure_tracing("qorch-run")
                traced = True
                errors = await plane.start_agents()
                if errors:
                    for error in errors:
                        print(f"error: {error}", file=sys.stderr)
                    return EXIT_UNUSABLE
                await plane.observe()
                jobs = await plane.run_jobs(settings or PipelineSettings())
                if metrics_out:
                    unwritten = plane.write_metrics(metrics_out)
            finally:
                await plane.close()
    finally:
        if traced:
            from qorch.telemetry.tracing import shutdown_tracing

            shutdown_tracing()
    if output == "json":
        items = [job.model_dump(mode="json", by_alias=True, exclude_none=True) for job in jobs]
        json.dump(items, out, indent=2)
        out.write("\n")
    else:
        _summary(jobs, out)
    if unwritten:  # after the results, which are not lost with it
        print(unwritten, file=sys.stderr)
        return EXIT_UNUSABLE
    done = all(j.status.phase == JobPhases.SUCCEEDED or suspended(j.status) for j in jobs)
    return EXIT_OK if done else EXIT_FAILED
