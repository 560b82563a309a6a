"""A long unsplit simulation runs in the agent's simulation process: the agent keeps
answering while it runs, and a cancel stops it at once. Real Aer, in a real child process."""

from __future__ import annotations

import asyncio
import operator
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import qorch.qpu.agent as agent_module
from qorch.agent_protocol import AgentError, ErrorCode
from qorch.qpu.agent import QpuAgent
from qorch.qpu.simulation_process import SimulationInterrupted, SimulationProcess
from tests.support import deep_circuit, make_node
from tests.unit.qpu.test_agent_cancel import payload, start

QUBITS = 18


async def longest_stall(task: asyncio.Task) -> float:
    """The longest the event loop went unanswered while `task` ran."""
    worst = 0.0
    while not task.done():
        before = time.perf_counter()
        await asyncio.sleep(0.02)
        worst = max(worst, time.perf_counter() - before - 0.02)
    return worst


@pytest.fixture
def every_unsplit_run_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "IN_PROCESS_SECONDS", 0.0)


@pytest.mark.usefixtures("every_unsplit_run_in_the_child")
async def test_the_agent_answers_while_a_long_run_is_in_the_child_and_a_cancel_stops_it() -> None:
    agent = QpuAgent(make_node("child", QUBITS))
    try:
        await agent.handle("run", payload("warm", deep_circuit(QUBITS, 1), 10))  # starts it
        began = time.perf_counter()
        whole = start(agent, payload("whole", deep_circuit(QUBITS, 60), 1000))
        stall = await longest_stall(whole)
        assert sum((await whole)["counts"].values()) == 1000
        elapsed = time.perf_counter() - began
        # In a thread Aer would hold the interpreter lock for the whole run.
        assert stall < 0.5 * elapsed, (stall, elapsed)

        # Ten times as deep: about 10x `elapsed` to run whole, so a cancel that waited for
        # the run would miss the bound below by far, however loaded the machine.
        stopped = start(agent, payload("stopped", deep_circuit(QUBITS, 600), 1000))
        async with asyncio.timeout(60):
            while agent._in_child != "stopped":  # compiled, and running in the child
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2 * elapsed)
        cancelled = time.perf_counter()
        reply = await agent.handle("cancel", {"programIds": ["stopped"]})
        assert reply["cancelled"] == ["stopped"]
        with pytest.raises(AgentError) as info:
            await stopped
        assert info.value.code == ErrorCode.CANCELLED
        assert time.perf_counter() - cancelled < elapsed, elapsed

        # The next program gets a new child and runs as usual.
        again = await agent.handle("run", payload("again", deep_circuit(QUBITS, 2), 100))
        assert sum(again["counts"].values()) == 100
        assert agent.health().programs_run == 3
    finally:
        agent.close()


PARENT = """
import sys, time
from qorch.qpu.simulation_process import SimulationProcess

if __name__ == "__main__":
    process = SimulationProcess()
    process.call_blocking(int, 0)  # started
    print(next(iter(process._pool._processes)), flush=True)
    process._pool.submit(time.sleep, 600)  # busy: it would not notice a closed pipe
    time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_the_simulation_process_dies_with_its_parent_even_by_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not gone(child)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


def _mark_then_sleep(path: str, seconds: float) -> None:
    """In the child: say the step has started, then take long."""
    Path(path).touch()
    time.sleep(seconds)


async def test_a_step_abandoned_while_it_runs_stops_and_the_steps_behind_it_start_again(
    tmp_path: Path,
) -> None:
    """As when a job whose exact output is simulating is deleted: the operator's other jobs
    share the process, and must not wait for a result nobody wants."""
    process = SimulationProcess()
    started = tmp_path / "started"
    try:
        long = asyncio.ensure_future(process.call(_mark_then_sleep, str(started), 600.0))
        while not started.exists():  # it runs in the child
            assert not long.done(), long
            await asyncio.sleep(0.02)
        behind = asyncio.ensure_future(process.call(operator.add, 2, 3))
        long.cancel()
        assert await asyncio.wait_for(behind, 120) == 5  # not after the 600 s
        with pytest.raises(asyncio.CancelledError):
            await long
    finally:
        process.close()


async def test_a_killed_step_fails_with_those_behind_it_as_before(tmp_path: Path) -> None:
    """`kill` (an agent's cancel of its running program) stops the step for good."""
    process = SimulationProcess()
    started = tmp_path / "started"
    try:
        long = asyncio.ensure_future(process.call(_mark_then_sleep, str(started), 600.0))
        while not started.exists():
            assert not long.done(), long
            await asyncio.sleep(0.02)
        process.kill()
        with pytest.raises(SimulationInterrupted):
            await asyncio.wait_for(long, 120)
        assert await process.call(operator.add, 2, 3) == 5  # a new child for the next
    finally:
        process.close()


CLOSED_THEN_EXIT = """
import os, sys
from qorch.qpu.simulation_process import SimulationProcess

if __name__ == "__main__":
    process = SimulationProcess()
    process.call_blocking(int, 0)  # started
    process.close()
    sys.stderr.flush()
    os._exit(0)  # as every qorch command and agent ends: no finalizers after close()
"""


def test_a_closed_simulation_process_leaves_no_semaphore_behind(tmp_path: Path) -> None:
    """Its queues' named semaphores are registered with multiprocessing's resource tracker;
    left for the exit to release, they are not (os._exit), and the tracker warns of each
    when the command ends."""
    script = tmp_path / "closed.py"
    script.write_text(CLOSED_THEN_EXIT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # stderr is read to its end, which the tracker (sharing it) reaches only when it exits.
    ended = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert ended.returncode == 0, ended.stderr
    assert "leaked" not in ended.stderr, ended.stderr


def _slowly(real: Callable[..., Any], after: bool) -> Callable[..., Any]:
    def slow(*args: Any) -> Any:
        if not after:
            time.sleep(0.3)  # the window, wide enough to close in
        result = real(*args)
        if after:
            time.sleep(0.3)
        return result

    return slow


@pytest.mark.parametrize("window", ["spawning its child", "handed the pool"])
def test_a_close_while_a_worker_thread_starts_its_step_is_as_quick_as_a_kill(
    window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner's process is shared by worker threads: one may be starting the child, or
    about to submit to the pool, as the operator closes it. The close must not wait out
    that step (it did, for a child not yet listed when it killed), and the step must fail
    as interrupted (it failed with the pool's "cannot schedule new futures")."""
    if window == "spawning its child":
        real = ProcessPoolExecutor._spawn_process
        monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", _slowly(real, after=False))
    else:
        monkeypatch.setattr(
            SimulationProcess, "_started", _slowly(SimulationProcess._started, after=True)
        )
    process = SimulationProcess()
    outcomes: list[object] = []

    def step() -> None:
        try:
            outcomes.append(process.call_blocking(time.sleep, 60))
        except Exception as exc:
            outcomes.append(exc)

    worker = threading.Thread(target=step)
    worker.start()
    time.sleep(0.15)  # inside the window
    began = time.monotonic()
    process.close()
    took = time.monotonic() - began
    deadline = time.monotonic() + 60
    while worker.is_alive() and time.monotonic() < deadline:
        process.close()  # in case the step started a child after all
        worker.join(0.1)
    assert not worker.is_alive()
    assert took < 20, took  # not the step's 60 s
    assert len(outcomes) == 1 and isinstance(outcomes[0], SimulationInterrupted), outcomes
