"""A link that drifts while a job runs, on the embedded control plane with real agents: the
agent follows the link's file, its probe measures the new state, the link turns Degraded
within two probe periods, the job re-routes over another link and succeeds."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import yaml

from qorch.api import DistributedJob, EntanglementLink
from qorch.api.manifests import load_manifests
from qorch.channel.identity import Identity
from qorch.local.runner import EmbeddedControlPlane, Progress
from qorch.local.world import LocalWorld
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations

#: The job outlasts two probes of an agent it keeps busy (the e2e test, with its operator's
#: periods, needs four times as many).
SHOTS, LAYERS = 48_000, 18
NOISE = {"twoQubitError": 0.01, "readoutError": 0.01, "singleQubitError": 0.001}


def node(name: str) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": 4, "noise": NOISE},
    }


def link(name: str, a: str, b: str, fidelity: float) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": name},
        "spec": {
            "nodes": [a, b],
            "fidelity": fidelity,
            "generationRateHz": 1e6,
            "successProbability": 0.5,
            "minFidelity": 0.9,
        },
    }


def layered_job(width: int, layers: int, shots: int) -> dict:
    """Layers of gates across any split of the qubits: many Bell pairs a shot and
    mid-circuit measurements, so the co-simulated program runs shot by shot, for seconds."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{width}];", f"creg c[{width}];"]
    half = width // 2
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(width)]
        lines += [f"cx q[{i}], q[{half + (i + layer) % half}];" for i in range(half)]
    lines.append("measure q -> c;")
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "layers"},
        "spec": {
            "shots": shots,
            "strategy": "teleport",
            "timeoutSeconds": 600,
            "circuit": {"qasm": "\n".join(lines)},
        },
    }


async def start_plane(tmp_path: Path, docs: list[dict]) -> EmbeddedControlPlane:
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    world = LocalWorld(load_manifests([str(tmp_path / "m.yaml")]), Identity.generate())
    plane = EmbeddedControlPlane(world, tmp_path, Progress(io.StringIO()))
    assert await plane.start_agents() == []
    await plane.observe()
    return plane


def the_link(plane: EmbeddedControlPlane, name: str) -> EntanglementLink:
    return next(x for x in plane.world.all_links() if x.metadata.name == name)


def drift(plane: EmbeddedControlPlane, name: str, **spec: object) -> None:
    """Change the link's physical state in its file, as an operator of the hardware would."""
    path = plane.link_file(the_link(plane, name))
    manifest = json.loads(path.read_text())
    manifest["spec"].update(spec)
    path.write_text(json.dumps(manifest))


async def step_until(pipeline: JobPipeline, job: DistributedJob, phase: str) -> None:
    for _ in range(30):
        if job.status.phase == phase:
            return
        job.status = (await pipeline.step(job)).status
    raise AssertionError(f"never reached {phase}: {job.status.phase} {job.status.message}")


async def wait_busy(plane: EmbeddedControlPlane) -> None:
    """Until some agent runs a program."""
    for _ in range(400):
        for n in plane.world.all_nodes():
            if (await plane.world.agent(n).call("health", {}))["busy"]:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no agent got busy")


async def test_a_link_that_drifts_mid_job_is_found_degraded_and_the_job_reroutes(
    tmp_path: Path,
) -> None:
    docs = [
        node("a"),
        node("b"),
        node("c"),
        link("a-b", "a", "b", 0.98),
        link("b-c", "b", "c", 0.96),
        layered_job(6, LAYERS, SHOTS),
    ]
    plane = await start_plane(tmp_path, docs)
    try:
        assert {x.status.phase for x in plane.world.all_links()} == {"Up"}
        for x in plane.world.all_links():
            probe = x.status.probe
            assert probe is not None and probe.source == "linkState" and probe.pairs == 1000
            assert probe.fidelity_lower <= x.spec.fidelity <= probe.fidelity_upper
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings(watch_seconds=0.2))
        job = next(iter(plane.world.jobs.values()))
        await step_until(pipeline, job, "Running")
        assert job.status.plan is not None
        [used] = [u.link for u in job.status.plan.bell_pairs]
        assert job.status.plan.figures[f"qlink/{used}"] == "declared"
        other = "b-c" if used == "a-b" else "a-b"
        collect = asyncio.create_task(pipeline.step(job))
        await wait_busy(plane)

        drift(plane, used, fidelity=0.7, successProbability=0.2)
        probes = 0
        while the_link(plane, used).status.phase != "Degraded":
            assert probes < 2, the_link(plane, used).status.conditions
            await plane.observe(calibrate=False, probe_links=True)
            probes += 1
        drifted = the_link(plane, used).status
        assert drifted.probe is not None
        assert drifted.probe.fidelity_upper < 0.9  # the whole interval below minFidelity
        assert drifted.probe.fidelity_lower <= 0.7 <= drifted.probe.fidelity_upper
        assert drifted.probe.success_rate == pytest.approx(0.2, abs=0.03)
        [probed] = [c for c in drifted.conditions if c.type == "Probed"]
        assert probed.status == "False" and probed.reason == "FidelityBelowSpec"
        # the health check between probes keeps the verdict of the last probe
        await plane.observe(calibrate=False, probe_links=False)
        assert the_link(plane, used).status.phase == "Degraded"

        job.status = (await asyncio.wait_for(collect, 120)).status
        assert job.status.phase == "Pending", job.status.message
        [reroute] = job.status.reroutes
        assert reroute.resource == f"EntanglementLink/{used}"
        assert reroute.reason == "Degraded"
        await step_until(pipeline, job, "Succeeded")
        assert [u.link for u in job.status.plan.bell_pairs] == [other]
        assert sum(job.status.result.counts.values()) == SHOTS
    finally:
        await plane.close()


def test_an_agent_with_an_unusable_link_file_does_not_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "node.json").write_text(json.dumps(node("a")))
    (tmp_path / "link.yaml").write_text("spec: {fidelity: [unclosed")
    key, _ = Identity.generate().save(tmp_path / "node")
    _, operator = Identity.generate().save(tmp_path / "operator")
    args = ["--node-file", str(tmp_path / "node.json"), "--link-file", str(tmp_path / "link.yaml")]
    args += ["--identity-key", str(key), "--trusted-client-key", str(operator), "--port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "qorch", "qpu-agent", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "link.yaml: not YAML or JSON" in done.stderr
