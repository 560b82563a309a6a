"""TPM-attested nodes: `qorch tpm enroll` on a real TPM 2.0 (swtpm), `qorch qpu-agent --tpm`
as a real process, and the operator's node check over the real channel."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.agent_protocol import AgentError, HealthRequest, Op, RunRequest, ask
from qorch.api import QuantumNode
from qorch.api import reasons as R
from qorch.api.base import get_condition
from qorch.channel.identity import Identity
from qorch.pipeline.attestation import ATTEST_TIMEOUT_SECONDS
from qorch.pipeline.identity import node_agent
from qorch.pipeline.resources import check_node
from qorch.qpu.circuits import encode_circuit
from qorch.qpu.transport import AgentConnections, SecureAgentClient
from tests.support import REPO, ghz
from tests.tpm_support import enroll, manifest, requires_swtpm, start_tpm_agent, tpm_agent

pytestmark = requires_swtpm


async def check(node: QuantumNode, client: Any, endpoint: str) -> tuple[str, str, str]:
    """The node's phase, and its Ready condition's reason and message."""
    status = await check_node(node, client, endpoint, 0)
    ready = get_condition(status.conditions, R.READY)
    assert ready is not None
    return status.phase, ready.reason, ready.message


def client_for(operator_key: Any, endpoint: str, key: bytes) -> SecureAgentClient:
    return SecureAgentClient(endpoint, operator_key.identity, key)


class Relay:
    """A caller that sends `attest` elsewhere, or answers it with a recorded reply: what an
    agent that does not hold the TPM state it claims could do."""

    def __init__(self, channel: SecureAgentClient, attest: Any | None = None) -> None:
        self.channel = channel
        self.attest = attest  # another agent's client, or None to replay
        self.recorded: dict[str, Any] | None = None

    async def call(self, op: str, payload: dict[str, Any], *, timeout: float | None = None):
        if op != Op.ATTEST:
            return await self.channel.call(op, payload, timeout=timeout)
        if self.attest is not None:
            return await self.attest.call(op, payload, timeout=timeout)
        if self.recorded is None:
            self.recorded = await self.channel.call(op, payload, timeout=timeout)
        return self.recorded

    async def close(self) -> None:
        await self.channel.close()


async def test_an_enrolled_agent_answers_fresh_challenges_and_is_ready(
    swtpm, tmp_path: Path, operator_key
) -> None:
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    assert enrolled.sealed.stat().st_mode & 0o777 == 0o600
    assert enrolled.identity["attestation"]["pcrs"][0]["index"] == 23
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        client = client_for(operator_key, agent.endpoint, enrolled.public_key)
        try:
            node = enrolled.node(agent.endpoint)
            for _ in range(2):  # a fresh nonce each time, the same verdict
                phase, reason, message = await check(node, client, agent.endpoint)
                assert (phase, reason) == ("Ready", R.AGENT_HEALTHY), message
                assert "verified TPM quote" in message
        finally:
            await client.close()


async def test_a_quote_by_another_attestation_key_fails(
    swtpm, tmp_path: Path, operator_key
) -> None:
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    other = enroll(swtpm(), tmp_path, "beta")
    identity = {
        **enrolled.identity,
        "attestation": {
            **enrolled.identity["attestation"],
            "akPublic": other.identity["attestation"]["akPublic"],
        },
    }
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        client = client_for(operator_key, agent.endpoint, enrolled.public_key)
        try:
            node = enrolled.node(agent.endpoint, identity)
            phase, reason, message = await check(node, client, agent.endpoint)
        finally:
            await client.close()
    assert (phase, reason) == ("Unreachable", R.ATTESTATION_FAILED)
    assert "signature check" in message and "akPublic" in message


async def test_a_replayed_quote_fails(swtpm, tmp_path: Path, operator_key) -> None:
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        relay = Relay(client_for(operator_key, agent.endpoint, enrolled.public_key))
        try:
            node = enrolled.node(agent.endpoint)
            first = await check(node, relay, agent.endpoint)
            second = await check(node, relay, agent.endpoint)  # the first quote again
        finally:
            await relay.close()
    assert first[:2] == ("Ready", R.AGENT_HEALTHY)
    assert second[:2] == ("Unreachable", R.ATTESTATION_FAILED)
    assert "nonce check" in second[2] and "earlier challenge" in second[2]


async def test_a_tampered_node_file_changes_the_quote_and_the_key_stays_sealed(
    swtpm, tmp_path: Path, operator_key
) -> None:
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        client = client_for(operator_key, agent.endpoint, enrolled.public_key)
        try:
            node = enrolled.node(agent.endpoint)
            before = await check(node, client, agent.endpoint)
            enrolled.node_file.write_text(yaml.safe_dump(manifest("alpha", readout_error=0.3)))
            after = await check(node, client, agent.endpoint)
        finally:
            await client.close()
    assert before[:2] == ("Ready", R.AGENT_HEALTHY)
    assert after[:2] == ("Unreachable", R.ATTESTATION_FAILED)
    assert "pcrs check" in after[2] and "PCR 23 differs" in after[2]
    # Restarted with the tampered file, the agent cannot get its key out of the TPM.
    proc = await start_tpm_agent(enrolled, operator_key.pub_file)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 3
    assert b"refuses to unseal" in out


async def test_tampered_agent_code_changes_the_quote_and_the_key_stays_sealed(
    swtpm, tmp_path: Path, operator_key
) -> None:
    """The agent runs from a copy of the package: the same files measure the same."""
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    code = tmp_path / "code"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "src" / "qorch", code / "qorch", ignore=ignore)
    env = {**os.environ, "PYTHONPATH": str(code)}
    async with tpm_agent(enrolled, operator_key.pub_file, env=env) as agent:
        client = client_for(operator_key, agent.endpoint, enrolled.public_key)
        try:
            node = enrolled.node(agent.endpoint)
            before = await check(node, client, agent.endpoint)
            with open(code / "qorch" / "qpu" / "executor.py", "a") as source:
                source.write("\n# one more line\n")
            after = await check(node, client, agent.endpoint)
        finally:
            await client.close()
    assert before[:2] == ("Ready", R.AGENT_HEALTHY), before[2]
    assert after[:2] == ("Unreachable", R.ATTESTATION_FAILED)
    assert "PCR 23 differs" in after[2]
    proc = await start_tpm_agent(enrolled, operator_key.pub_file, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 3, out.decode(errors="replace")
    assert b"refuses to unseal" in out


async def test_a_quote_binding_another_ml_dsa_key_fails(
    swtpm, tmp_path: Path, operator_key, start_agent
) -> None:
    """An agent with a copy of the pinned key but not the TPM relays the challenge to a
    genuine TPM agent, whose quote binds that agent's own key."""
    genuine = enroll(swtpm(), tmp_path, "alpha")
    impostor = await start_agent(genuine.node("http://unused"))
    pinned = {**genuine.identity, "publicKey": impostor.public_key}
    async with tpm_agent(genuine, operator_key.pub_file) as agent:
        tpm_client = client_for(operator_key, agent.endpoint, genuine.public_key)
        relay = Relay(impostor.client(), attest=tpm_client)
        try:
            node = genuine.node(impostor.endpoint, pinned)
            phase, reason, message = await check(node, relay, impostor.endpoint)
        finally:
            await relay.close()
            await tpm_client.close()
    assert (phase, reason) == ("Unreachable", R.ATTESTATION_FAILED)
    assert "key check" in message and "binds ML-DSA key" in message


async def test_an_agent_without_a_tpm_fails_attestation(
    swtpm, tmp_path: Path, operator_key, start_agent
) -> None:
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    plain = await start_agent(enrolled.node("http://unused"))
    client = plain.client()
    try:
        node = enrolled.node(plain.endpoint, {**enrolled.identity, "publicKey": plain.public_key})
        phase, reason, message = await check(node, client, plain.endpoint)
    finally:
        await client.close()
    assert (phase, reason) == ("Unreachable", R.ATTESTATION_FAILED)
    assert "NoTpm" in message


async def test_a_tpm_that_stops_answering_fails_in_bounded_time_alone(
    swtpm, tmp_path: Path, operator_key
) -> None:
    stuck = enroll(swtpm(), tmp_path, "stuck")
    fine = enroll(swtpm(), tmp_path, "fine")
    async with (
        tpm_agent(stuck, operator_key.pub_file, tpm_timeout=2) as stuck_agent,
        tpm_agent(fine, operator_key.pub_file) as fine_agent,
    ):
        stuck_client = client_for(operator_key, stuck_agent.endpoint, stuck.public_key)
        fine_client = client_for(operator_key, fine_agent.endpoint, fine.public_key)
        try:
            stuck_node, fine_node = stuck.node(stuck_agent.endpoint), fine.node(fine_agent.endpoint)
            assert (await check(stuck_node, stuck_client, stuck_agent.endpoint))[0] == "Ready"
            stuck.tpm.pause()
            started = time.monotonic()
            circuit = encode_circuit(ghz(3))
            stuck_verdict, fine_verdict, result, health = await asyncio.gather(
                check(stuck_node, stuck_client, stuck_agent.endpoint),
                check(fine_node, fine_client, fine_agent.endpoint),
                ask(fine_client, RunRequest(program_id="p1", shots=200, circuit=circuit, seed=7)),
                stuck_client.call("health", {}, timeout=10),  # the agent itself still answers
            )
            elapsed = time.monotonic() - started
            stuck.tpm.resume()
            recovered = await check(stuck_node, stuck_client, stuck_agent.endpoint)
        finally:
            await stuck_client.close()
            await fine_client.close()
    assert stuck_verdict[:2] == ("Unreachable", R.ATTESTATION_FAILED)
    assert "did not answer tpm2_quote within 2 s" in stuck_verdict[2]
    assert elapsed < ATTEST_TIMEOUT_SECONDS
    assert fine_verdict[:2] == ("Ready", R.AGENT_HEALTHY)
    assert sum(result.runs[0].values()) == 200
    assert health["node"] == "stuck"
    assert recovered[:2] == ("Ready", R.AGENT_HEALTHY), recovered[2]


class Counting:
    def __init__(self, inner: Any) -> None:
        self.inner, self.ops = inner, []

    async def call(self, op: str, payload: dict[str, Any], *, timeout: float | None = None):
        self.ops.append(op)
        return await self.inner.call(op, payload, timeout=timeout)


async def test_unattested_nodes_work_unless_policy_requires_attestation(start_agent) -> None:
    node = QuantumNode.model_validate({"metadata": {"name": "plain"}, "spec": {"qubits": 3}})
    agent = await start_agent(node)
    node = QuantumNode.model_validate(
        {
            "metadata": {"name": "plain"},
            "spec": {
                "qubits": 3,
                "backend": {"type": "external", "endpoint": agent.endpoint},
                "identity": {"publicKey": agent.public_key},
            },
        }
    )
    client = Counting(agent.client())
    try:
        status = await check_node(node, client, agent.endpoint, 0)
        assert status.phase == "Ready" and client.ops == ["health"]
        status = await check_node(node, client, agent.endpoint, 0, require_attestation=True)
    finally:
        await client.inner.close()
    ready = get_condition(status.conditions, R.READY)
    assert status.phase == "Unreachable" and ready is not None
    assert ready.reason == R.ATTESTATION_REQUIRED and "qorch tpm enroll" in ready.message
    assert client.ops == ["health"]  # nothing more was sent to it


def test_enrolment_refuses_an_unreachable_tpm(tmp_path: Path) -> None:
    node_file = tmp_path / "n.yaml"
    node_file.write_text(yaml.safe_dump(manifest("alpha")))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "qorch", "tpm", "enroll"),
            *("--tpm", f"swtpm:path={tmp_path / 'nothing.sock'}", "--node-file", str(node_file)),
            *("--out", str(tmp_path / "sealed"), "--tpm-timeout", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "tpm enroll: tpm2_createek failed" in done.stderr
    assert not (tmp_path / "sealed").exists()


def test_enrolment_seals_an_existing_key(swtpm, tmp_path: Path) -> None:
    identity = Identity.generate()
    key_file, pub_file = identity.save(tmp_path / "node")
    node_file = tmp_path / "n.yaml"
    node_file.write_text(yaml.safe_dump(manifest("alpha")))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "qorch", "tpm", "enroll", "--tpm", swtpm().tcti),
            *("--node-file", str(node_file), "--identity-key", str(key_file)),
            *("--out", str(tmp_path / "sealed")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)["spec"]["identity"]
    assert printed["publicKey"] == pub_file.read_text().strip()
    sealed = (tmp_path / "sealed").read_text()
    assert "PRIVATE KEY" not in sealed and "PRIVATE KEY" not in done.stdout


async def test_every_new_session_is_attested_before_anything_is_sent_over_it(
    swtpm, tmp_path: Path, operator_key
) -> None:
    """The channel the pipeline uses (node_agent) quotes each new session first: a node
    whose quote fails gets no call at all, not even the circuit of a run."""
    enrolled = enroll(swtpm(), tmp_path, "alpha")
    other = enroll(swtpm(), tmp_path, "beta")
    wrong_ak = {
        **enrolled.identity,
        "attestation": {
            **enrolled.identity["attestation"],
            "akPublic": other.identity["attestation"]["akPublic"],
        },
    }
    circuit = encode_circuit(ghz(2))
    async with tpm_agent(enrolled, operator_key.pub_file) as agent:
        plain = client_for(operator_key, agent.endpoint, enrolled.public_key)
        good = AgentConnections(operator_key.identity)
        bad = AgentConnections(operator_key.identity)
        try:
            vetted = node_agent(good, enrolled.node(agent.endpoint), agent.endpoint, None)
            health = await ask(vetted, HealthRequest(), timeout=30)
            assert health.programs_run == 0
            refused = node_agent(bad, enrolled.node(agent.endpoint, wrong_ak), agent.endpoint, None)
            for request in (
                HealthRequest(),
                RunRequest(program_id="never", shots=10, circuit=circuit, seed=1),
            ):
                with pytest.raises(AgentError) as raised:
                    await ask(refused, request, timeout=30)
                assert raised.value.code == R.ATTESTATION_FAILED
                assert "new session refused" in raised.value.message
                assert "signature check" in raised.value.message
            assert (await ask(plain, HealthRequest(), timeout=30)).programs_run == 0
        finally:
            await plain.close()
            await good.close()
            await bad.close()
