"""The parsed circuits of the jobs a pipeline drives, held within a bound.

A parsed circuit takes about 500 bytes per operation (a 99,000-gate circuit that the
default policy accepts: 49 MiB), and a job may wait for a long time (a selector that
matches no node, spec.suspend). Held without a bound, a tenant's waiting jobs would take
the operator's memory; evicted, a circuit is read and parsed again when its job next
steps, and the job runs only the source that admission passed (`JobPipeline._circuit`).
"""

from __future__ import annotations

from collections import OrderedDict

from qiskit import QuantumCircuit

#: Operations of all held circuits (about 500 MB); the one used last is kept even if larger.
MAX_HELD_OPERATIONS = 1_000_000


class ParsedCircuits:
    """Circuits by job key and generation, the least recently used evicted first."""

    def __init__(self, max_operations: int = MAX_HELD_OPERATIONS) -> None:
        self.max_operations = max_operations
        self._held: OrderedDict[str, tuple[int, QuantumCircuit]] = OrderedDict()
        self._operations = 0

    def get(self, key: str, generation: int) -> QuantumCircuit | None:
        held = self._held.get(key)
        if held is None or held[0] != generation:
            return None
        self._held.move_to_end(key)
        return held[1]

    def put(self, key: str, generation: int, circuit: QuantumCircuit) -> None:
        self.pop(key)
        self._held[key] = (generation, circuit)
        self._operations += len(circuit.data)
        while self._operations > self.max_operations and len(self._held) > 1:
            self._forget(next(iter(self._held)))

    def pop(self, key: str) -> None:
        if key in self._held:
            self._forget(key)

    def _forget(self, key: str) -> None:
        _, circuit = self._held.pop(key)
        self._operations -= len(circuit.data)

    def __contains__(self, key: str) -> bool:
        return key in self._held
