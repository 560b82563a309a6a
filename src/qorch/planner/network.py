"""The link graph between nodes: which pairs can share Bell pairs, and over which link."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .model import LinkSlot


def _pair(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x < y else (y, x)


class LinkIndex:
    """The best link between each pair of nodes (several links may join the same pair)."""

    def __init__(self, links: Iterable[LinkSlot]) -> None:
        self._best: dict[tuple[str, str], LinkSlot] = {}
        for link in links:
            key = _pair(link.a, link.b)
            held = self._best.get(key)
            # Better fidelity first; at equal fidelity, faster supply.
            if held is None or (link.fidelity, -link.seconds_per_pair, link.name) > (
                held.fidelity,
                -held.seconds_per_pair,
                held.name,
            ):
                self._best[key] = link

    def between(self, x: str, y: str) -> LinkSlot | None:
        return self._best.get(_pair(x, y))

    def neighbours(self, node: str) -> list[str]:
        return sorted(b if a == node else a for a, b in self._best if node in (a, b))

    def connected(self, nodes: Iterable[str]) -> bool:
        """Whether the links among `nodes` join them into one component."""
        members = set(nodes)
        if not members:
            return False
        start = next(iter(members))
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for other in self.neighbours(here):
                if other in members and other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen == members


def bell_pair_cost(link: LinkSlot) -> float:
    """Cost of one Bell pair over `link`, in units of a perfect one.

    One for the pair itself (generation time, its gadget's gates and feed-forward) plus its
    infidelity in log terms, so a plan's total cost tracks -log of its fidelity while still
    counting pairs when links are perfect.
    """
    return 1.0 - math.log(link.fidelity)
