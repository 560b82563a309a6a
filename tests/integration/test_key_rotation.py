"""A node's key rotates while it runs programs, against a `qorch qpu-agent` process: the
operator's connection pins the current and the next key, the agent takes its new key file
without a restart, every program finishes, and once the window has passed the old key is
refused with KeyRetired. The operator's own key rotates the same way on the agent's side.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qorch.agent_protocol import AgentError
from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.channel import KeyPins
from qorch.channel.identity import Identity, encode_public_key
from qorch.pipeline.resources import check_node
from qorch.qpu.transport import AgentConnections, ProgressPolling
from tests.integration.test_agent_cancel_channel import QUBITS, SHOT_BY_SHOT
from tests.integration.test_agent_long_calls import POLLING, program, until_busy
from tests.support import make_node

SHOTS = 3000
#: The long-call tests' polling, with room for what a key switch adds to one exchange: the
#: call on a forgotten session is refused, then a new handshake, three round trips where one
#: was, each of which may wait for a chunk of shots to let go of the agent's interpreter
#: (2.5 s failed 1 run in 6 with the two cores otherwise busy).
ROTATION_POLLING = ProgressPolling(wait_seconds=POLLING.wait_seconds, liveness_seconds=10.0)


class WallClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_node_key_rotates_under_running_programs_then_the_old_key_is_retired(
    start_agent,
) -> None:
    # Shot by shot, the programs last seconds: on a noiseless node each drew its shots from
    # one simulation and all three could finish before the switch.
    node = make_node("rotating", QUBITS, noise=SHOT_BY_SHOT)
    agent = await start_agent(node)
    old, new = agent.identity, Identity.generate()
    clock = WallClock()
    window_end = clock.now + timedelta(minutes=5)
    connections = AgentConnections(agent.operator.identity)
    client = connections.get("rotating", agent.endpoint, old.public_key)
    client.polling = ROTATION_POLLING  # type: ignore[attr-defined]
    runs = [
        asyncio.create_task(client.call("run", program(f"p{i}", SHOTS), timeout=300))
        for i in range(3)
    ]
    try:
        await until_busy(agent)
        # 1. The next key is published: the same connection pins both keys.
        pins = KeyPins.rotating(old.public_key, new.public_key, None, window_end, clock)
        assert connections.get("rotating", agent.endpoint, pins) is client
        # 2. The node switches to its new key, with its programs running.
        agent.rotate_to(new)
        health = await client.call("health", {})
        assert client.peer_fingerprint == new.fingerprint
        assert health["busy"], "the programs should still be running at the switch"
        # 3. Every program finishes, its result whole.
        results = await asyncio.gather(*runs)
    finally:
        for run in runs:
            run.cancel()
    assert [sum(r["counts"].values()) for r in results] == [SHOTS] * 3
    assert (await client.call("health", {}))["programsRun"] == 3

    # 4. After the window the old key is refused: a node presenting it again (a copy of
    # the retired key, say) is told why, and the status says so.
    clock.now = window_end + timedelta(seconds=1)
    agent.rotate_to(old)
    with pytest.raises(AgentError) as refused:
        await client.call("health", {})
    assert refused.value.code == "KeyRetired"
    assert old.fingerprint in refused.value.message
    status = await check_node(node, client, agent.endpoint, 0)
    reachable = get_condition(status.conditions, R.REACHABLE)
    assert reachable is not None and reachable.reason == R.KEY_RETIRED
    assert "outside its rotation window" in reachable.message
    assert status.phase == "Unreachable"
    assert status.accepted_fingerprints == [new.fingerprint]

    agent.rotate_to(new)  # back on the new key: reachable again, and the status says which
    status = await check_node(node, client, agent.endpoint, 0)
    assert status.phase == "Ready" and status.identity_fingerprint == new.fingerprint
    await connections.close()


def replace_file(path: Path, text: str) -> None:
    """Write beside, then rename over: a new file, as a kubelet swaps a mounted Secret."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def test_the_operator_key_rotates_through_the_agents_trusted_key_file(
    start_agent, tmp_path: Path
) -> None:
    """The next operator key is added to the trusted file, the operator swaps to it, the old
    key is removed from the file: the agent follows each step without a restart."""
    current, following = Identity.generate(), Identity.generate()
    trusted_file = tmp_path / "operators.pub"
    replace_file(trusted_file, encode_public_key(current.public_key) + "\n")
    agent = await start_agent(make_node("trusting", 2), trusted=[trusted_file])
    node_key = agent.identity.public_key
    old_operator = AgentConnections(current).get("trusting", agent.endpoint, node_key)
    new_operator = AgentConnections(following).get("trusting", agent.endpoint, node_key)
    try:
        await old_operator.call("health", {})
        with pytest.raises(AgentError) as untrusted:
            await new_operator.call("health", {})
        assert untrusted.value.code == "UntrustedPeer"

        # 1. Publish: the next key beside the current one.
        replace_file(
            trusted_file,
            f"{encode_public_key(current.public_key)}\n{encode_public_key(following.public_key)}\n",
        )
        await new_operator.call("health", {})
        await old_operator.call("health", {})
        # 2. Swap (the operator restarts with the next key), 3. retire the old key: its
        # session is forgotten and a new one refused.
        replace_file(trusted_file, encode_public_key(following.public_key) + "\n")
        await new_operator.call("health", {})
        with pytest.raises(AgentError) as retired:
            await old_operator.call("health", {})
        assert retired.value.code == "UntrustedPeer"
    finally:
        await old_operator.close()
        await new_operator.close()


def test_an_agent_refuses_to_start_on_a_trust_file_with_a_bad_line(tmp_path: Path) -> None:
    key_file, _ = Identity.generate().save(tmp_path / "node")
    trusted = tmp_path / "operators.pub"
    trusted.write_text(encode_public_key(Identity.generate().public_key) + "\nnot-a-key\n")
    manifest = make_node("refuses", 2).model_dump_json(by_alias=True, exclude_none=True)
    keys = ["--identity-key", str(key_file), "--trusted-client-key", str(trusted)]
    proc = subprocess.run(
        [sys.executable, "-m", "qorch", "qpu-agent", "--node-json", manifest, *keys],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{trusted}, line 2: public key is not valid base64" in proc.stderr
    assert "Traceback" not in proc.stderr
