"""The agent protocol's models: the wire format, and what a malformed message is told."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from qorch.agent_protocol import (
    OPERATIONS,
    REQUESTS,
    RUN_REPLY,
    AgentError,
    CalibrationReply,
    CancelRequest,
    EchoReply,
    EchoRequest,
    ErrorCode,
    HealthReply,
    HealthRequest,
    Op,
    ProbeLinkReply,
    RunProgress,
    RunRequest,
    RunResult,
    ask,
    parse_request,
)


def test_every_operation_has_one_request_model() -> None:
    assert OPERATIONS == set(Op) == set(REQUESTS)
    for op, model in REQUESTS.items():
        assert model.operation() == op
        assert model.reply_model() is not None


def test_error_codes_keep_their_wire_values() -> None:
    assert ErrorCode.BAD_REQUEST == "BadRequest"
    assert ErrorCode.UNKNOWN_PROGRAM == "UnknownProgram"
    assert str(AgentError(ErrorCode.CANCELLED, "gone")) == "Cancelled: gone"


def test_a_run_request_is_camel_case_without_the_fields_it_leaves_out() -> None:
    request = RunRequest(program_id="job/1/p0", shots=100, circuit="QPY")
    assert request.wire() == {"programId": "job/1/p0", "shots": 100, "circuit": "QPY"}
    batch = RunRequest(program_id="p", shots=5, circuits=["a", "b"], seed=7, noise={"nodes": []})
    assert batch.wire() == {
        "programId": "p",
        "shots": 5,
        "circuits": ["a", "b"],
        "noise": {"nodes": []},
        "seed": 7,
    }
    assert batch.encoded == ["a", "b"] and request.encoded == ["QPY"]
    assert parse_request("run", batch.wire()) == batch


def test_replies_read_what_agents_send() -> None:
    result = RUN_REPLY.validate_python(
        {
            "programId": "p",
            "node": "qpu-a",
            "shots": 10,
            "transpileSeconds": 0.01,
            "simulateSeconds": 0.2,
            "results": [{"00": 10}, {"11": 10}],
        }
    )
    assert isinstance(result, RunResult) and result.runs == [{"00": 10}, {"11": 10}]
    assert "counts" not in result.wire()
    progress = RUN_REPLY.validate_python(
        {
            "programId": "p",
            "node": "qpu-a",
            "pending": True,
            "state": "Running",
            "shotsDone": 8,
            "shotsTotal": 10,
        }
    )
    assert isinstance(progress, RunProgress) and progress.shots_done == 8
    older = CalibrationReply.model_validate(
        {
            "node": "qpu-a",
            "readoutError": 0.01,
            "singleQubitError": 0.001,
            "twoQubitError": None,
            "fidelity": 0.98,
            "errorRate": 0.01,
            "seconds": 1.5,
        }
    )
    assert older.readout_error_0to1 is None  # from before asymmetric readout calibration
    echo = EchoReply(payload=EchoRequest(seq=3, sent_at_ns=1), received_at_ns=5, sent_at_ns=6)
    assert echo.wire() == {"payload": {"seq": 3, "sentAtNs": 1}, "receivedAtNs": 5, "sentAtNs": 6}


@pytest.mark.parametrize(
    ("op", "payload", "says"),
    [
        (
            "run",
            {"programId": "p", "shots": 0, "circuit": "x"},
            "run.shots: Input should be greater than 0",
        ),
        ("run", {"shots": 1, "circuit": "x"}, "run.programId: Field required"),
        ("run", {"programId": "p", "shots": 1}, "run: Value error, exactly one of circuit and"),
        ("run", {"programId": "p", "shots": True, "circuit": "x"}, "run.shots: Input should be"),
        ("run", {"programId": "p", "shots": "9", "circuit": "x"}, "run.shots: Input should be"),
        ("wait", {"programId": "p", "waitSeconds": -1}, "wait.waitSeconds: Input should be"),
        ("wait", {"programId": "p", "waitSeconds": float("nan")}, "wait.waitSeconds: Input"),
        ("cancel", {"programIds": "p"}, "cancel.programIds: Input should be a valid list"),
        ("cancel", {"programIds": ["p", ""]}, "cancel.programIds.1: String should have"),
        ("echo", {"seq": "one"}, "echo.seq: Input should be a valid integer"),
        (
            "probe_link",
            {"fidelity": 0.2, "successProbability": 0.5, "generationRateHz": 1e3, "pairs": 10},
            "probe_link.fidelity: Input should be greater than 0.25",
        ),
    ],
)
def test_a_malformed_request_is_told_which_field(
    op: str, payload: dict[str, Any], says: str
) -> None:
    with pytest.raises(AgentError) as info:
        parse_request(op, payload)
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert info.value.message.startswith(says), info.value.message


def test_an_unknown_operation_is_named() -> None:
    with pytest.raises(AgentError) as info:
        parse_request("reboot", {})
    assert info.value.code == ErrorCode.UNKNOWN_OPERATION
    assert "'reboot'" in info.value.message


def test_fields_a_request_does_not_know_are_ignored() -> None:
    assert parse_request("health", {"verbose": True}) == HealthRequest()
    assert parse_request("cancel", {"programIds": [], "op": "run"}) == CancelRequest(program_ids=[])


class Scripted:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def call(
        self, op: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        self.sent.append((op, payload))
        return self.reply


async def test_ask_sends_the_operation_and_reads_its_reply() -> None:
    client = Scripted(
        {"node": "qpu-a", "qubits": 4, "programsRun": 2, "busy": False, "uptimeSeconds": 1.0}
    )
    health = await ask(client, HealthRequest(), timeout=5)
    assert isinstance(health, HealthReply) and health.programs_run == 2
    assert client.sent == [("health", {})]


async def test_a_reply_that_does_not_fit_is_a_bad_reply() -> None:
    boasting = Scripted(
        {
            "measuredFidelity": 0.9,
            "fidelityStdError": 0.01,
            "attempts": 3,
            "successes": 4,
            "meanGenerationSeconds": 1e-3,
        }
    )
    with pytest.raises(AgentError) as info:
        await ask(boasting, HealthRequest())
    assert info.value.code == ErrorCode.BAD_REPLY
    assert "health reply.node: Field required" in info.value.message
    with pytest.raises(ValueError, match="4 successes out of 3 attempts"):
        ProbeLinkReply.model_validate(boasting.reply)


@pytest.mark.parametrize(
    ("nonce", "error"),
    [
        ("QUJD" * 6 + "Q", "attest: Value error, nonce is not base64"),
        ("QUJD" * 22, "attest: Value error, nonce of 66 bytes"),
        ("!" * 40, "attest.nonce: String should match pattern"),
        ("QUJD" * 40, "attest.nonce: String should have at most 88 characters"),
    ],
)
def test_an_attest_nonce_must_be_16_to_64_bytes_of_base64(nonce: str, error: str) -> None:
    with pytest.raises(AgentError, match=re.escape(error)):
        parse_request("attest", {"nonce": nonce})
    good = base64.b64encode(bytes(32)).decode()
    assert parse_request("attest", {"nonce": good}).nonce_bytes == bytes(32)  # type: ignore[union-attr]
