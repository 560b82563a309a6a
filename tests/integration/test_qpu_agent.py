"""The QPU agent over real HTTP on loopback, sampling with qiskit-aer and the node's noise."""

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qiskit import QuantumCircuit

from qorch.channel.identity import Identity
from qorch.local.agents import AgentProcess
from qorch.qpu.agent import WARM_NOISY_QUBITS, WARM_SIMULATION_QUBITS
from qorch.qpu.circuits import encode_circuit
from qorch.qpu.transport import AgentError, SecureAgentClient
from qorch.telemetry import tracing
from qorch.telemetry.agent import SPANS_DIR
from qorch.telemetry.spool import read_spool_file, spool_files
from tests.support import ghz, make_node

SHOTS = 4000


async def run(client, circuit, program_id, shots=SHOTS):
    payload = {"programId": program_id, "circuit": encode_circuit(circuit), "shots": shots}
    return await client.call("run", payload, timeout=120)


async def test_noiseless_ghz_yields_only_all_zeros_and_all_ones(start_agent):
    agent = await start_agent(make_node("ideal", 8))
    client = agent.client()
    try:
        reply = await run(client, ghz(5), "ghz-ideal")
    finally:
        await client.close()
    assert set(reply["counts"]) == {"00000", "11111"}
    assert sum(reply["counts"].values()) == SHOTS
    # a fair coin: 5 sigma either side of half
    assert abs(reply["counts"]["00000"] - SHOTS / 2) < 5 * math.sqrt(SHOTS / 4)


async def test_readout_error_flips_bits_in_the_expected_proportion(start_agent):
    p = 0.1
    agent = await start_agent(make_node("noisy", 8, noise={"readoutError": p}))
    client = agent.client()
    try:
        counts = (await run(client, ghz(5), "ghz-readout"))["counts"]
    finally:
        await client.close()
    observed = {w: 0 for w in range(6)}
    for key, n in counts.items():  # distance to the nearer ideal outcome = number of flips
        observed[min(key.count("1"), key.count("0"))] += n
    for flips, expected_p in [
        (0, (1 - p) ** 5 + p**5),
        (1, 5 * p * (1 - p) ** 4 + 5 * p**4 * (1 - p)),
    ]:
        sigma = math.sqrt(expected_p * (1 - expected_p) / SHOTS)
        assert abs(observed[flips] / SHOTS - expected_p) < 5 * sigma, (flips, observed)


async def test_gate_noise_and_decoherence_lower_the_ghz_population(start_agent):
    noise = {
        "t1Microseconds": 20,
        "t2Microseconds": 15,
        "twoQubitError": 0.05,
        "twoQubitGateNanoseconds": 400,
        "singleQubitGateNanoseconds": 50,
        "measureNanoseconds": 1000,
    }
    agent = await start_agent(make_node("lossy", 6, noise=noise))
    client = agent.client()
    try:
        counts = (await run(client, ghz(5), "ghz-lossy"))["counts"]
    finally:
        await client.close()
    good = counts.get("00000", 0) + counts.get("11111", 0)
    assert good < 0.95 * SHOTS  # noise visibly degrades the state ...
    assert good > 0.5 * SHOTS  # ... without destroying it


async def test_circuit_wider_than_the_node_is_refused(start_agent):
    agent = await start_agent(make_node("small", 3))
    client = agent.client()
    try:
        with pytest.raises(AgentError) as info:
            await run(client, ghz(5), "too-wide")
        health = await client.call("health", {})
    finally:
        await client.close()
    assert info.value.code == "ProgramRejected"
    assert "5 qubits but the node has 3" in info.value.message
    assert health["programsRun"] == 0


async def test_a_program_id_runs_once_even_when_sent_twice(start_agent):
    agent = await start_agent(make_node("once", 4))
    client = agent.client()
    try:
        first = await run(client, ghz(3), "same-id", shots=500)
        second = await run(client, ghz(3), "same-id", shots=500)
        health = await client.call("health", {})
    finally:
        await client.close()
    assert first == second
    assert health["programsRun"] == 1


async def test_feed_forward_runs_on_the_agent(start_agent):
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    qc.measure(1, 1)
    agent = await start_agent(make_node("dynamic", 2))
    client = agent.client()
    try:
        counts = (await run(client, qc, "ff", shots=1000))["counts"]
    finally:
        await client.close()
    assert set(counts) == {"00", "11"}


async def test_an_agent_with_another_key_gets_no_circuit(start_agent, operator_key):
    agent = await start_agent(make_node("impostor", 4))
    wrong_pin = Identity.generate().public_key
    client = SecureAgentClient(agent.endpoint, operator_key.identity, wrong_pin)
    try:
        with pytest.raises(AgentError) as info:
            await run(client, ghz(3), "to-the-wrong-node", shots=10)
        health = await agent.client().call("health", {})
    finally:
        await client.close()
    assert info.value.code in ("PeerKeyMismatch", "AuthenticationFailed")
    assert health["programsRun"] == 0


async def test_an_untrusted_operator_is_refused(start_agent):
    agent = await start_agent(make_node("guarded", 4))
    stranger = SecureAgentClient(agent.endpoint, Identity.generate(), agent.identity.public_key)
    try:
        with pytest.raises(AgentError) as info:
            await stranger.call("health", {})
    finally:
        await stranger.close()
    assert info.value.code == "UntrustedPeer"


async def test_unreachable_agent_is_an_agent_error(operator_key):
    client = SecureAgentClient("http://127.0.0.1:9", operator_key.identity, b"\0" * 1952)
    try:
        with pytest.raises(AgentError) as info:
            await client.call("health", {}, timeout=5)
    finally:
        await client.close()
    assert info.value.code == "Unreachable"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


NOISY = {"singleQubitError": 0.001, "twoQubitError": 0.01}


def loaded_aer(agent) -> list[int]:
    """The agent's children that have loaded Aer: its simulation process, once warm."""
    return [
        pid
        for pid in children(agent.process.proc.pid)
        if "qiskit_aer" in Path(f"/proc/{pid}/maps").read_text()
    ]


async def test_a_wide_node_starts_its_simulation_process_with_the_agent(start_agent):
    """Its programs are long steps, run there: the first job does not wait for Aer to load,
    nor share the cores with its loading (the agent listens once it is up). A narrow node's
    agent starts none until a step needs one."""
    wide = await start_agent(make_node("wide", WARM_SIMULATION_QUBITS))
    assert loaded_aer(wide), "listening before its simulation process has loaded Aer"
    # Under gate noise from fewer qubits: a density matrix is 4^n per gate.
    noisy = await start_agent(make_node("noisy", WARM_NOISY_QUBITS, noise=NOISY))
    assert loaded_aer(noisy)
    narrow = await start_agent(make_node("narrow", WARM_NOISY_QUBITS - 1, noise=NOISY))
    assert children(narrow.process.proc.pid) == []
    client = wide.client()
    try:
        reply = await run(client, ghz(5), "after-warm", shots=100)
    finally:
        await client.close()
    assert set(reply["counts"]) <= {"0" * 5, "1" * 5}


async def test_an_agent_as_pid_1_stops_at_once_on_sigterm(tmp_path, operator_key):
    """In its pod the agent is PID 1, which the kernel does not end on a signal it has no
    handler for: it must handle SIGTERM itself, or deleting its pod waits out the grace
    period (30 s) until SIGKILL. A wide node's agent, with its simulation process."""
    if subprocess.run(["unshare", "--pid", "--fork", "true"], check=False).returncode:
        pytest.skip("no PID namespaces here (unshare --pid)")
    key_file, _ = Identity.generate().save(tmp_path / "agent")
    node = make_node("wide", WARM_SIMULATION_QUBITS)
    proc = await asyncio.create_subprocess_exec(
        *("unshare", "--pid", "--fork", "--kill-child"),
        *(sys.executable, "-m", "qorch", "qpu-agent", "--host", "127.0.0.1", "--port", "0"),
        *("--node-json", node.model_dump_json(by_alias=True, exclude_none=True)),
        *("--identity-key", str(key_file), "--trusted-client-key", str(operator_key.pub_file)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while b"listening" not in await proc.stdout.readline():
                pass
            while not (agent := children(proc.pid)) or not children(agent[0]):
                await asyncio.sleep(0.1)  # until its simulation process runs
        os.kill(agent[0], signal.SIGTERM)
        began = time.monotonic()
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
        took = time.monotonic() - began
        assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
        assert took < 10, took  # without a handler: never, until the 30 s timeout above
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_an_agent_stopped_right_after_a_call_has_spooled_its_span(tmp_path, operator_key):
    """The agent batches its spans for half a second: stopping flushes the batch, or a
    pod's last calls would leave no trace."""
    key_file, _ = Identity.generate().save(tmp_path / "agent")
    identity = Identity.load(key_file)
    agent = await AgentProcess.start(
        make_node("traced", 4), key_file, [operator_key.pub_file], telemetry_dir=tmp_path
    )
    try:
        client = SecureAgentClient(agent.endpoint, operator_key.identity, identity.public_key)
        try:
            # Inside a trace: the agent records no span for calls outside any.
            with tracing.tracer().start_as_current_span("job"), tracing.channel_trace():
                await run(client, ghz(3), "traced-run", shots=100)
        finally:
            await client.close()
    finally:
        await agent.stop()
    assert agent.proc.returncode == 0
    names = {s.name for f in spool_files(tmp_path / SPANS_DIR) for s in read_spool_file(f)}
    assert "agent.run" in names, names
