"""QS301 while-loop."""

from __future__ import annotations

from ..catalog import WHILE_LOOP
from .base import ControlFlowSwitch


class WhileLoop(ControlFlowSwitch):
    """While loops run for as long as their condition holds, which nothing bounds: refused
    unless the policy allows them."""

    rule_id = WHILE_LOOP
    owners = frozenset({"while_loop"})
    message = (
        "the circuit contains a while loop, whose number of iterations nothing "
        "bounds. Use a for loop over a fixed range instead."
    )
