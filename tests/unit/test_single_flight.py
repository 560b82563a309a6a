"""Results computed once by key, however many threads ask at once."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from qorch.single_flight import SingleFlight


def test_threads_asking_together_wait_for_one_computation() -> None:
    kept: SingleFlight[int] = SingleFlight(4)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(10)
        return 42

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(kept.get, "key", slow)
        assert started.wait(10)
        others = [pool.submit(kept.get, "key", slow) for _ in range(7)]
        release.set()
        assert first.result() == 42
        assert [f.result() for f in others] == [42] * 7
    assert len(calls) == 1


def test_a_computation_that_raises_is_computed_by_the_next_caller() -> None:
    kept: SingleFlight[float] = SingleFlight(4)

    def fails() -> float:
        raise RuntimeError("simulator died")

    with pytest.raises(RuntimeError):
        kept.get("key", fails)
    assert kept.get("key", lambda: 0.5) == 0.5
    assert kept.get("key", fails) == 0.5


def test_the_least_recently_used_are_forgotten_first() -> None:
    kept: SingleFlight[float] = SingleFlight(2)
    for key in "abc":
        kept.get(key, functools.partial(float, ord(key)))
    assert kept.get("a", lambda: -1.0) == -1.0  # forgotten, computed again
    assert kept.get("c", lambda: -1.0) == ord("c")


def test_none_is_kept_unless_told_otherwise() -> None:
    kept: SingleFlight[float | None] = SingleFlight(4)
    assert kept.get("key", lambda: None) is None
    assert kept.get("key", lambda: 0.5) is None  # a noiseless node's model is None
    unkept: SingleFlight[float | None] = SingleFlight(4, keep_none=False)
    assert unkept.get("key", lambda: None) is None  # a prediction that did not apply
    assert unkept.get("key", lambda: 0.5) == 0.5
