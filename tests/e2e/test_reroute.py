"""Pause and re-route through the operator on a real API server, with real agents: a node
whose error rate rises mid-job turns Degraded and its job moves elsewhere; an agent that
dies mid-job has its job moved too."""

from __future__ import annotations

import json
import time

from tests.e2e.test_operator import SLOW_CIRCUIT, succeeded
from tests.support import make_node

CALIBRATION_SECONDS = 3.0  # the operator fixture's QORCH_CALIBRATION_SECONDS
NOISE = {"twoQubitError": 0.01, "readoutError": 0.01}


def external_node(name: str, agent, noise: dict) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {
            "qubits": 10,
            "noise": noise,
            "safety": {"maxErrorRate": 0.05},
            "backend": {"type": "external", "endpoint": agent.endpoint},
            "identity": {"publicKey": agent.public_key},
        },
    }


async def two_nodes(cluster, namespace, start_agent) -> dict:
    """`first` (less noisy, so plans pick it) and `spare`, both Ready."""
    spare_noise = {**NOISE, "twoQubitError": 0.02}
    agents = {
        "first": await start_agent(make_node("first", 10, noise=NOISE), reloadable=True),
        "spare": await start_agent(make_node("spare", 10, noise=spare_noise), reloadable=True),
    }
    for name, noise in (("first", NOISE), ("spare", spare_noise)):
        manifest = external_node(name, agents[name], noise)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    for name in agents:
        cluster.wait_for(
            "qn",
            name,
            namespace,
            lambda o: (
                o.get("status", {}).get("phase") == "Ready" and o["status"].get("calibration")
            ),
        )
    return agents


def submit_slow_job(cluster, namespace, shots: int) -> None:
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "slow"},
        "spec": {"shots": shots, "strategy": "single", "circuit": {"qasm": SLOW_CIRCUIT}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))
    running = cluster.wait_for(
        "djob", "slow", namespace, lambda o: o.get("status", {}).get("phase") == "Running"
    )
    assert running["status"]["plan"]["nodes"] == "first"


async def programs_run(agent) -> int:
    client = agent.client()
    try:
        return (await client.call("health", {}))["programsRun"]
    finally:
        await client.close()


def warning_reasons(cluster, namespace) -> set[tuple[str, str]]:
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))
    warnings = (e for e in events["items"] if e["type"] == "Warning")
    return {(e["involvedObject"]["kind"], e["reason"]) for e in warnings}


async def test_error_rate_rising_mid_job_degrades_the_node_and_moves_the_job(
    cluster, namespace, operator, start_agent
):
    agents = await two_nodes(cluster, namespace, start_agent)
    submit_slow_job(cluster, namespace, shots=1000)  # long enough to see a calibration
    # The processor drifts: its readout error rises tenfold, without a restart.
    drifted = make_node("first", 10, noise={**NOISE, "readoutError": 0.12})
    agents["first"].node_file.write_text(drifted.model_dump_json(by_alias=True))
    drifted_at = time.monotonic()
    cluster.wait_for(
        "qn", "first", namespace, lambda o: o.get("status", {}).get("phase") == "Degraded"
    )
    to_degraded = time.monotonic() - drifted_at
    done = cluster.wait_for("djob", "slow", namespace, succeeded, timeout=240)
    status = done["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["plan"]["nodes"] == "spare"
    assert status["attempt"] == 2
    [reroute] = status["reroutes"]
    assert (reroute["resource"], reroute["reason"]) == ("QuantumNode/first", "Degraded")
    assert "ErrorRateAboveThreshold" in reroute["message"]
    assert sum(status["result"]["counts"].values()) == 1000
    # Paused: the degraded node's program was cancelled, not finished.
    assert await programs_run(agents["first"]) == 0
    assert await programs_run(agents["spare"]) == 1
    warnings = warning_reasons(cluster, namespace)
    assert ("DistributedJob", "Rerouting") in warnings
    assert ("QuantumNode", "ErrorRateAboveThreshold") in warnings
    # Degraded within two calibration periods (plus one calibration run under load).
    print(f"drift -> Degraded in {to_degraded:.1f} s (calibration every {CALIBRATION_SECONDS} s)")
    assert to_degraded < 2 * CALIBRATION_SECONDS + 10
    table = cluster.kubectl("get", "qn", "-n", namespace)
    assert "Degraded" in table and "Ready" in table


async def test_an_agent_dying_mid_job_moves_the_job(cluster, namespace, operator, start_agent):
    agents = await two_nodes(cluster, namespace, start_agent)
    submit_slow_job(cluster, namespace, shots=600)
    time.sleep(1.0)  # well into the program
    agents["first"].process.proc.kill()
    done = cluster.wait_for("djob", "slow", namespace, succeeded, timeout=240)
    status = done["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["plan"]["nodes"] == "spare"
    assert status["reroutes"][0]["resource"] == "QuantumNode/first"
    assert status["reroutes"][0]["reason"] in ("AgentFailed", "Unreachable")
    assert await programs_run(agents["spare"]) == 1


async def test_deleting_a_running_job_cancels_its_program_and_frees_its_qubits(
    cluster, namespace, operator, start_agent
):
    agents = await two_nodes(cluster, namespace, start_agent)
    submit_slow_job(cluster, namespace, shots=1000)
    cluster.wait_for(
        "qn", "first", namespace, lambda o: o.get("status", {}).get("allocatedQubits") == 10
    )
    cluster.kubectl("delete", "djob", "slow", "-n", namespace, "--wait=true", "--timeout=60s")
    client = agents["first"].client()
    try:
        deadline = time.monotonic() + 30
        while (health := await client.call("health", {}))["busy"]:
            assert time.monotonic() < deadline, "the agent never stopped the program"
            time.sleep(0.2)
    finally:
        await client.close()
    assert health["programsRun"] == 0  # stopped at a chunk boundary, not finished
    cluster.wait_for(
        "qn", "first", namespace, lambda o: o.get("status", {}).get("allocatedQubits") == 0
    )
