"""Results of costly computations by key, computed once however many threads ask at once.

Jobs are planned in parallel worker threads, and a batch of them often asks for the same
simulation (one circuit on the same nodes, a node's noise model, its expected calibration
figures). A plain cache misses for all of them together; here a thread asking for a key
another thread is computing waits for that result instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """The `kept` most recently used results by key. A computation that raises is not kept
    (the next caller computes again), nor, with `keep_none=False`, one that returns None
    (there None may be a failed simulation)."""

    def __init__(self, kept: int, *, keep_none: bool = True) -> None:
        self._kept = kept
        self._keep_none = keep_none
        self._lock = threading.Lock()
        self._done: OrderedDict[Hashable, V] = OrderedDict()
        self._computing: dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    return self._done[key]
                computing = self._computing.get(key)
                if computing is None:
                    computing = self._computing[key] = threading.Event()
                    break
            computing.wait()  # done, or failed: then one of the waiters computes it
        try:
            value = compute()
            if value is not None or self._keep_none:
                with self._lock:
                    self._done[key] = value
                    while len(self._done) > self._kept:
                        self._done.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._computing[key]
            computing.set()
