"""`qorch run`: the same pipeline as the operator, over an in-memory store and local agents."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from qorch.api import TERMINAL_PHASES, DistributedJob
from qorch.api.manifests import ManifestError, load_manifests
from qorch.channel.identity import Identity
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.pipeline.resources import calibrate_node, check_link, check_node

from .agents import AgentProcess
from .world import LocalWorld, ref

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class Progress:
    """Timestamped progress lines for humans, on stderr when stdout carries JSON."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.t0 = time.perf_counter()

    def __call__(self, what: str, message: str) -> None:
        elapsed = time.perf_counter() - self.t0
        print(f"[{elapsed:7.2f}s] {what:<28} {message}", file=self.stream, flush=True)


async def _drive(job: DistributedJob, pipeline: JobPipeline, progress: Progress) -> None:
    name = f"djob/{job.metadata.name}"
    while job.status.phase not in TERMINAL_PHASES:
        before = job.status.phase
        result = await pipeline.step(job)
        job.status = result.status
        if job.status.phase != before:
            progress(name, f"{job.status.phase:<10} {job.status.message}")
        elif result.requeue_after is not None:
            await asyncio.sleep(result.requeue_after)


def _summary(jobs: list[DistributedJob], stream: TextIO) -> None:
    for job in jobs:
        s = job.status
        line = f"{job.metadata.name}: {s.phase}"
        if s.plan:
            line += f"  strategy={s.plan.strategy} nodes={s.plan.nodes}"
            if s.plan.estimated_fidelity is not None:
                line += f" estimatedFidelity={s.plan.estimated_fidelity:.4f}"
        v = s.result.verification if s.result else None
        if v and v.hellinger_fidelity is not None and v.threshold is not None:
            line += f"  hellingerFidelity={v.hellinger_fidelity:.4f} (threshold {v.threshold:.4f})"
        print(line, file=stream)
        if s.phase != "Succeeded":
            print(f"  reason: {s.message}", file=stream)
        elif s.result and s.result.counts:
            top = sorted(s.result.counts.items(), key=lambda kv: -kv[1])[:8]
            print("  counts: " + ", ".join(f"{k}={v}" for k, v in top), file=stream)


async def run(
    paths: Sequence[str],
    output: str = "text",
    out: TextIO = sys.stdout,
    settings: PipelineSettings | None = None,
) -> int:
    progress = Progress(sys.stderr if output == "json" else out)
    try:
        manifests = load_manifests(paths)
    except ManifestError as exc:
        print("error: unusable manifests:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_UNUSABLE
    operator = Identity.generate()
    world = LocalWorld(manifests, operator)
    aer = [n for n in world.all_nodes() if n.spec.backend.type == "aer"]
    progress("control-plane", f"starting {len(aer)} QPU agent(s) on loopback")
    # Fresh ML-DSA-65 identities for this run, in files only the agents read.
    keys = tempfile.TemporaryDirectory(prefix="qorch-keys-")
    _, operator_pub = operator.save(Path(keys.name) / "operator")
    starts = []
    for node in aer:
        identity = Identity.generate()
        key_file, _ = identity.save(Path(keys.name) / ".".join(ref(node)))
        world.node_keys[ref(node)] = identity.public_key
        starts.append(AgentProcess.start(node, key_file, [operator_pub]))
    agents = await asyncio.gather(*starts, return_exceptions=True)
    try:
        failed = [a for a in agents if isinstance(a, BaseException)]
        if failed:
            for error in failed:
                print(f"error: {error}", file=sys.stderr)
            return EXIT_UNUSABLE
        for agent in agents:
            assert isinstance(agent, AgentProcess)
            world.endpoints[ref(agent.node)] = agent.endpoint
        reservations = Reservations()
        for node in world.all_nodes():
            endpoint = world.endpoint_of(node)
            node.status = await check_node(node, world.agent(node), endpoint, 0)
        reachable = [n for n in world.all_nodes() if n.status.phase != "Unreachable"]
        calibrated = await asyncio.gather(*(calibrate_node(n, world.agent(n)) for n in reachable))
        for node, status in zip(reachable, calibrated, strict=True):
            node.status = status
        for node in world.all_nodes():
            cal = node.status.calibration
            figure = f" calibration fidelity {cal.fidelity:.4f}" if cal and cal.fidelity else ""
            progress(
                f"qn/{node.metadata.name}",
                f"{node.status.phase:<10} {world.endpoint_of(node)}{figure}",
            )
        for link in world.all_links():
            nodes = {n.metadata.name: n for n in world.nodes(link.metadata.namespace)}
            link.status = check_link(link, nodes)
            progress(f"qlink/{link.metadata.name}", link.status.phase)
        pipeline = JobPipeline(world, reservations, settings or PipelineSettings())
        jobs = sorted(world.jobs.values(), key=lambda j: -j.spec.priority)
        await asyncio.gather(*(_drive(job, pipeline, progress) for job in jobs))
    finally:
        await world.close()
        await asyncio.gather(*(a.stop() for a in agents if isinstance(a, AgentProcess)))
        keys.cleanup()
    if output == "json":
        items = [job.model_dump(mode="json", by_alias=True, exclude_none=True) for job in jobs]
        json.dump(items, out, indent=2)
        out.write("\n")
    else:
        _summary(jobs, out)
    return EXIT_OK if all(j.status.phase == "Succeeded" for j in jobs) else EXIT_FAILED
