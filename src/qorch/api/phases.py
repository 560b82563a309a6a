"""The phases of the three kinds, as typed constants, and which job phases are terminal.

`phase` is the summary for humans (`kubectl get`); machines read the conditions. Everything
outside `api/` names a phase through these constants, so that a phase is spelt in one place.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

JobPhase = Literal["Pending", "Admitted", "Planned", "Running", "Succeeded", "Failed", "Rejected"]
NodePhase = Literal["Pending", "Ready", "Degraded", "Cordoned", "Unreachable"]
LinkPhase = Literal["Establishing", "Up", "Degraded", "Down"]


class JobPhases:
    """DistributedJob phases, in the order a job moves through them."""

    PENDING: Final = "Pending"
    ADMITTED: Final = "Admitted"
    PLANNED: Final = "Planned"
    RUNNING: Final = "Running"
    SUCCEEDED: Final = "Succeeded"
    FAILED: Final = "Failed"
    REJECTED: Final = "Rejected"
    ALL: Final[tuple[JobPhase, ...]] = get_args(JobPhase)
    #: A job in one of these never moves again.
    TERMINAL: Final[frozenset[JobPhase]] = frozenset({SUCCEEDED, FAILED, REJECTED})


class NodePhases:
    """QuantumNode phases."""

    PENDING: Final = "Pending"
    READY: Final = "Ready"
    DEGRADED: Final = "Degraded"
    CORDONED: Final = "Cordoned"
    UNREACHABLE: Final = "Unreachable"
    ALL: Final[tuple[NodePhase, ...]] = get_args(NodePhase)


class LinkPhases:
    """EntanglementLink phases."""

    ESTABLISHING: Final = "Establishing"
    UP: Final = "Up"
    DEGRADED: Final = "Degraded"
    DOWN: Final = "Down"
    ALL: Final[tuple[LinkPhase, ...]] = get_args(LinkPhase)


def is_terminal(phase: str | None) -> bool:
    """Whether a job in `phase` is finished for good."""
    return phase in JobPhases.TERMINAL
