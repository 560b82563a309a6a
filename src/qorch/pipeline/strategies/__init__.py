"""Strategies, one class each behind one protocol (`base.Strategy`), and their registry.

The pipeline never asks which strategy a job uses: it estimates every registered strategy
(or the one a job names), and calls the chosen one's `shape`, `work` and `rebuild`, then the
work's `payloads`, `aggregate` and `mitigate`. A new strategy is one module defining a
`Strategy` and its `Work`, and one `register` call.
"""

from __future__ import annotations

import logging

from qorch.api.distributed_job import STRATEGIES as STRATEGY_NAMES
from qorch.planner.strategies import Candidate, Demand, choose

from .base import Context, Returned, Shape, Strategy, Work
from .cut import Cut
from .locc_cut import LoccCut
from .single import Single
from .teleport import Teleport

__all__ = [
    "Context",
    "Returned",
    "Shape",
    "Strategy",
    "Work",
    "choose_candidate",
    "estimate_candidates",
    "register",
    "strategy_named",
    "unregister",
]

log = logging.getLogger(__name__)

_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Make a strategy available to every job (and its name valid in `spec.strategy`)."""
    if strategy.name == "auto":
        raise ValueError("'auto' chooses among the strategies; it cannot be one")
    _REGISTRY[strategy.name] = strategy
    if strategy.name not in STRATEGY_NAMES:
        STRATEGY_NAMES.append(strategy.name)
    return strategy


def unregister(name: str) -> None:
    """Withdraw a registered strategy."""
    _REGISTRY.pop(name, None)
    if name in STRATEGY_NAMES:
        STRATEGY_NAMES.remove(name)


def strategy_named(name: str) -> Strategy:
    """The registered strategy of that name (a recorded plan's, say)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no strategy {name!r} is registered") from None


def estimate_candidates(demand: Demand, strategy: str = "auto") -> list[Candidate]:
    """Every registered strategy's candidate for the job, feasible with a plan or not with
    a reason; only the named one when `strategy` is not "auto"."""
    return [_guarded(s, demand) for s in _REGISTRY.values() if strategy in ("auto", s.name)]


def choose_candidate(
    candidates: list[Candidate], fidelity_budget: float | None, strategy: str = "auto"
) -> Candidate | str:
    """`planner.strategies.choose` with the registered strategies' preferences."""
    preference = {name: s.preference for name, s in _REGISTRY.items()}
    return choose(candidates, fidelity_budget, strategy, preference)


def _guarded(strategy: Strategy, demand: Demand) -> Candidate:
    """The candidate, or an infeasible one when estimating it failed: one strategy's defect
    must not cost the job its other strategies, nor the driver its other jobs."""
    try:
        return strategy.estimate(demand)
    except Exception as exc:  # any defect of one estimate, reported as such
        log.warning("estimating %s failed: %s: %s", strategy.name, type(exc).__name__, exc)
        reason = f"could not be estimated ({type(exc).__name__}: {str(exc)[:200]})"
        return Candidate(strategy.name, 0.0, False, reason)


for _builtin in (Single(), Teleport(), Cut(), LoccCut()):
    register(_builtin)
