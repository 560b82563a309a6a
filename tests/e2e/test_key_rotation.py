"""A node's key rotates under the operator, against a real API server and a real agent:
`spec.identity.rotation` publishes the next key, the agent takes it without a restart
while jobs run, none fails, and once the window has passed the old key is refused with
KeyRetired. A malformed rotation gives its node a clear reason and stalls nobody else.
The operator's key rotates too: published to the agents, swapped by a restart mid-job,
then retired.

Run with `pytest -s` to see the timeline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from qorch.channel.identity import Identity, encode_public_key
from qorch.qpu.transport import SecureAgentClient
from tests.e2e.test_faults import (
    NOISE,
    circuit,
    job_doc,
    kubectl,
    node_doc,
    phase,
    start_nodes,
    wait_all_terminal,
)
from tests.support import make_node

pytestmark = pytest.mark.e2e

# Long enough for the switch to happen while jobs run, short enough for a test.
WINDOW_SECONDS = 60
JOBS = 6


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def status(obj: dict) -> dict:
    return obj.get("status", {})


def ready_reason(obj: dict) -> str | None:
    ready = [c for c in status(obj).get("conditions", []) if c["type"] == "Ready"]
    return ready[0]["reason"] if ready else None


async def wait_node(cluster, namespace: str, name: str, predicate, timeout: float = 60) -> dict:
    return await asyncio.to_thread(cluster.wait_for, "qn", name, namespace, predicate, timeout)


async def test_a_node_key_rotates_while_jobs_run_and_the_old_key_is_then_refused(
    cluster, namespace, operator, start_agent
):
    began = time.monotonic()

    def note(what: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {what}")

    agents = await start_nodes(cluster, namespace, start_agent, {"rot": 10}, NOISE)
    agent = agents["rot"]
    old, new = agent.identity, Identity.generate()
    await wait_node(
        cluster, namespace, "rot", lambda o: status(o).get("identityFingerprint") == old.fingerprint
    )
    note("node Ready with its first key")

    # 1. Publish the next key, with a window: both keys are accepted until it ends.
    window_end = datetime.now(UTC) + timedelta(seconds=WINDOW_SECONDS)
    rotation = {
        "nextPublicKey": encode_public_key(new.public_key),
        "notAfter": rfc3339(window_end),
    }
    patch = {"spec": {"identity": {"rotation": rotation}}}
    await kubectl(
        cluster, "patch", "qn", "rot", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    both = [old.fingerprint, new.fingerprint]
    await wait_node(
        cluster, namespace, "rot", lambda o: status(o).get("acceptedFingerprints") == both
    )
    note("the operator accepts both keys")

    # Jobs that queue on the one node, each for a second or two, one after the other; applied
    # once both keys are accepted, so none of their time goes to waiting for the operator.
    docs = [job_doc(f"j{i}", 150, "rotate", qasm=circuit(8, layers=200)) for i in range(JOBS)]
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    await asyncio.to_thread(
        cluster.wait_for,
        "djob",
        "",
        namespace,
        lambda o: any(phase(j) == "Running" for j in o.get("items", [])),
        60,
        "faults=rotate",
    )
    note("a job is Running")

    # 2. The node switches to its new key, jobs running.
    out = await kubectl(
        cluster, "get", "djob", "-n", namespace, "-l", "faults=rotate", "-o", "json"
    )
    unfinished = [
        j["metadata"]["name"] for j in json.loads(out)["items"] if phase(j) not in ("Succeeded",)
    ]
    agent.rotate_to(new)
    note(f"agent switched to its new key; unfinished then: {unfinished}")
    assert unfinished, "every job had finished before the switch: make them longer"
    switched = await wait_node(
        cluster,
        namespace,
        "rot",
        lambda o: status(o).get("identityFingerprint") == new.fingerprint,
    )
    assert status(switched)["phase"] == "Ready"
    assert datetime.now(UTC) < window_end, "the switch took longer than the window"
    note("status shows the new key")

    # 3. No job fails.
    done = await wait_all_terminal(cluster, namespace, "rotate", JOBS, timeout=300)
    for name, job in done.items():
        assert phase(job) == "Succeeded", (name, status(job).get("message"))
        assert sum(status(job)["result"]["counts"].values()) == 150
        assert status(job).get("reroutes", []) == [], name
    note("every job Succeeded")

    # 4. After the window only the new key is accepted; a node presenting the old one (a
    # copy of the retired key, say) is refused, and its status says why.
    await wait_node(
        cluster,
        namespace,
        "rot",
        lambda o: status(o).get("acceptedFingerprints") == [new.fingerprint],
        timeout=WINDOW_SECONDS + 60,
    )
    note("the window has passed")
    agent.rotate_to(old)
    refused = await wait_node(cluster, namespace, "rot", lambda o: ready_reason(o) == "KeyRetired")
    assert status(refused)["phase"] == "Unreachable"
    (ready,) = [c for c in status(refused)["conditions"] if c["type"] == "Ready"]
    assert old.fingerprint in ready["message"] and "rotation window" in ready["message"]
    note(f"old key refused: {ready['message']}")
    assert "Traceback" not in operator.output()


async def test_a_malformed_rotation_gets_a_clear_reason_and_stalls_no_other_node(
    cluster, namespace, operator, start_agent
):
    await start_nodes(cluster, namespace, start_agent, {"good": 6}, NOISE)
    current = encode_public_key(Identity.generate().public_key)
    following = encode_public_key(Identity.generate().public_key)
    rotations = {  # node name: (its rotation, what its Ready message must say)
        "bad-base64": ({"nextPublicKey": "not//base64!"}, "not valid base64"),
        "same-key": ({"nextPublicKey": current}, "nextPublicKey is publicKey itself"),
        "empty-window": (
            {
                "nextPublicKey": following,
                "notBefore": "2026-03-01T13:00:00Z",
                "notAfter": "2026-03-01T12:00:00Z",
            },
            "is not after notBefore",
        ),
    }
    docs = [
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {
                "qubits": 6,
                # Nothing listens here: a call that went out would say AgentUnreachable.
                "backend": {"type": "external", "endpoint": "http://127.0.0.1:9"},
                "identity": {"publicKey": current, "rotation": rotation},
            },
        }
        for name, (rotation, _) in rotations.items()
    ]
    docs.append(job_doc("fine", 500, "malformed", qasm=circuit(4)))
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))

    for name, (_, words) in rotations.items():
        node = await wait_node(
            cluster, namespace, name, lambda o: ready_reason(o) == "InvalidIdentity"
        )
        (ready,) = [c for c in status(node)["conditions"] if c["type"] == "Ready"]
        assert words in ready["message"], (name, ready["message"])
        assert status(node)["phase"] == "Unreachable"
    done = await wait_all_terminal(cluster, namespace, "malformed", 1, timeout=120)
    job = done["fine"]
    assert phase(job) == "Succeeded", status(job).get("message")
    assert [p["node"] for p in status(job)["plan"]["placement"]] == ["good"]
    assert "Traceback" not in operator.output()


def test_a_published_next_operator_key_is_trusted_by_the_agents_the_operator_creates(
    cluster, namespace, tmp_path
):
    """Step one of an operator key rotation: `next.pub` in the operator's Secret. A node
    Secret made from then on lists both operator keys in `operator.pub`, the file its
    agent trusts (and follows)."""
    from tests.e2e.test_operator_namespace import SIM, start_operator, stop

    current, following = Identity.generate(), Identity.generate()
    current.save(tmp_path / "current")
    following.save(tmp_path / "next")
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "qorch-operator-identity",
        "-n",
        namespace,
        f"--from-file=identity.key={tmp_path / 'current.key'}",
        f"--from-file=identity.pub={tmp_path / 'current.pub'}",
        f"--from-file=next.pub={tmp_path / 'next.pub'}",
    )
    log = tmp_path / "operator.log"
    proc = start_operator(
        cluster,
        namespace,
        Path(cluster.env["KUBECONFIG"]),
        log,
        QORCH_OPERATOR_NAMESPACE=namespace,
    )
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SIM))
        dep = cluster.wait_for("deployment", "qpu-sim", namespace, lambda o: True, timeout=60)
    finally:
        stop(proc)
    (volume,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    secret = cluster.get("secret", volume["secret"]["secretName"], namespace)
    trusted = base64.b64decode(secret["data"]["operator.pub"]).decode().split()
    assert trusted == [
        encode_public_key(current.public_key),
        encode_public_key(following.public_key),
    ]
    assert "Traceback" not in log.read_text()


async def test_the_operator_key_is_swapped_while_jobs_run_and_the_old_one_retired(
    cluster, namespace, operator, start_agent, tmp_path
):
    """Publish (the agent trusts both operator keys), swap (the operator restarts with the
    next key, mid-job), retire (the old key leaves the agent's file): every job succeeds,
    none is run twice, and the node stays Ready throughout."""
    from tests.integration.test_key_rotation import replace_file

    current = operator.key_file
    following = Identity.generate()
    next_key, _ = following.save(tmp_path / "operator-next")
    trusted = tmp_path / "trusted-operators.pub"
    replace_file(trusted, current.with_suffix(".pub").read_text())
    agents = {"op": await start_agent(make_node("op", 10, noise=NOISE), trusted=[trusted])}
    docs = [node_doc("op", 10, agents["op"], NOISE)]
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    await wait_node(cluster, namespace, "op", lambda o: phase(o) == "Ready")

    # 1. Publish: the agent trusts the current and the next operator key.
    replace_file(
        trusted,
        current.with_suffix(".pub").read_text() + encode_public_key(following.public_key) + "\n",
    )
    jobs = [job_doc(f"s{i}", 150, "swap", qasm=circuit(8, layers=200)) for i in range(4)]
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(jobs))
    await asyncio.to_thread(
        cluster.wait_for,
        "djob",
        "",
        namespace,
        lambda o: any(phase(j) == "Running" for j in o.get("items", [])),
        60,
        "faults=swap",
    )
    # 2. Swap: the operator restarts with the next key, jobs running.
    out = await kubectl(cluster, "get", "djob", "-n", namespace, "-l", "faults=swap", "-o", "json")
    assert any(phase(j) != "Succeeded" for j in json.loads(out)["items"])
    operator.stop()
    operator.key_file = next_key
    operator.start()
    done = await wait_all_terminal(cluster, namespace, "swap", len(jobs), timeout=300)
    for name, job in done.items():
        assert phase(job) == "Succeeded", (name, status(job).get("message"))
        assert sum(status(job)["result"]["counts"].values()) == 150
    agent = agents["op"]
    client = SecureAgentClient(agent.endpoint, following, agent.identity.public_key)
    try:
        health = await client.call("health", {})
    finally:
        await client.close()
    assert health["programsRun"] == len(jobs), "a program ran twice, or not at all"

    # 3. Retire the old key: the operator, on its new key, still reaches the node.
    replace_file(trusted, encode_public_key(following.public_key) + "\n")
    retired_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    node = await wait_node(
        cluster,
        namespace,
        "op",
        lambda o: phase(o) == "Ready" and status(o).get("lastHeartbeat", "") > retired_at,
    )
    assert ready_reason(node) == "AgentHealthy"
    assert "Traceback" not in operator.output()
