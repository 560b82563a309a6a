"""`qorch plan`: every job's candidate strategies, planned by the pipeline itself, run nowhere.

Each job goes through the steps the operator takes for a job with spec.suspend true:
sanitize, authorize, estimate every strategy, choose, and hold the plan. No agent is
started or asked: nodes count as Ready with the figures their manifests declare (a node
annotated for cordoning is left out, as it would be), links as Up between Ready nodes. The
operator plans from the same declared figures; what it would see differently is a node an
agent reports unhealthy, and a link's feed-forward latency once measured. Each job is
planned as if it were alone on idle nodes: suspended plans reserve nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from qorch.api import TERMINAL_PHASES, DistributedJob, QuantumNode
from qorch.api import reasons as R
from qorch.api.base import ConditionStatus, get_condition, set_condition
from qorch.api.distributed_job import LinkUse, StrategyEstimate
from qorch.api.manifests import Manifests
from qorch.api.phases import NodePhases
from qorch.channel.identity import Identity
from qorch.pipeline.job import JobPipeline, PipelineSettings, suspended
from qorch.pipeline.reservations import Reservations
from qorch.pipeline.resources import CORDON_ANNOTATION, check_link

from .world import LocalWorld

EXIT_PLANNED, EXIT_UNPLACEABLE, EXIT_UNUSABLE = 0, 1, 2
#: Admit, plan: two steps; a few more for a job that is re-planned while it is held.
_MAX_STEPS = 8

BASIS = (
    "planned from the manifests' declared figures: nodes taken as Ready (unless cordoned),"
    " links Up, no agent started or contacted; each job alone on idle nodes"
)


@dataclass
class JobPlan:
    """What planning one job found: its plan's phase, the chosen strategy (if any), every
    candidate, and why it cannot run when it cannot."""

    job: DistributedJob
    candidates: list[StrategyEstimate] = field(default_factory=list)

    @property
    def chosen(self) -> str | None:
        plan = self.job.status.plan
        return plan.strategy if plan is not None and suspended(self.job.status) else None

    @property
    def bad_circuit(self) -> bool:
        sanitized = get_condition(self.job.status.conditions, R.SANITIZED)
        return sanitized is not None and sanitized.status == "False"

    def wire(self) -> dict[str, Any]:
        s = self.job.status
        return {
            "name": self.job.metadata.name,
            "namespace": self.job.metadata.namespace,
            "phase": s.phase,
            "chosen": self.chosen,
            # Why this plan, or why none: the status message speaks of holding, not of this.
            "message": s.plan.reason if self.chosen and s.plan else s.message,
            "estimatedFidelity": s.plan.estimated_fidelity if self.chosen and s.plan else None,
            "candidates": [c.wire() for c in self.candidates],
            **({"sanitizer": s.sanitizer.wire()} if s.sanitizer else {}),
        }


def _declared_ready(node: QuantumNode) -> None:
    """The node as the operator would see it with a healthy agent answering."""
    cordoned = node.metadata.annotations.get(CORDON_ANNOTATION) == "true"
    status = node.status
    status.phase = NodePhases.CORDONED if cordoned else NodePhases.READY
    reason = R.CORDONED if cordoned else "Declared"
    message = (
        f"annotated {CORDON_ANNOTATION}=true" if cordoned else "declared figures; no agent asked"
    )
    value: ConditionStatus = "False" if cordoned else "True"
    status.conditions = set_condition(status.conditions, R.READY, value, reason, message, 0)


async def plan_jobs(manifests: Manifests, settings: PipelineSettings) -> list[JobPlan]:
    """Plan every job of the manifests, in manifest order."""
    world = LocalWorld(manifests, Identity.generate())
    pipeline: JobPipeline | None = None
    try:
        for node in world.all_nodes():
            _declared_ready(node)
        for link in world.all_links():
            nodes = {n.metadata.name: n for n in world.nodes(link.metadata.namespace)}
            link.status = check_link(link, nodes)
        pipeline = JobPipeline(world, Reservations(), settings)
        found: dict[tuple[str, str], list[StrategyEstimate]] = {}

        def considered(job: DistributedJob, details: list[StrategyEstimate]) -> None:
            found.setdefault((job.metadata.namespace, job.metadata.name), details)

        pipeline.on_considered = considered
        out = []
        for job in manifests.jobs:
            job.spec.suspend = True
            for _ in range(_MAX_STEPS):
                result = await pipeline.step_or_fail(job)
                job.status = result.status
                if job.status.phase in TERMINAL_PHASES or suspended(job.status):
                    break
                if result.requeue_after is not None:
                    break  # waiting: for nodes no manifest declares, say
            out.append(JobPlan(job, found.pop((job.metadata.namespace, job.metadata.name), [])))
        return out
    finally:
        if pipeline is not None:
            pipeline.exact_outputs.close()  # the predictions' process, if one started
        await world.close()


def _seconds(value: float | None) -> str:
    if value is None:
        return "unknown (no gate times declared)"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _raw(use: LinkUse) -> str:
    """The raw pairs behind purified ones, and the rounds that consume them."""
    if use.purification is None or use.raw_bell_pairs is None:
        return ""
    p = use.purification
    return f" ({use.raw_bell_pairs:.4g} raw, {p.rounds} round(s) of {p.protocol})"


def _candidate_lines(c: StrategyEstimate, chosen: bool) -> list[str]:
    mark = "*" if chosen else " "
    if not c.feasible:
        return [f"  {mark} {c.strategy:<9} infeasible: {c.reason}"]
    figures = [
        f"fidelity {c.estimated_fidelity:.4f}",
        f"device time {_seconds(c.estimated_seconds)}",
    ]
    if c.sampling_overhead is not None:
        figures.append(f"sampling overhead {c.sampling_overhead:.4g}")
    if c.subexperiments is not None:
        figures.append(f"{c.subexperiments} subexperiments")
    lines = [f"  {mark} {c.strategy:<9} " + ", ".join(figures)]
    if c.placement:
        lines.append(
            "      on " + " ".join(f"{p.node}[{','.join(map(str, p.qubits))}]" for p in c.placement)
        )
    if c.bell_pairs:
        pairs = ", ".join(f"{u.link}={u.bell_pairs}{_raw(u)}" for u in c.bell_pairs)
        lines.append(f"      Bell pairs per shot: {pairs}")
    lines.append(f"      {c.reason}")
    return lines


def print_text(plans: list[JobPlan], out: TextIO) -> None:
    print(f"# {BASIS}", file=out)
    for p in plans:
        s = p.job.status
        head = f"{p.job.metadata.name} ({p.job.metadata.namespace}, {p.job.spec.shots} shots): "
        if p.chosen and s.plan:
            head += f"{p.chosen} on {s.plan.nodes}"
        else:
            head += f"{s.phase}: {s.message}"
        print(head, file=out)
        if p.job.spec.strategy != "auto":
            print(f"    spec.strategy is {p.job.spec.strategy}: only it is considered", file=out)
        for c in p.candidates:
            for line in _candidate_lines(c, c.strategy == p.chosen):
                print(line, file=out)


def print_json(plans: list[JobPlan], out: TextIO) -> None:
    json.dump({"basis": BASIS, "jobs": [p.wire() for p in plans]}, out, indent=2)
    out.write("\n")


def plan(
    manifests: Manifests,
    output: str = "text",
    out: TextIO = sys.stdout,
    settings: PipelineSettings | None = None,
) -> int:
    """Print every job's candidates; 2 when a circuit is unusable, 1 when a job has no
    feasible plan, 0 when every job has one."""
    plans = asyncio.run(plan_jobs(manifests, settings or PipelineSettings()))
    (print_json if output == "json" else print_text)(plans, out)
    for p in plans:
        if p.bad_circuit:
            print(f"plan: {p.job.metadata.name}: {p.job.status.message}", file=sys.stderr)
    if any(p.bad_circuit for p in plans):
        return EXIT_UNUSABLE
    return EXIT_PLANNED if all(p.chosen for p in plans) else EXIT_UNPLACEABLE
