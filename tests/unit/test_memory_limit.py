"""The widest simulation a process takes on follows the memory it may use."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qorch.memory_limit import (
    EXACT_BYTES_PER_OUTCOME,
    PROCESS_BASE_BYTES,
    HeldMemory,
    budget_bytes,
    memory_limit_bytes,
    simulating,
    simulating_async,
    widest_fitting,
)


def test_the_container_limit_is_read_from_cgroup_v2_then_v1(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    machine = memory_limit_bytes([])
    assert machine > 0
    v2.write_text("max\n")  # none under v2: v1 is read next
    v1.write_text(f"{1 << 30}\n")
    assert memory_limit_bytes([v2, v1]) == 1 << 30
    v2.write_text(f"{512 << 20}\n")
    assert memory_limit_bytes([v2, v1]) == 512 << 20
    v1.write_text("9223372036854771712\n")  # cgroup v1's "no limit"
    assert memory_limit_bytes([tmp_path / "missing", v1]) == machine


def test_a_smaller_limit_gives_narrower_simulations() -> None:
    """40 bytes per outcome in half the limit: 26 qubits need 5 GiB of limit."""
    assert widest_fitting(40, 26, limit=6 << 30) == 26
    assert widest_fitting(40, 26, limit=4 << 30) == 25
    assert widest_fitting(40, 26, limit=1 << 30) == 23
    assert widest_fitting(40, 24, limit=64 << 30) == 24  # never past the cap


WIDE = 1 << 50  # over any machine's share: a wide simulation


def test_wide_simulations_run_one_at_a_time_and_narrow_ones_beside_them() -> None:
    first_in, second_in, release = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with simulating(WIDE):
            first_in.set()
            release.wait(30)

    def second() -> None:
        with simulating(WIDE):
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_in.wait(30)
    threads[1].start()
    with simulating(1024):  # a narrow one does not wait for the wide one
        pass
    assert not second_in.wait(0.2), "a second wide simulation ran beside the first"
    release.set()
    assert second_in.wait(30)
    for thread in threads:
        thread.join(30)


async def test_a_task_waits_without_holding_the_loop_and_a_cancelled_one_holds_nothing() -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with simulating_async(WIDE):
            inside.set()
            await release.wait()

    async def wait_for_slot() -> None:
        async with simulating_async(WIDE):
            pass

    holder = asyncio.create_task(hold())
    await inside.wait()
    waiter = asyncio.create_task(wait_for_slot())
    await asyncio.sleep(0.2)  # the loop runs on while the waiter waits
    assert not waiter.done()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    async with asyncio.timeout(30):
        await wait_for_slot()  # free again: neither left it held
    with simulating(WIDE):  # nor for a worker thread
        pass


async def test_held_bytes_wait_until_they_fit_and_a_cancelled_taker_holds_nothing() -> None:
    memory = HeldMemory(100)
    first, second = memory.holding(), memory.holding()
    assert await first.take(60)
    waiting = asyncio.ensure_future(second.take(60))
    await asyncio.sleep(0.2)
    assert not waiting.done() and memory.used == 60
    first.release()
    assert await asyncio.wait_for(waiting, 5)
    assert memory.used == 60
    second.release()
    second.release()  # given back once
    assert memory.used == 0

    third, fourth = memory.holding(), memory.holding()
    await third.take(90)
    cancelled = asyncio.ensure_future(fourth.take(20))
    await asyncio.sleep(0.1)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    fourth.release()
    assert memory.used == 90
    third.release()
    assert await asyncio.wait_for(memory.holding().take(100), 5)  # no one left in line


async def test_one_larger_than_the_budget_goes_alone_once_nothing_else_is_held() -> None:
    memory = HeldMemory(100)
    small, large = memory.holding(), memory.holding()
    await small.take(10)
    waiting = asyncio.ensure_future(large.take(500))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    small.release()
    await asyncio.wait_for(waiting, 5)
    assert memory.used == 500


async def test_takers_get_their_bytes_in_the_order_they_asked() -> None:
    """A large taker is not starved by small ones asking after it."""
    memory = HeldMemory(100)
    held, large, small = memory.holding(), memory.holding(), memory.holding()
    await held.take(50)
    large_waits = asyncio.ensure_future(large.take(80))
    await asyncio.sleep(0.1)
    small_waits = asyncio.ensure_future(small.take(10))  # would fit, but comes second
    await asyncio.sleep(0.2)
    assert not large_waits.done() and not small_waits.done()
    assert await asyncio.wait_for(memory.holding().take(0), 5)  # nothing held: no turn
    held.release()
    assert await asyncio.wait_for(large_waits, 5)
    assert await asyncio.wait_for(small_waits, 5)
    assert memory.used == 90


async def test_a_released_holder_takes_nothing_even_if_it_was_still_waiting() -> None:
    memory = HeldMemory(100)
    full, late = memory.holding(), memory.holding()
    await full.take(100)
    waiting = asyncio.ensure_future(late.take(10))
    await asyncio.sleep(0.1)
    late.release()
    assert await asyncio.wait_for(waiting, 5) is False
    assert not await late.take(10)
    full.release()
    assert memory.used == 0


def operator_budgets(limit: int) -> tuple[int, ...]:
    """Kept and held outputs (MiB), and the widest verified and predicted circuits, of an
    operator whose limit reads `limit`: read at import, so in a fresh interpreter."""
    script = (
        "import qorch.memory_limit as m\n"
        f"m.process_limit_bytes = lambda: {limit}\n"
        "from qorch.pipeline import job\n"
        "from qorch.pipeline.verification import MAX_STATEVECTOR_QUBITS\n"
        "from qorch.planner.prediction import MAX_PREDICTED_QUBITS\n"
        "print(job.IDEAL_KEPT_BYTES >> 20, job.ExactOutputs().held.budget >> 20,"
        " MAX_STATEVECTOR_QUBITS, MAX_PREDICTED_QUBITS)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return tuple(int(x) for x in done.stdout.split())


def test_an_operator_with_1_gib_sizes_every_budget_to_it() -> None:
    assert operator_budgets(1 << 30) == (48, 192, 23, 23)


@pytest.mark.parametrize("limit_mib", [512, 640, 768, 1024])
def test_every_budget_at_once_fits_beside_the_operator_itself(limit_mib: int) -> None:
    """The widest simulation, every held and every kept output, and the process: at 640 MiB
    these took 320 + 160 + 40 MiB beside its 196, over the limit."""
    kept, held, verified, predicted = operator_budgets(limit_mib << 20)
    widest = EXACT_BYTES_PER_OUTCOME << max(verified, predicted) >> 20
    assert widest + held + kept + (PROCESS_BASE_BYTES >> 20) <= limit_mib


def test_the_budgets_share_what_the_limit_leaves_beyond_the_process() -> None:
    assert budget_bytes(6 << 30) == (6 << 30) - PROCESS_BASE_BYTES
    assert budget_bytes(512 << 20) == 256 << 20
    assert budget_bytes(256 << 20) == 64 << 20  # a quarter: less would plan nothing
