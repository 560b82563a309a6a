"""Malformed messages over the authenticated channel to a `qorch qpu-agent` process: each is
refused with a typed error naming the field, and the agent goes on serving well-formed ones."""

from __future__ import annotations

from typing import Any

import pytest

from qorch.agent_protocol import ErrorCode, RunRequest, ask
from qorch.channel import RemoteError
from qorch.channel.http import ChannelClient
from qorch.qpu.circuits import encode_circuit
from tests.support import ghz, make_node

GHZ = encode_circuit(ghz(3))
LINK = {"successProbability": 0.5, "generationRateHz": 1000.0, "pairs": 100}

MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "run",
        {"programId": "p", "circuit": GHZ, "shots": 0},
        ErrorCode.BAD_REQUEST,
        "run.shots: Input should be greater than 0",
    ),
    ("run", {"circuit": GHZ, "shots": 10}, ErrorCode.BAD_REQUEST, "run.programId: Field required"),
    (
        "run",
        {"programId": "p", "circuit": GHZ, "shots": "10"},
        ErrorCode.BAD_REQUEST,
        "run.shots: Input should be a valid integer",
    ),
    (
        "run",
        {"programId": "p", "shots": 10},
        ErrorCode.BAD_REQUEST,
        "run: Value error, exactly one of circuit and circuits is needed",
    ),
    (
        "run",
        {"programId": "p", "circuits": [GHZ, "not a circuit"], "shots": 10},
        ErrorCode.BAD_REQUEST,
        "run.circuits.1: not a QPY circuit",
    ),
    (
        "run",
        {"programId": "p", "circuit": GHZ, "shots": 10, "noise": {"nodes": 3}},
        ErrorCode.BAD_REQUEST,
        "run.noise: invalid composite noise description",
    ),
    (
        "wait",
        {"programId": "p", "waitSeconds": -1},
        ErrorCode.BAD_REQUEST,
        "wait.waitSeconds: Input should be greater than or equal to 0",
    ),
    (
        "cancel",
        {"programIds": "p"},
        ErrorCode.BAD_REQUEST,
        "cancel.programIds: Input should be a valid list",
    ),
    (
        "probe_link",
        {"fidelity": 2, **LINK},
        ErrorCode.BAD_REQUEST,
        "probe_link.fidelity: Input should be less than or equal to 1",
    ),
    ("echo", {"seq": "one"}, ErrorCode.BAD_REQUEST, "echo.seq: Input should be a valid integer"),
    ("reboot", {}, ErrorCode.UNKNOWN_OPERATION, "unknown operation 'reboot'"),
]


async def test_malformed_messages_get_typed_errors_and_the_agent_serves_on(start_agent) -> None:
    agent = await start_agent(make_node("strict", 4))
    # The channel itself, with no client-side reading of the request in between.
    channel = ChannelClient(agent.endpoint, agent.operator.identity, agent.identity.public_key)
    client = agent.client()
    try:
        for op, payload, code, says in MALFORMED:
            with pytest.raises(RemoteError) as info:
                await channel.call(op, payload, timeout=30)
            assert info.value.error_type == code, (op, payload)
            # The wire message is the agent's AgentError: `BadRequest: run.shots: ...`.
            said = info.value.remote_message
            assert said.startswith(f"{code}: {says}"), said
        # None of them took the id: a well-formed run of it runs, as the pipeline sends it.
        request = RunRequest(program_id="p", circuit=GHZ, shots=200)
        result = await ask(client, request, timeout=120)
        health = await channel.call("health", {}, timeout=30)  # the same session serves on
    finally:
        await channel.close()
        await client.close()
    assert result.counts is not None and sum(result.counts.values()) == 200
    assert set(result.counts) <= {"000", "111"}
    assert health["programsRun"] == 1 and not health["busy"]
