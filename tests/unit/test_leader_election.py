"""Leader election over a Lease, against an in-memory Lease API with optimistic concurrency
and a clock the test moves: who may take the Lease, and when."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from qorch.operator import leader
from qorch.operator.leader import LeaderElector, LeaseTiming

TIMING = LeaseTiming(duration=15, renew_deadline=10, retry=2)


def _time(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ") if text else None


class FakeLeases:
    """One Lease, as the API server keeps it: a write must name the version it read."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self.version = 0

    def _lease(self) -> SimpleNamespace:
        if self.spec is None:
            raise ApiException(status=404)
        spec = self.spec
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version)),
            spec=SimpleNamespace(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                acquire_time=_time(spec.get("acquireTime")),
                renew_time=_time(spec.get("renewTime")),
                lease_transitions=spec.get("leaseTransitions"),
            ),
        )

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> SimpleNamespace:
        return self._lease()

    def create_namespaced_lease(self, namespace: str, body: dict, **_: Any) -> None:
        if self.spec is not None:
            raise ApiException(status=409)
        self.spec, self.version = dict(body["spec"]), self.version + 1

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict, **_: Any) -> None:
        if body["metadata"]["resourceVersion"] != str(self.version):
            raise ApiException(status=409)
        self.spec, self.version = dict(body["spec"]), self.version + 1


@pytest.fixture
def leases(monkeypatch: pytest.MonkeyPatch) -> FakeLeases:
    fake = FakeLeases()
    monkeypatch.setattr(leader.client, "CoordinationV1Api", lambda: fake)
    return fake


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(leader.time, "monotonic", lambda: now[0])
    return now


def elector(identity: str) -> LeaderElector:
    return LeaderElector("qorch-system", "qorch-leader", identity, TIMING)


def test_a_standby_takes_the_lease_only_once_it_went_unrenewed_for_its_duration(
    leases: FakeLeases, clock: list[float]
) -> None:
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()  # created
    assert leases.spec and leases.spec["holderIdentity"] == "a"
    assert not b.try_acquire_or_renew()
    assert b.holder == "a"
    for _ in range(20):  # a renews every 2 s: b never gets it
        clock[0] += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    # a dies: b waits out the duration from the last change it saw.
    clock[0] += 14.9
    assert not b.try_acquire_or_renew()
    clock[0] += 0.2
    assert b.try_acquire_or_renew()
    assert (leases.spec["holderIdentity"], leases.spec["leaseTransitions"]) == ("b", 1)
    # a, back, sees b as holder and renews no more.
    assert not a.try_acquire_or_renew()
    assert a.holder == "b"


def test_expiry_is_judged_by_the_standbys_clock_not_the_renew_time_written(
    leases: FakeLeases, clock: list[float]
) -> None:
    """A leader whose wall clock is an hour behind still keeps the Lease while it renews."""
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    leases.spec["renewTime"] = "2000-01-01T00:00:00.000000Z"  # far in the past
    leases.version += 1
    assert not b.try_acquire_or_renew()  # b's first look: it starts counting now


def test_a_released_lease_is_taken_at_once(leases: FakeLeases, clock: list[float]) -> None:
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert leases.spec.get("holderIdentity") is None
    assert b.try_acquire_or_renew()


def test_a_released_elector_never_takes_the_lease_again(
    leases: FakeLeases, clock: list[float]
) -> None:
    """The renewal a stopping leader had in flight must not take back what it released."""
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.try_acquire_or_renew()
    assert leases.spec.get("holderIdentity") is None
    assert b.try_acquire_or_renew()


def test_a_release_waits_for_the_attempt_in_flight(leases: FakeLeases, clock: list[float]) -> None:
    a = elector("a")
    assert a.try_acquire_or_renew()
    reading, go_on = threading.Event(), threading.Event()
    original = leases.read_namespaced_lease

    def slow_read(*args: Any, **kwargs: Any) -> SimpleNamespace:
        if threading.current_thread() is renewal:
            reading.set()
            go_on.wait(10)
        return original(*args, **kwargs)

    leases.read_namespaced_lease = slow_read  # type: ignore[method-assign]
    renewal = threading.Thread(target=a.try_acquire_or_renew)
    renewal.start()
    assert reading.wait(10)
    releasing = threading.Thread(target=a.release)
    releasing.start()
    releasing.join(0.2)
    assert releasing.is_alive()  # behind the renewal
    go_on.set()
    renewal.join(10)
    releasing.join(10)
    assert not releasing.is_alive()
    assert leases.spec.get("holderIdentity") is None


def test_two_writers_of_one_version_elect_one(leases: FakeLeases, clock: list[float]) -> None:
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    a.release()
    # Both read the released Lease; the second write names a stale version and loses.
    lease = leases.read_namespaced_lease("qorch-leader", "qorch-system")
    original = leases.read_namespaced_lease
    leases.read_namespaced_lease = lambda *_, **__: lease  # type: ignore[method-assign]
    assert b.try_acquire_or_renew()
    assert not elector("c").try_acquire_or_renew()
    leases.read_namespaced_lease = original  # type: ignore[method-assign]
    assert leases.spec["holderIdentity"] == "b"


def test_timings_that_could_elect_two_leaders_are_refused() -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < duration"):
        LeaseTiming(duration=10, renew_deadline=10, retry=2)
    with pytest.raises(ValueError, match="QORCH_LEASE_RETRY_SECONDS"):
        LeaseTiming(duration=15, renew_deadline=10, retry=10)


UNRENEWABLE_WHILE_THE_LOOP_IS_BUSY = """
import asyncio, time
from kubernetes.client.exceptions import ApiException
from qorch.operator import leader

class Leases:  # created once; then the API server answers no read
    created = False
    def read_namespaced_lease(self, *args, **kwargs):
        if self.created:
            if {hang}:
                time.sleep(120)  # an attempt stuck until its timeouts, and longer
            raise ApiException(status=500)
        raise ApiException(status=404)
    def create_namespaced_lease(self, *args, **kwargs):
        self.created = True

fake = Leases()
leader.client.CoordinationV1Api = lambda: fake
timing = leader.LeaseTiming(duration=3, renew_deadline=2, retry=0.5)
elector = leader.LeaderElector("ns", "lease", "a", timing)

async def operate():
    time.sleep(120)  # the event loop held, as by a long parse of a reply on it

asyncio.run(leader.run_as_leader(elector, None, operate))
"""


@pytest.mark.parametrize("hang", [False, True], ids=["refused", "stuck"])
def test_a_leader_that_cannot_renew_stops_though_its_event_loop_is_busy(hang: bool):
    """Its renewals and its deadline wait neither for the event loop nor for an attempt in
    flight: a standby may take the Lease once its duration passed, and two replicas must
    never both lead."""
    done = subprocess.run(
        [sys.executable, "-c", UNRENEWABLE_WHILE_THE_LOOP_IS_BUSY.replace("{hang}", str(hang))],
        capture_output=True,
        text=True,
        timeout=60,  # well before the loop lets go
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not renewed for 2 s" in done.stderr
    assert "the event loop did not stop the lost leader in time" in done.stderr
