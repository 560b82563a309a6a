"""An LOCC-cut job through the embedded control plane: two real agent processes, the cut
wires' outcomes sent from one agent straight to the other, never through the operator; the
knitted expectation values match the exact ones. A classical path that fails re-routes the
job, which then runs without it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from qorch.api.manifests import load_manifests
from qorch.channel.identity import Identity
from qorch.local.runner import EmbeddedControlPlane, Progress
from qorch.local.world import LocalWorld
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.pipeline.strategies import locc_cut
from qorch.planner.cutting import exact_expectation_values
from qorch.telemetry import metrics as m
from qorch.telemetry.agent import STATS_FILE

# q2 carries the state of q0..q2 to the receiver, where it meets q3 and q4: with three qubits
# a node, every gate cut cuts two CNOTs (9^2 = 81), the LOCC wire cut costs 9.
QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[5];
h q[0];
cx q[0], q[1];
cx q[0], q[2];
ry(0.7) q[2];
cx q[1], q[2];
cx q[2], q[3];
cx q[2], q[4];
rx(0.4) q[4];
cx q[3], q[4];
"""
OBSERVABLES = ["ZZZZZ", "IIZZZ", "XXXXX", "ZIIIZ"]


def manifests(tmp_path: Path, strategy: str, shots: int) -> Path:
    nodes = [
        {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name},
            "spec": {"qubits": 3},
        }
        for name in ("qpu-a", "qpu-b")
    ]
    link = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": "a-b"},
        "spec": {
            "nodes": ["qpu-a", "qpu-b"],
            "fidelity": 0.9,  # Bell pairs noisy enough that teleporting loses to cutting
            "generationRateHz": 1000000,
            "successProbability": 0.5,
            "classicalLatencyMicroseconds": 10,
        },
    }
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "locc"},
        "spec": {
            "shots": shots,
            "strategy": strategy,
            "observables": OBSERVABLES,
            "circuit": {"qasm": QASM},
            "mitigation": "none",
        },
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all([*nodes, link, job]))
    return path


async def run_job(tmp_path: Path, strategy: str, shots: int, world_hook: Any = None) -> Any:
    world = LocalWorld(
        load_manifests([str(manifests(tmp_path, strategy, shots))]), Identity.generate()
    )
    plane = EmbeddedControlPlane(world, tmp_path, Progress(io.StringIO()))
    try:
        assert await plane.start_agents() == []
        await plane.observe()
        if world_hook is not None:
            world_hook(world)
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings())
        [job] = list(plane.world.jobs.values())
        for _ in range(40):
            if job.status.phase in ("Succeeded", "Failed", "Rejected"):
                break
            job.status = (await pipeline.step(job)).status
        stats = {
            name: json.loads((plane.telemetry_dir(n) / STATS_FILE).read_text())
            for n in world.all_nodes()
            for name in [n.metadata.name]
        }
    finally:
        await plane.close()
    return job, stats


async def test_an_locc_cut_job_runs_agent_to_agent_and_matches_the_exact_values(
    tmp_path: Path, monkeypatch: Any
) -> None:
    registry = m.QorchMetrics(CollectorRegistry())
    monkeypatch.setattr(m, "METRICS", registry)
    probed: list[float] = []
    series = {"namespace": "default", "link": "a-b"}

    def before_the_job(_: Any) -> None:  # the link's echo probes are counted too
        count = registry.registry.get_sample_value(
            "qorch_feedforward_latency_seconds_count", series
        )
        probed.append(count or 0.0)

    job, stats = await run_job(tmp_path, "locc-cut", 9000, before_the_job)

    assert job.status.phase == "Succeeded", job.status.message
    plan = job.status.plan
    assert plan.strategy == "locc-cut"
    assert [p.node for p in plan.placement] == ["qpu-a", "qpu-b"]
    result = job.status.result
    exact = exact_expectation_values(_circuit(), OBSERVABLES)
    for value, error, expected in zip(
        result.expectation_values, result.standard_errors, exact, strict=True
    ):
        # Seeded; 4.5 standard errors: a two-sided normal tail of 7e-6 per value, under
        # 1e-4 for the four together.
        assert 0 < error < 0.2
        assert abs(value - expected) <= 4.5 * error, (value, expected, error)

    # The messages went from qpu-a's agent to qpu-b's: 2 groups x 3 bases of 3000 shots,
    # 1024 outcomes to a message, 3 messages per subexperiment.
    assert stats["qpu-a"]["peer"]["sent"] == 18
    assert stats["qpu-b"]["peer"]["received"] == 18
    assert stats["qpu-b"]["peer"]["sent"] == stats["qpu-a"]["peer"]["received"] == 0
    # The operator's channel carried none of them: it called run (and health, calibrate)...
    assert "peer_bits" not in stats["qpu-b"]["requests"]
    assert stats["qpu-b"]["requests"].get("run", 0) >= 1
    # ...and each message's time went into the feed-forward latency of the link.
    samples = registry.registry.get_sample_value("qorch_feedforward_latency_seconds_count", series)
    assert samples == probed[0] + 18


def _circuit() -> Any:
    from qiskit import qasm2

    return qasm2.loads(QASM)


async def test_a_failed_classical_path_re_routes_the_job_without_partial_data(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The operator names a key for qpu-b that is not its agent's: the sender cannot open
    the peer channel, the receiver never gets a message. Both fail within the bounded wait
    with named codes, the attempt is dropped, and the job re-plans without the link."""
    monkeypatch.setattr(locc_cut, "PEER_WAIT_SECONDS", 1.0)
    impostor = Identity.generate().public_key

    def wrong_key_for_b(world: LocalWorld) -> None:
        real = world.address

        def address(node: Any) -> tuple[str, tuple[bytes, ...]]:
            endpoint, keys = real(node)
            return endpoint, (impostor,) if node.metadata.name == "qpu-b" else keys

        monkeypatch.setattr(world, "address", address)

    job, stats = await run_job(tmp_path, "auto", 1200, wrong_key_for_b)

    [reroute] = job.status.reroutes  # the first plan was the LOCC cut: noiseless, 9 < 81
    assert reroute.resource == "EntanglementLink/a-b"
    assert reroute.reason in ("PeerMessageMissing", "PeerUnreachable"), reroute
    assert job.status.attempt == 2
    assert stats["qpu-b"]["peer"]["received"] == 0
    # Re-planned without the link: neither teleport nor the LOCC cut can use it.
    assert job.status.phase == "Succeeded", job.status.message
    assert job.status.plan.strategy == "cut"
    exact = exact_expectation_values(_circuit(), OBSERVABLES)
    result = job.status.result
    for value, error, expected in zip(
        result.expectation_values, result.standard_errors, exact, strict=True
    ):
        assert abs(value - expected) <= 4.5 * error + 1e-9, (value, expected, error)
