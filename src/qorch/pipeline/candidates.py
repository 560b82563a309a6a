"""Every strategy considered for a job, as its status records them and `qorch plan` prints them.

A feasible candidate is shaped by its own strategy (the call that shapes the chosen plan), so
its placement and Bell pairs are those the job would get if it were chosen.
"""

from __future__ import annotations

import logging

from qorch.api.distributed_job import StrategyEstimate
from qorch.planner.strategies import Candidate, Demand
from qorch.planner.workload import workload

from .strategies import strategy_named

log = logging.getLogger(__name__)


def considered(candidates: list[Candidate], demand: Demand) -> list[StrategyEstimate]:
    """The candidates with placement, Bell pairs, subexperiments, overhead and device time."""
    return [_estimate(c, demand) for c in candidates]


def _estimate(candidate: Candidate, demand: Demand) -> StrategyEstimate:
    estimate = StrategyEstimate(
        strategy=candidate.strategy,
        estimated_fidelity=round(candidate.estimated_fidelity, 6),
        feasible=candidate.feasible,
        reason=candidate.reason,
        sampling_overhead=candidate.sampling_overhead,
    )
    if not candidate.feasible:
        return estimate
    try:
        shape = strategy_named(candidate.strategy).shape(candidate, demand.circuit, demand.shots)
        load = workload(candidate, demand)
    except Exception as exc:  # a defect of one strategy's details must not cost the plan
        log.warning("detailing %s failed: %s: %s", candidate.strategy, type(exc).__name__, exc)
        return estimate
    estimate.placement = shape.placement
    estimate.bell_pairs = shape.bell_pairs
    estimate.subexperiments = load.subexperiments
    if load.seconds is not None:
        estimate.estimated_seconds = round(load.seconds, 6)
    return estimate
