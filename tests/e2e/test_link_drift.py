"""A link that drifts mid-job, through the operator on a real API server with real agents:
the agent of its first node follows the link's file, the operator's probe finds the pairs
below minFidelity, the link turns Degraded and the job moves to another link."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.test_reroute import warning_reasons
from tests.integration.test_link_drift import NOISE, layered_job, link
from tests.support import make_node

LINK_CHECK_SECONDS = 1.0  # the operator fixture's QORCH_LINK_CHECK_SECONDS
SHOTS = 96_000
LAYERS = 24  # each layer adds Bell pairs a shot: 54 layers took minutes


async def test_a_link_drifting_mid_job_turns_degraded_and_the_job_moves(
    cluster, namespace, operator, start_agent, tmp_path: Path
):
    links = [link("a-b", "a", "b", 0.98), link("b-c", "b", "c", 0.96)]
    files = {}
    for manifest in links:
        path = tmp_path / f"{manifest['metadata']['name']}.json"
        path.write_text(json.dumps(manifest))
        files[manifest["metadata"]["name"]] = path
    agents = {}
    for name in ("a", "b", "c"):
        own = [files[x["metadata"]["name"]] for x in links if name in x["spec"]["nodes"]]
        agents[name] = await start_agent(make_node(name, 4, noise=NOISE), link_files=own)
    for name, agent in agents.items():
        node = {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {
                "qubits": 4,
                "noise": NOISE,
                "backend": {"type": "external", "endpoint": agent.endpoint},
                "identity": {"publicKey": agent.public_key},
            },
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
    for manifest in links:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    for manifest in links:
        up = cluster.wait_for(
            "qlink",
            manifest["metadata"]["name"],
            namespace,
            lambda o: (
                o.get("status", {}).get("phase") == "Up"
                and o["status"].get("probe", {}).get("source") == "linkState"
                and o["status"].get("feedforwardLatencyMicroseconds") is not None
            ),
        )
        probe = up["status"]["probe"]
        assert probe["pairs"] == 1000 and probe["fidelityUpper"] >= 0.9

    # The job must outlast the drift's detection (one to two seconds): 24,000 shots of 18
    # layers once finished first.
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(layered_job(6, LAYERS, SHOTS))
    )
    running = cluster.wait_for(
        "djob", "layers", namespace, lambda o: o.get("status", {}).get("phase") == "Running"
    )
    [used] = [u["link"] for u in running["status"]["plan"]["bellPairs"]]
    assert running["status"]["plan"]["figures"][f"qlink/{used}"] in ("declared", "measured")
    drifted = json.loads(files[used].read_text())
    drifted["spec"]["fidelity"] = 0.7
    files[used].write_text(json.dumps(drifted))
    drifted_at = time.monotonic()
    degraded = cluster.wait_for(
        "qlink", used, namespace, lambda o: o.get("status", {}).get("phase") == "Degraded"
    )
    to_degraded = time.monotonic() - drifted_at
    assert degraded["status"]["probe"]["fidelityUpper"] < 0.9

    done = cluster.wait_for(
        "djob",
        "layers",
        namespace,
        lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        timeout=300,
    )
    status = done["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    [reroute] = status["reroutes"]
    assert (reroute["resource"], reroute["reason"]) == (f"EntanglementLink/{used}", "Degraded")
    other = "b-c" if used == "a-b" else "a-b"
    assert [u["link"] for u in status["plan"]["bellPairs"]] == [other]
    assert sum(status["result"]["counts"].values()) == SHOTS
    assert ("DistributedJob", "Rerouting") in warning_reasons(cluster, namespace)
    # A probe (and the latency echoes before it) waits for the agents between chunks of the
    # running program: a seeded program's chunks grow fourfold, and Aer holds the agent's
    # interpreter for a whole chunk, so a period here is seconds. Two probes suffice
    # (tests/integration/test_link_drift.py counts them); this bounds the wall time.
    print(f"drift -> Degraded in {to_degraded:.1f} s (probe every {LINK_CHECK_SECONDS} s)")
    assert to_degraded < 60
