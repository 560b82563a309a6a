"""Gate times and coherence of the nodes a job may run on, for the timing rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetTiming:
    """Worst-case timing of the candidate nodes; a missing figure skips the rules needing it.

    Combine per-node figures with :meth:`worst_case`: the slowest gates and the shortest T2.
    """

    #: Duration of a single-qubit gate, nanoseconds.
    single_qubit_gate_ns: float | None = None
    #: Duration of a two-qubit gate, nanoseconds.
    two_qubit_gate_ns: float | None = None
    #: Duration of a measurement (and of a reset), nanoseconds.
    measure_ns: float | None = None
    #: Shortest T2 among the candidate nodes, microseconds.
    shortest_t2_us: float | None = None
    #: Length of one ``dt`` sample, nanoseconds, for delays written in ``dt``.
    dt_ns: float | None = None

    @property
    def gate_times_known(self) -> bool:
        """Whether every gate time needed for a duration estimate is present."""
        return all(
            isinstance(t, int | float) and 0 <= t < float("inf")
            for t in (self.single_qubit_gate_ns, self.two_qubit_gate_ns, self.measure_ns)
        )

    @property
    def t2_known(self) -> bool:
        """Whether the shortest T2 is a usable positive number."""
        t2 = self.shortest_t2_us
        return isinstance(t2, int | float) and 0 < t2 < float("inf")

    @classmethod
    def worst_case(cls, timings: Iterable[TargetTiming]) -> TargetTiming:
        """The slowest gate times and the shortest T2 over several nodes."""
        items = list(timings)

        def largest(values: Iterable[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return max(known) if known else None

        t2s = [t.shortest_t2_us for t in items if t.shortest_t2_us is not None]
        return cls(
            single_qubit_gate_ns=largest(t.single_qubit_gate_ns for t in items),
            two_qubit_gate_ns=largest(t.two_qubit_gate_ns for t in items),
            measure_ns=largest(t.measure_ns for t in items),
            shortest_t2_us=min(t2s) if t2s else None,
            dt_ns=largest(t.dt_ns for t in items),
        )
