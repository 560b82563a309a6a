"""Qubit reservations: a plan holds all of its qubits or none, so no node is oversubscribed."""

from __future__ import annotations

import threading


class Reservations:
    """All-or-nothing qubit reservations per node, keyed by job."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def allocated(self, node: str) -> int:
        with self._lock:
            return sum(h.get(node, 0) for h in self._held.values())

    def total(self) -> int:
        """Qubits reserved across all nodes."""
        with self._lock:
            return sum(sum(h.values()) for h in self._held.values())

    def free(self, capacity: dict[str, int]) -> dict[str, int]:
        with self._lock:
            used: dict[str, int] = {}
            for held in self._held.values():
                for node, n in held.items():
                    used[node] = used.get(node, 0) + n
        return {node: cap - used.get(node, 0) for node, cap in capacity.items()}

    def try_reserve(self, job: str, want: dict[str, int], capacity: dict[str, int]) -> bool:
        """Reserve every node's qubits for `job`, or nothing; re-reserving the same is a no-op."""
        with self._lock:
            if self._held.get(job) == want:
                return True
            others = {k: v for k, v in self._held.items() if k != job}
            for node, n in want.items():
                used = sum(h.get(node, 0) for h in others.values())
                if used + n > capacity.get(node, 0):
                    return False
            self._held[job] = dict(want)
            return True

    def release(self, job: str) -> None:
        with self._lock:
            self._held.pop(job, None)
