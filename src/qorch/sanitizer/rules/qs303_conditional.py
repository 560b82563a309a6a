"""QS303 conditional."""

from __future__ import annotations

from ..catalog import CONDITIONAL
from .base import ControlFlowSwitch


class Conditional(ControlFlowSwitch):
    """If/else and switch (feed-forward on measurement results) are allowed unless the policy
    turns them off, e.g. for targets without real-time classical control."""

    rule_id = CONDITIONAL
    owners = frozenset({"if_else", "switch_case"})
    message = (
        "the circuit branches on measurement results, which this namespace's "
        "policy (allowConditionals) does not allow. Remove the if/switch "
        "statements or post-process the results instead."
    )
