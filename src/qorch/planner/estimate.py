"""A fidelity estimate that remembers its factors, so a rejection can say what limits it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FidelityEstimate:
    """Product of survival probabilities, one per named source of error."""

    factors: dict[str, float] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return max(0.0, min(1.0, math.prod(self.factors.values())))

    def limited_by(self) -> str:
        """The factor that loses the most fidelity, for humans; "" when nothing is lost."""
        lossy = {k: v for k, v in self.factors.items() if v < 1.0}
        if not lossy:
            return ""
        name = min(lossy, key=lambda k: (lossy[k], k))
        return f"{name} ({lossy[name]:.4f})"
