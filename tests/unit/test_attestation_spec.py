"""spec.identity.attestation: what a QuantumNode pins of its TPM."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qorch.api import QuantumNode
from qorch.channel.identity import Identity, encode_public_key

PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"


def node(identity: dict) -> QuantumNode:
    return QuantumNode.model_validate(
        {"metadata": {"name": "n"}, "spec": {"qubits": 1, "identity": identity}}
    )


def attestation(*indexes: int) -> dict:
    pcrs = [{"index": i, "sha256": "ab" * 32} for i in indexes]
    return {"ekPublic": PEM, "akPublic": PEM, "pcrs": pcrs}


def test_attestation_pins_keys_and_pcrs_beside_the_ml_dsa_key() -> None:
    key = encode_public_key(Identity.generate().public_key)
    pinned = node({"publicKey": key, "attestation": attestation(23)}).spec.identity.attestation
    assert pinned is not None and pinned.pcrs[0].index == 23


@pytest.mark.parametrize(
    ("identity", "error"),
    [
        ({"attestation": attestation(23)}, "needs identity.publicKey"),
        ({"publicKey": "x", "attestation": attestation(23, 23)}, "names a PCR twice"),
        ({"publicKey": "x", "attestation": attestation(24)}, "less than or equal to 23"),
        ({"publicKey": "x", "attestation": attestation()}, "at least 1 item"),
    ],
)
def test_an_unusable_attestation_is_refused(identity: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        node(identity)
