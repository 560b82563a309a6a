"""Phases are spelt once, in api/: the constants, the models' types and is_terminal agree."""

from typing import get_args

from qorch.api import (
    DistributedJob,
    EntanglementLink,
    JobPhases,
    LinkPhases,
    NodePhases,
    QuantumNode,
)
from qorch.api.phases import JobPhase, LinkPhase, NodePhase, is_terminal


def test_the_constants_are_the_models_phases() -> None:
    for constants, literal in (
        (JobPhases, JobPhase),
        (NodePhases, NodePhase),
        (LinkPhases, LinkPhase),
    ):
        named = {v for k, v in vars(constants).items() if k.isupper() and isinstance(v, str)}
        assert named == set(get_args(literal)) == set(constants.ALL)
    assert DistributedJob.model_fields["status"].default_factory().phase == JobPhases.PENDING  # type: ignore[misc]
    assert QuantumNode.model_fields["status"].default_factory().phase == NodePhases.PENDING  # type: ignore[misc]
    assert (
        EntanglementLink.model_fields["status"].default_factory().phase == LinkPhases.ESTABLISHING
    )  # type: ignore[misc]


def test_only_succeeded_failed_and_rejected_are_terminal() -> None:
    assert [p for p in JobPhases.ALL if is_terminal(p)] == ["Succeeded", "Failed", "Rejected"]
    assert not is_terminal(None)
