"""What the pipeline pins for a node, and what a node whose identity spec cannot be pinned
shows: a clear reason on its status, and no call sent to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.identity import InvalidIdentity, node_agent, node_pins
from qorch.pipeline.resources import check_node
from qorch.qpu.transport import AgentConnections
from tests.support import make_node

OLD, NEW = Identity.generate(), Identity.generate()
OLD_PUB, NEW_PUB = encode_public_key(OLD.public_key), encode_public_key(NEW.public_key)
ENDPOINT = "http://127.0.0.1:9"  # nothing listens: a call that went out would be Unreachable


def node_with(identity: dict) -> object:
    return make_node(
        "qpu", 4, backend={"type": "external", "endpoint": ENDPOINT}, identity=identity
    )


def test_a_rotation_pins_both_keys_each_in_its_window() -> None:
    node = node_with(
        {
            "publicKey": OLD_PUB,
            "rotation": {
                "nextPublicKey": NEW_PUB,
                "notBefore": "2026-03-01T12:00:00Z",
                "notAfter": "2026-03-01T13:00:00+00:00",
            },
        }
    )
    inside = node_pins(node, None, lambda: datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    assert inside is not None and inside.fingerprints() == [OLD.fingerprint, NEW.fingerprint]
    after = node_pins(node, None, lambda: datetime(2026, 3, 1, 13, 0, 1, tzinfo=UTC))
    assert after is not None and after.fingerprints() == [NEW.fingerprint]
    before = node_pins(node, None, lambda: datetime(2026, 3, 1, 11, 59, tzinfo=UTC))
    assert before is not None and before.fingerprints() == [OLD.fingerprint]


def test_an_unpinned_external_node_has_no_pins_and_an_aer_node_its_managed_key() -> None:
    assert node_pins(node_with({}), OLD.public_key) is None
    aer = make_node("qpu", 4)
    pins = node_pins(aer, OLD.public_key)
    assert pins is not None and pins.fingerprints() == [OLD.fingerprint]


MALFORMED = [
    ({"publicKey": "not base64!"}, r"spec\.identity\.publicKey: public key is not valid base64"),
    (
        {"publicKey": OLD_PUB, "rotation": {"nextPublicKey": "@@@"}},
        r"spec\.identity\.rotation\.nextPublicKey: public key is not valid base64",
    ),
    (
        {"publicKey": OLD_PUB, "rotation": {"nextPublicKey": OLD_PUB}},
        r"nextPublicKey is publicKey itself",
    ),
    (
        {
            "publicKey": OLD_PUB,
            "rotation": {
                "nextPublicKey": NEW_PUB,
                "notBefore": "2026-03-01T13:00:00Z",
                "notAfter": "2026-03-01T12:00:00Z",
            },
        },
        r"notAfter \(2026-03-01T12:00:00Z\) is not after notBefore",
    ),
    (
        {"publicKey": OLD_PUB, "rotation": {"nextPublicKey": NEW_PUB, "notAfter": "tomorrow"}},
        r"rotation\.notAfter: 'tomorrow' is not an RFC 3339 time",
    ),
    (
        {
            "publicKey": OLD_PUB,
            "rotation": {"nextPublicKey": NEW_PUB, "notAfter": "2026-03-01T12:00:00"},
        },
        r"rotation\.notAfter: .* has no time zone",
    ),
    ({"rotation": {"nextPublicKey": NEW_PUB}}, r"rotation needs spec\.identity\.publicKey"),
]


@pytest.mark.parametrize(("identity", "message"), MALFORMED)
def test_a_malformed_identity_spec_is_refused_naming_the_field(
    identity: dict, message: str
) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        node_pins(node_with(identity), None)


@pytest.mark.asyncio
@pytest.mark.parametrize(("identity", "message"), MALFORMED)
async def test_a_malformed_identity_spec_makes_the_node_unreachable_with_its_reason(
    identity: dict, message: str
) -> None:
    node = node_with(identity)
    connections = AgentConnections(Identity.generate())
    client = node_agent(connections, node, ENDPOINT, None)
    status = await check_node(node, client, ENDPOINT, 0)
    reachable = get_condition(status.conditions, R.REACHABLE)
    assert reachable is not None and reachable.status == "False"
    assert reachable.reason == R.INVALID_IDENTITY and re.search(message, reachable.message)
    assert status.phase == "Unreachable"
    ready = get_condition(status.conditions, R.READY)
    assert ready is not None and ready.reason == R.INVALID_IDENTITY
    assert status.accepted_fingerprints == []
    await connections.close()
