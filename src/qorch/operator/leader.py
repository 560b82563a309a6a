"""Leader election over a coordination.k8s.io Lease, as client-go's leaderelection does it.

Of several operator replicas one holds the Lease and runs kopf; the others wait, and the
first to see the Lease unrenewed for its whole duration takes it. A replica starts kopf only
once it holds the Lease, so kopf's index of the jobs' statuses (what each placed job holds)
is the new leader's reservation book before any handler moves a job.

Expiry is judged by this process's monotonic clock from when it last saw the Lease change,
never by comparing the renewTime written by another machine with our wall clock: clock skew
between replicas cannot make two leaders. The leader exits when it has not renewed for the
renew deadline, which is shorter than the duration, so it stops before a standby may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

# Shorter than the other calls (operator.kube): an attempt must end well inside the renew
# deadline, so that a leader that cannot renew stops before a standby may start.
API_TIMEOUT_SECONDS = 5
#: Where a standby's attempts and the release run: not the default pool (see `hold`).
_LEASE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry < self.renew_deadline < self.duration:
            raise ValueError(
                "lease timings must satisfy retry < renew deadline < duration, got"
                f" {self.retry} / {self.renew_deadline} / {self.duration} seconds"
                " (QORCH_LEASE_RETRY_SECONDS, QORCH_LEASE_RENEW_DEADLINE_SECONDS,"
                " QORCH_LEASE_DURATION_SECONDS)"
            )


def default_identity() -> str:
    """The pod's name where the chart sets POD_ID, else host and process id."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}-{os.getpid()}"


def _micro_time(moment: datetime) -> str:
    # MicroTime: RFC 3339 with exactly six fractional digits.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquire, renew and release one Lease under one identity."""

    def __init__(self, namespace: str, name: str, identity: str, timing: LeaseTiming) -> None:
        self.namespace, self.name, self.identity, self.timing = namespace, name, identity, timing
        self.holder: str | None = None  # as last seen
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0
        # An attempt runs in a thread that cancelling its task does not stop: one still in
        # flight when we release would read the released Lease and take it again, and the
        # standby would wait out its whole duration. Attempts and the release take turns.
        self._turn = threading.Lock()
        self._released = False

    def _spec(self, now: datetime, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.duration)),
            "acquireTime": acquired,
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking: run it in a thread); True when we hold the Lease now.
        Never once this elector has released it."""
        with self._turn:
            return not self._released and self._acquire_or_renew()

    def _acquire_or_renew(self) -> bool:
        api = client.CoordinationV1Api()
        now = datetime.now(UTC)
        try:
            lease: Any = api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, _micro_time(now), 0),
            }
            try:
                api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=API_TIMEOUT_SECONDS
                )
            except ApiException as exc2:
                if exc2.status == 409:  # another replica created it first
                    return False
                raise
            self._saw((self.identity, now), self.identity)
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        self._saw((holder, spec.renew_time, spec.lease_duration_seconds), holder)
        duration = spec.lease_duration_seconds or self.timing.duration
        if holder and holder != self.identity and time.monotonic() - self._seen_at < duration:
            return False
        ours = holder == self.identity
        acquired = (
            _micro_time(spec.acquire_time) if ours and spec.acquire_time else _micro_time(now)
        )
        transitions = (spec.lease_transitions or 0) + (0 if ours or not holder else 1)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": self._spec(now, acquired, transitions),
        }
        try:
            api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status == 409:  # written since we read it: someone else renewed or took it
                return False
            raise
        self._saw((self.identity, now), self.identity)
        return True

    def _saw(self, record: tuple[Any, ...], holder: str) -> None:
        if record != self._seen:
            self._seen, self._seen_at = record, time.monotonic()
        if holder != self.holder:
            if holder and holder != self.identity:
                log.info("Lease %s/%s is held by %s", self.namespace, self.name, holder)
            self.holder = holder

    async def _attempt(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(_LEASE_THREAD, self._renew_once)

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Until this replica holds the Lease (True) or `stopping` is set (False). An attempt
        is never cut off midway, so a stopped standby cannot leave the Lease taken."""
        log.info("standby as %s: waiting for Lease %s/%s", self.identity, self.namespace, self.name)
        while not await self._attempt():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.timing.retry)
            if stopping.is_set():
                return False
        log.info("leader: %s holds Lease %s/%s", self.identity, self.namespace, self.name)
        return True

    def hold(self) -> asyncio.Future[None]:
        """Renew the Lease from now on; the future is done when it could not be renewed
        within the renew deadline (cancel it to stop renewing).

        The renewals run in a thread of their own, and the deadline is watched by another:
        not on the event loop nor in its default thread pool, as a loop kept busy (a large
        reply parsed on it) or a pool whose threads all wait for simulations must not delay
        them, nor an attempt that hangs until its API timeouts delay the verdict, past the
        deadline, when a standby may take over. For the same reason, once the Lease is lost
        the watcher ends the process itself if the loop has not acted on it shortly after."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()
        stopped, taken = threading.Event(), threading.Event()
        lost.add_done_callback(lambda _: stopped.set())
        renewed = [time.monotonic()]

        def renew() -> None:
            while not stopped.wait(self.timing.retry):
                if self._renew_once():
                    renewed[0] = time.monotonic()
                elif self.holder not in (None, "", self.identity):
                    log.error("Lease %s/%s was taken by %s", self.namespace, self.name, self.holder)
                    taken.set()
                    return

        def tell_the_loop() -> None:
            if not lost.done():
                lost.set_result(None)

        def watch() -> None:
            while not stopped.wait(self.timing.retry / 10):
                if (
                    not taken.is_set()
                    and time.monotonic() - renewed[0] < self.timing.renew_deadline
                ):
                    continue
                if not taken.is_set():
                    log.error(
                        "Lease %s/%s not renewed for %.0f s",
                        self.namespace,
                        self.name,
                        self.timing.renew_deadline,
                    )
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(tell_the_loop)
                if not stopped.wait((self.timing.duration - self.timing.renew_deadline) / 2):
                    log.error("the event loop did not stop the lost leader in time: exiting")
                    logging.shutdown()
                    os._exit(1)
                return

        for target, name in ((renew, "lease-renewal"), (watch, "lease-deadline")):
            threading.Thread(target=target, name=name, daemon=True).start()
        return lost

    def _renew_once(self) -> bool:
        """One attempt, an error of the API server logged as a failed one."""
        try:
            return self.try_acquire_or_renew()
        except Exception as exc:  # the API server is unreachable or refuses: try again
            log.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby need not wait out its duration."""
        with self._turn:  # after any attempt in flight, and before none
            self._released = True
        # Written between our read and our replace: read it again.
        for _ in range(3):
            if self._release():
                return

    def _release(self) -> bool:
        """Whether it is done (released, or not ours); False on a conflicting write."""
        api = client.CoordinationV1Api()
        try:
            lease: Any = api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=API_TIMEOUT_SECONDS
            )
            if lease.spec.holder_identity != self.identity:
                return True
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": lease.metadata.resource_version,
                },
                # No holder: whoever tries next takes it.
                "spec": {
                    "leaseDurationSeconds": 1,
                    "leaseTransitions": lease.spec.lease_transitions or 0,
                },
            }
            api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=API_TIMEOUT_SECONDS
            )
            log.info("released Lease %s/%s", self.namespace, self.name)
        except ApiException as exc:
            if exc.status == 409:
                return False
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
        return True


@contextlib.asynccontextmanager
async def standby_liveness(url: str | None, elector: LeaderElector) -> AsyncIterator[None]:
    """Answer the liveness probe while waiting for the Lease (kopf serves it once it runs)."""
    if not url:
        yield
        return
    parts = urlsplit(url)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"leader": False, "holder": elector.holder})

    app = web.Application()
    app.router.add_get(parts.path or "/", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, parts.hostname, parts.port or 80, reuse_address=True)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


async def run_as_leader(
    elector: LeaderElector, liveness: str | None, operate: Callable[[], Awaitable[None]]
) -> None:
    """Wait for the Lease, then operate while holding it. Losing it ends the process at once
    (exit code 1): a replica that may no longer be the only one must not write another
    status. SIGTERM or SIGINT stops a standby at once, and stops `operate` cleanly, which
    releases the Lease."""
    # In a container this process is PID 1, for which the kernel drops a signal that has no
    # handler: without these, a standby would sit out the pod's grace period until SIGKILL.
    # kopf puts its own in their place once it runs.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with standby_liveness(liveness, elector):
        if not await elector.acquire(stopping):
            log.info("stopped as standby")
            return
    holding = elector.hold()  # renewing before `operate` first runs
    try:
        await _operate_while_holding(elector, holding, operate, stopping)
    finally:
        holding.cancel()  # a caller that cancels this stops the renewals too


async def _operate_while_holding(
    elector: LeaderElector,
    holding: asyncio.Future[None],
    operate: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    operator = asyncio.ensure_future(operate())
    # A signal that came before kopf took over cancels it. (Not kopf's stop flag: kopf
    # would wait its 5 s for that flag's waiter after its own handler stopped it.)
    early_stop = asyncio.ensure_future(stopping.wait())
    early_stop.add_done_callback(lambda done: done.cancelled() or operator.cancel())
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    early_stop.cancel()
    if holding.done():
        log.error("lost leadership: stopping now; the restarted process waits as standby")
        logging.shutdown()
        os._exit(1)
    holding.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holding
    await asyncio.get_running_loop().run_in_executor(_LEASE_THREAD, elector.release)
    if not operator.cancelled():
        operator.result()  # its exception, if it failed
