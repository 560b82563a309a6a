"""The node check's attestation step against agents that answer badly: each failure is an
AttestationFailed node with a message, never an exception out of the check."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from qorch.agent_protocol import AgentError, ErrorCode
from qorch.api import QuantumNode
from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.resources import check_node

PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
KEY = encode_public_key(Identity.generate().public_key)
HEALTH = {"node": "n", "qubits": 2, "programsRun": 0, "busy": False, "uptimeSeconds": 1.0}


def node(public_key: str = KEY) -> QuantumNode:
    attestation = {"ekPublic": PEM, "akPublic": PEM, "pcrs": [{"index": 23, "sha256": "0" * 64}]}
    return QuantumNode.model_validate(
        {
            "metadata": {"name": "n"},
            "spec": {
                "qubits": 2,
                "backend": {"type": "external", "endpoint": "http://127.0.0.1:1"},
                "identity": {"publicKey": public_key, "attestation": attestation},
            },
        }
    )


class Scripted:
    """Answers health, and `attest` with what the test gives (a reply, or an error)."""

    def __init__(self, attest: dict[str, Any] | AgentError) -> None:
        self.attest = attest

    async def call(self, op: str, payload: dict[str, Any], *, timeout: float | None = None):
        if op == "health":
            return HEALTH
        assert op == "attest" and timeout is not None  # every challenge is bounded
        if isinstance(self.attest, AgentError):
            raise self.attest
        return self.attest

    async def close(self) -> None:
        pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reply(**fields: Any) -> dict[str, Any]:
    return {
        "quote": b64(b"\xff\x54\x43\x47"),
        "signature": b64(b"s"),
        "nonce": b64(bytes(32)),
        "publicKey": KEY,
        "pcrs": {},
        **fields,
    }


async def verdict(agent: Scripted, pinned: QuantumNode | None = None) -> tuple[str, str, str]:
    status = await check_node(pinned or node(), agent, "http://127.0.0.1:1", 0)  # type: ignore[arg-type]
    ready = get_condition(status.conditions, R.READY)
    assert ready is not None
    return status.phase, ready.reason, ready.message


rng = random.Random(7)


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        (Scripted(AgentError(ErrorCode.TIMEOUT, "slow")), "no answer to the TPM challenge"),
        (Scripted(AgentError(ErrorCode.NO_TPM, "none")), "could not attest: NoTpm"),
        (Scripted(AgentError(ErrorCode.TPM_FAILED, "gone")), "could not attest: TpmFailed"),
        (Scripted({"quote": 5}), "BadReply"),
        (Scripted(reply(quote="QUJDQ")), "not valid base64"),
        (Scripted(reply(quote="QUJD" * 3000)), "BadReply"),
        (Scripted(reply(pcrs={"23": "zz"})), "BadReply"),
        (Scripted(reply(quote=b64(bytes(rng.randrange(256) for _ in range(200))))), "format"),
        (Scripted(reply()), "format check: quote truncated in type"),
    ],
)
async def test_a_bad_answer_is_attestation_failed(agent: Scripted, message: str) -> None:
    phase, reason, text = await verdict(agent)
    assert (phase, reason) == ("Unreachable", R.ATTESTATION_FAILED)
    assert message in text


async def test_an_unusable_pinned_key_is_attestation_failed() -> None:
    phase, reason, text = await verdict(Scripted(reply()), node(public_key="not base64!"))
    assert (phase, reason) == ("Unreachable", R.ATTESTATION_FAILED)
    assert "spec.identity.publicKey" in text
