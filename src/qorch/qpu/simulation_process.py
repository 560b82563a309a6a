"""Long simulations in a child process, so that the agent keeps answering while Aer runs.

Aer holds the interpreter lock for a whole run: a step of several seconds in a thread leaves
health checks, cancels and progress queries unanswered for as long, and a node that misses
a health check is Unreachable. A step the agent expects to take longer than
`IN_PROCESS_SECONDS` runs in one child process instead. It starts on first need (small jobs
never pay for it) and a cancel kills it mid-run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from qiskit import QuantumCircuit

from qorch.api.quantum_node import QuantumNodeSpec
from qorch.process_ties import die_with_parent
from qorch.transpiler_plugins import leave_out_unused

from .executor import NodeExecutor, Sample

# Steps expected to be shorter run in a worker thread: the child's round trip (a pickled
# circuit each way) costs about a millisecond, its start about as long as importing Aer.
# A tenth of the operator's 5 s health timeout, so an estimate 10x too low still answers.
IN_PROCESS_SECONDS = 0.5
#: How often a step starts again after children stopped for other callers' sake.
ABANDONED_RETRIES = 3
#: How long `close` kills and waits, in 0.05 s polls, before it leaves the pool to its exit.
CLOSE_POLLS = 200

T = TypeVar("T")

# In the child: the executor of the node spec last asked for (a node file may change it).
_executor: tuple[str, NodeExecutor] | None = None


def _executor_for(spec_json: str) -> NodeExecutor:
    global _executor
    if _executor is None or _executor[0] != spec_json:
        _executor = (spec_json, NodeExecutor(QuantumNodeSpec.model_validate_json(spec_json)))
    return _executor[1]


def _sample(spec_json: str, compiled: QuantumCircuit, shots: int, seed: int | None) -> Sample:
    return _executor_for(spec_json).sample(compiled, shots, seed)


def _warm(spec_json: str) -> None:
    _executor_for(spec_json)


def _start_child(parent: int) -> None:
    # Callers from worker threads fall back to simulating themselves (`die_with_parent`).
    die_with_parent(parent)
    leave_out_unused()  # spawned: it did not start through the command line


def _submit(pool: ProcessPoolExecutor, function: Callable[..., T], *args: Any) -> Future[T]:
    """`pool.submit`; a pool another caller killed or closed since this one was handed it
    reads as broken, as one whose child died."""
    try:
        return pool.submit(function, *args)
    except BrokenProcessPool:
        raise
    except RuntimeError as exc:  # "cannot schedule new futures after shutdown"
        raise BrokenProcessPool(str(exc)) from exc


class SimulationInterrupted(RuntimeError):
    """The child was killed (a cancel) or died while it ran the step."""


class SimulationProcess:
    """One child process that runs simulations for the agent (or the operator's exact
    verification), a step at a time."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._starting = threading.Lock()
        # Children stopped because the caller of their running step went away.
        self._abandoned: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()

    def _started(self) -> ProcessPoolExecutor:
        with self._starting:
            if self._pool is None:
                # spawn: forking a process that runs an event loop and threads is unsafe.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=context,
                    initializer=_start_child,
                    initargs=(os.getpid(),),
                )
            return self._pool

    async def sample(
        self, executor: NodeExecutor, compiled: QuantumCircuit, shots: int, seed: int | None
    ) -> Sample:
        spec = executor.spec.model_dump_json(by_alias=True)
        return await self.call(_sample, spec, compiled, shots, seed)

    async def warm(self, spec: QuantumNodeSpec) -> None:
        """Start the child and build the node's executor there (Aer imported, its noise
        model built): a second that the first long step would otherwise wait for."""
        await self.call(_warm, spec.model_dump_json(by_alias=True))

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in the child; both must pickle (a module-level function).

        A caller cancelled while its step runs stops the child: nobody wants what it
        computes, and the callers queued behind it (other jobs sharing the process) would
        wait for all of it. Those callers' steps then start again in a new child."""
        for attempt in range(ABANDONED_RETRIES + 1):
            pool = self._started()
            try:
                future = _submit(pool, function, *args)
                try:
                    return await asyncio.wrap_future(future)
                except asyncio.CancelledError:
                    if future.running():  # not cancelled with the caller: it runs on
                        self._abandoned.add(pool)
                        # The steps queued behind it fail as broken, and start again.
                        self._stop(pool, cancel_queued=False)
                    raise
            except BrokenProcessPool as exc:
                self._forget(pool)
                if pool not in self._abandoned or attempt == ABANDONED_RETRIES:
                    raise SimulationInterrupted("the simulation process stopped mid-run") from exc
        raise AssertionError("unreachable")

    def call_blocking(self, function: Callable[..., T], *args: Any) -> T:
        """`call` for a worker thread: it waits without holding the interpreter lock."""
        pool = self._started()
        try:
            return _submit(pool, function, *args).result()
        except BrokenProcessPool as exc:
            self._forget(pool)
            raise SimulationInterrupted("the simulation process stopped mid-run") from exc

    def _forget(self, broken: ProcessPoolExecutor) -> None:
        """The next step starts a new child, unless another caller already started one
        (callers share the process: a late failure must not orphan the new child)."""
        with self._starting:
            if self._pool is broken:
                self._pool = None

    def kill(self) -> None:
        """Stop the running step now, failing it and the steps queued behind it; the next
        step starts a new child."""
        pool, self._pool = self._pool, None
        if pool is not None:
            self._stop(pool, cancel_queued=True)

    def _stop(self, pool: ProcessPoolExecutor, cancel_queued: bool) -> None:
        self._forget(pool)
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=cancel_queued)

    def close(self) -> None:
        """`kill`, and wait until the pool has let go of its queues. Their named semaphores
        are released only then, and every qorch process ends in os._exit, which skips that:
        multiprocessing's resource tracker would warn of each when the command ends. The
        wait is milliseconds, not a step's length: a child that a worker thread's step
        started meanwhile is killed as well."""
        with self._starting:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        released = threading.Thread(
            target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
        )
        released.start()
        for _ in range(CLOSE_POLLS):
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
            released.join(0.05)
            if not released.is_alive():
                return
