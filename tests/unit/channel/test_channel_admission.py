"""The gates in front of the handshake, sans-IO: cookies, replay memory, rates, turns."""

from __future__ import annotations

import asyncio

import pytest

from qorch.channel.admission import (
    COOKIE_SIZE,
    ByteBudget,
    HelloCookies,
    PeerQueue,
    PeerRates,
    PeerSlots,
    RecentHellos,
    retry_after_header,
)
from tests.unit.channel.conftest import FakeClock

HELLO = b"\x01" + b"a client hello" * 20


def test_a_cookie_is_valid_for_its_hello_and_address_for_one_to_two_windows(
    clock: FakeClock,
) -> None:
    cookies = HelloCookies(10, clock=clock)
    cookie = cookies.issue(HELLO, "10.0.0.7")
    assert len(cookie) == COOKIE_SIZE
    assert cookies.valid(cookie, HELLO, "10.0.0.7")
    clock.advance(10)
    assert cookies.valid(cookie, HELLO, "10.0.0.7")  # the next window still takes it
    clock.advance(10)
    assert not cookies.valid(cookie, HELLO, "10.0.0.7")


def test_a_cookie_is_worth_nothing_for_another_hello_address_or_node(clock: FakeClock) -> None:
    cookies = HelloCookies(10, clock=clock)
    cookie = cookies.issue(HELLO, "10.0.0.7")
    assert not cookies.valid(cookie, HELLO, "10.0.0.8")
    assert not cookies.valid(cookie, HELLO + b"x", "10.0.0.7")
    assert not HelloCookies(10, clock=clock).valid(cookie, HELLO, "10.0.0.7")  # other key
    forged = bytearray(cookie)
    forged[-1] ^= 1
    assert not cookies.valid(bytes(forged), HELLO, "10.0.0.7")
    assert not cookies.valid(cookie[:-1], HELLO, "10.0.0.7")
    assert not cookies.valid(None, HELLO, "10.0.0.7")


def test_a_cookie_from_the_future_is_refused(clock: FakeClock) -> None:
    early = HelloCookies(10, key=b"k" * 32, clock=FakeClock(clock.now + 30))
    later = HelloCookies(10, key=b"k" * 32, clock=clock)
    assert not later.valid(early.issue(HELLO, "peer"), HELLO, "peer")


def test_recent_hellos_are_remembered_until_their_cookie_expires(clock: FakeClock) -> None:
    recent = RecentHellos(20, clock=clock)
    assert not recent.seen(HELLO)
    recent.add(HELLO)
    assert recent.seen(HELLO) and not recent.seen(HELLO + b"x")
    clock.advance(21)
    assert not recent.seen(HELLO)


def test_recent_hellos_are_bounded(clock: FakeClock) -> None:
    recent = RecentHellos(20, max_entries=3, clock=clock)
    for n in range(5):
        recent.add(bytes([n]))
    assert [recent.seen(bytes([n])) for n in range(5)] == [False, False, True, True, True]


def test_a_rate_allows_its_burst_then_says_how_long_to_wait(clock: FakeClock) -> None:
    rates = PeerRates(per_second=2, burst=3, clock=clock)
    assert [rates.take("a") for _ in range(3)] == [0, 0, 0]
    assert rates.take("a") == pytest.approx(0.5)
    assert rates.take("b") == 0  # every address has its own bucket
    clock.advance(0.5)
    assert rates.take("a") == 0
    assert rates.take("a") > 0


def test_a_reservation_runs_into_debt_up_to_a_bound(clock: FakeClock) -> None:
    rates = PeerRates(per_second=10, burst=1, clock=clock)
    assert rates.reserve("a") == 0
    assert rates.reserve("a") == pytest.approx(0.1)
    assert rates.reserve("a") == pytest.approx(0.2)
    assert rates.reserve("a", max_due=0.25) == pytest.approx(0.25)  # not taken: no more debt
    clock.advance(0.3)
    assert rates.reserve("a") == pytest.approx(0.0)


def test_rates_forget_the_least_recent_peers_first(clock: FakeClock) -> None:
    rates = PeerRates(per_second=1, burst=1, max_peers=2, clock=clock)
    rates.take("a")
    rates.take("b")
    rates.take("c")  # "a" is forgotten: it starts again with a full bucket
    assert rates.take("a") == 0
    assert rates.take("c") > 0


def test_slots_bound_requests_in_all_and_per_peer() -> None:
    slots = PeerSlots(total=3, per_peer=2)
    assert slots.acquire("a") and slots.acquire("a")
    assert not slots.acquire("a")
    assert slots.acquire("b")
    assert not slots.acquire("c")
    slots.release("a")
    assert slots.acquire("c") and slots.in_use == 3
    with pytest.raises(RuntimeError):
        slots.release("d")


def test_a_byte_budget_is_shared_by_every_body_held() -> None:
    budget = ByteBudget(100)
    assert budget.take(60) and not budget.take(41) and budget.take(40)
    budget.give_back(60)
    assert budget.used == 40 and budget.take(60)


def test_retry_after_is_whole_seconds() -> None:
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


async def test_a_peers_requests_take_turns_while_other_peers_go_ahead() -> None:
    queue = PeerQueue(
        concurrent=10,
        concurrent_per_peer=2,
        rate=PeerRates(per_second=1000, burst=1000),
        max_waiting=10,
    )
    assert await queue.enter("a") and await queue.enter("a")
    third = asyncio.create_task(queue.enter("a"))
    await asyncio.sleep(0.01)
    assert not third.done() and queue.waiting == 1  # waiting, not refused
    assert await asyncio.wait_for(queue.enter("b"), 1)
    queue.leave("a")
    assert await asyncio.wait_for(third, 1)
    for peer in ("a", "a", "b"):
        queue.leave(peer)


async def test_a_peer_past_its_rate_waits_for_its_token() -> None:
    clock = FakeClock()
    queue = PeerQueue(
        concurrent=10,
        concurrent_per_peer=10,
        rate=PeerRates(per_second=1, burst=1, clock=clock),
        max_waiting=10,
    )
    assert await queue.enter("a")
    second = asyncio.create_task(queue.enter("a"))
    await asyncio.sleep(0.05)
    assert not second.done()  # its token is due in a second
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    queue.leave("a")
    assert queue.waiting == 0


async def test_too_many_waiting_are_refused_at_once() -> None:
    queue = PeerQueue(
        concurrent=1,
        concurrent_per_peer=1,
        rate=PeerRates(per_second=1000, burst=1000),
        max_waiting=1,
    )
    assert await queue.enter("a")
    waiting = asyncio.create_task(queue.enter("a"))
    await asyncio.sleep(0.01)
    assert await queue.enter("b") is False
    queue.leave("a")
    assert await asyncio.wait_for(waiting, 1)
    queue.leave("a")
