"""The operator's Kubernetes calls run in threads of their own: a default thread pool whose
threads all wait (for jobs' simulations) must not hold a job's status write behind them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from qorch.operator import kube


class Recorded:
    def __init__(self) -> None:
        self.patches: list[tuple[Any, ...]] = []

    def patch_namespaced_custom_object_status(self, *args: Any, **_: Any) -> None:
        self.patches.append(args)


async def test_a_status_write_is_not_held_behind_a_full_default_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = Recorded()
    monkeypatch.setattr(kube.client, "CustomObjectsApi", lambda: api)
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    released = threading.Event()
    waiting = asyncio.ensure_future(asyncio.to_thread(released.wait))
    await asyncio.sleep(0.1)  # the only default thread, taken
    try:
        await asyncio.wait_for(
            kube.patch_status("distributedjobs", "ns", "j", {"phase": "Running"}), 60
        )
    finally:
        released.set()
        await waiting
    assert api.patches == [
        (kube.GROUP, kube.VERSION, "ns", "distributedjobs", "j", {"status": {"phase": "Running"}})
    ]
