"""Imports without Python's cyclic garbage collector.

A command's imports (Qiskit, Aer, aiohttp, pydantic's models) make hundreds of thousands of
objects that live as long as the process, and almost no garbage. On the way the collector
makes full passes, each a walk over everything imported so far: 90 ms of an agent's 0.68 s
of imports here. After them, `gc.freeze` keeps those objects out of every later pass."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_then_freeze() -> Iterator[None]:
    """The collector paused for the block's imports (as it was, after), then all objects
    made so far frozen out of its passes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
    gc.freeze()
