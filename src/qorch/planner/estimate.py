"""A fidelity estimate that remembers its factors, so a rejection can say what limits it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FidelityEstimate:
    """Product of survival probabilities, one per named source of error, and where it could
    be simulated, the predicted Hellinger fidelity of the job's counts (`prediction`), which
    is then the value."""

    factors: dict[str, float] = field(default_factory=dict)
    predicted: float | None = None

    @property
    def lower_bound(self) -> float:
        """The probability that no error happens at all."""
        return max(0.0, min(1.0, math.prod(self.factors.values())))

    @property
    def value(self) -> float:
        if self.predicted is not None:
            return max(0.0, min(1.0, self.predicted))
        return self.lower_bound

    def limited_by(self) -> str:
        """The factor that loses the most fidelity, for humans; "" when nothing is lost."""
        lossy = {k: v for k, v in self.factors.items() if v < 1.0}
        if not lossy:
            return ""
        name = min(lossy, key=lambda k: (lossy[k], k))
        return f"{name} ({lossy[name]:.4f})"
