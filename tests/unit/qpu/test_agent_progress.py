"""A long program is followed with short calls: `run` and `wait` answer within `waitSeconds`
with the result, or with the program's progress while it runs. Real Aer, in process."""

from __future__ import annotations

from typing import Any

import pytest

from qorch.agent_protocol import AgentError, ErrorCode, WaitRequest
from qorch.qpu.agent import MAX_WAIT_SECONDS, QpuAgent, _wait_seconds
from tests.support import ghz, make_node
from tests.unit.qpu.test_agent_cancel import SLOW_SHOTS, payload, slow_circuit, slow_node


async def follow(agent: QpuAgent, program_id: str, wait: float) -> list[dict[str, Any]]:
    """`wait` until the result; every reply in order, the result last."""
    replies = []
    while True:
        reply = await agent.handle("wait", {"programId": program_id, "waitSeconds": wait})
        replies.append(reply)
        if not reply.get("pending"):
            return replies


async def test_a_run_answers_with_progress_and_wait_follows_it_to_the_result() -> None:
    agent = QpuAgent(slow_node("progress"))
    agent.chunk_seconds = 0.1
    first = await agent.handle("run", payload("long", slow_circuit(), SLOW_SHOTS, waitSeconds=0.05))
    assert first["pending"] is True and first["state"] == "Running"
    assert (first["programId"], first["node"], first["shotsTotal"]) == (
        "long",
        "progress",
        SLOW_SHOTS,
    )
    queued = await agent.handle("run", payload("next", ghz(3), 100, waitSeconds=0))
    assert queued["pending"] and queued["state"] == "Queued" and queued["shotsDone"] == 0

    replies = await follow(agent, "long", 0.05)

    *progress, result = replies
    assert progress, "the program outlasted several waits"
    done = [first["shotsDone"]] + [r["shotsDone"] for r in progress]
    assert done == sorted(done) and done[-1] < SLOW_SHOTS
    assert sum(result["counts"].values()) == SLOW_SHOTS
    # The result stays: a late wait, or the same run sent again, gets it at once.
    assert await agent.handle("wait", {"programId": "long", "waitSeconds": 0}) == result
    assert await agent.handle("run", payload("long", slow_circuit(), SLOW_SHOTS)) == result
    assert (await follow(agent, "next", 5))[-1]["counts"]
    assert agent.health().programs_run == 2


async def test_a_run_without_wait_seconds_answers_only_with_its_result() -> None:
    agent = QpuAgent(make_node("whole", 4))
    reply = await agent.handle("run", payload("ghz", ghz(3), 200))
    assert "pending" not in reply and sum(reply["counts"].values()) == 200


async def test_waiting_for_a_program_the_agent_does_not_hold_says_so() -> None:
    agent = QpuAgent(make_node("forgetful", 4))
    with pytest.raises(AgentError) as info:
        await agent.handle("wait", {"programId": "from-before-a-restart", "waitSeconds": 1})
    assert info.value.code == ErrorCode.UNKNOWN_PROGRAM


async def test_waiting_for_a_cancelled_program_says_it_was_cancelled() -> None:
    agent = QpuAgent(slow_node("cancelled"))
    agent.chunk_seconds = 0.1
    await agent.handle("run", payload("doomed", slow_circuit(), SLOW_SHOTS, waitSeconds=0.05))
    await agent.handle("cancel", {"programIds": ["doomed"]})
    with pytest.raises(AgentError) as info:
        await follow(agent, "doomed", 0.05)
    assert info.value.code == ErrorCode.CANCELLED


@pytest.mark.parametrize("wait", [-1, "soon", True, float("inf"), float("nan")])
async def test_wait_seconds_must_be_a_non_negative_number(wait: Any) -> None:
    agent = QpuAgent(make_node("strict", 4))
    with pytest.raises(AgentError) as info:
        await agent.handle("run", payload("p", ghz(3), 10, waitSeconds=wait))
    assert info.value.code == "BadRequest"
    assert agent.health().programs_run == 0


def test_a_long_wait_is_capped() -> None:
    assert _wait_seconds(WaitRequest(program_id="p", wait_seconds=10**9)) == MAX_WAIT_SECONDS
    assert _wait_seconds(WaitRequest(program_id="p", wait_seconds=2)) == 2.0
    assert _wait_seconds(WaitRequest(program_id="p")) is None
