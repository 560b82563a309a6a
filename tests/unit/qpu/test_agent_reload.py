"""A node file that changes under a running agent: valid changes are taken up (noise drifts
without a restart), invalid or renamed manifests are ignored with one warning."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from qiskit import QuantumCircuit

from qorch.api import QuantumNode
from qorch.qpu.agent import QpuAgent
from qorch.qpu.circuits import encode_circuit

QUBITS = 4
LONG_SHOTS = 60_000  # ~1.5 s shot by shot


def manifest(name: str = "drift", **noise: Any) -> dict[str, Any]:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": QUBITS, "noise": noise},
    }


def write(path: Path, body: dict[str, Any] | str) -> None:
    """Replace the file as an editor would; bump its mtime so even a same-size write shows."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    stamp = max(previous + 1_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(stamp, stamp))


def agent_on(path: Path) -> QpuAgent:
    return QpuAgent(QuantumNode.model_validate(yaml.safe_load(path.read_text())), node_file=path)


async def readout_error(agent: QpuAgent) -> float:
    return float((await agent.handle("calibrate", {}))["readoutError"])


async def test_a_rewritten_node_file_changes_what_calibration_measures(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    write(path, manifest(readoutError=0.01))
    agent = agent_on(path)
    assert await readout_error(agent) == pytest.approx(0.01, abs=0.01)

    write(path, manifest(readoutError=0.2))

    assert await readout_error(agent) == pytest.approx(0.2, abs=0.03)
    assert agent.node.spec.noise.readout_error == 0.2


async def test_invalid_or_renamed_manifests_are_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "node.yaml"
    write(path, manifest(readoutError=0.01))
    agent = agent_on(path)
    await agent.handle("health", {})
    secret = "S3CRET-KEY-MATERIAL"
    bad = manifest(readoutError=0.2)
    bad["spec"]["identity"] = {"publicKey": [secret]}  # malformed: the error quotes it

    for body in (bad, "spec: [unbalanced", manifest("someone-else", readoutError=0.2)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="qorch.qpu.agent"):
            write(path, body)
            for _ in range(3):
                await agent.handle("health", {})
            measured = await readout_error(agent)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, caplog.text
        assert "ignored" in warnings[0].getMessage()
        assert secret not in caplog.text and "unbalanced" not in caplog.text
        assert measured < 0.05
        assert agent.node.metadata.name == "drift"

    write(path, manifest(readoutError=0.2))  # fixed: taken up
    assert await readout_error(agent) > 0.15


async def test_without_a_node_file_nothing_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    write(path, manifest(readoutError=0.01))
    agent = QpuAgent(QuantumNode.model_validate(manifest(readoutError=0.01)))
    write(path, manifest(readoutError=0.2))
    assert await readout_error(agent) < 0.05


# Gate noise makes Aer simulate every shot on its own (without it, shot branching runs the
# reset's two branches once), so a long program runs in many chunks.
SHOT_BY_SHOT = {"twoQubitError": 0.001}


def zeros_shot_by_shot() -> QuantumCircuit:
    """Always 0000 without readout error: it has no two-qubit gate for the gate noise."""
    qc = QuantumCircuit(QUBITS, QUBITS)
    qc.measure(0, 0)
    qc.reset(0)
    qc.measure(range(QUBITS), range(QUBITS))
    return qc


async def start_long_program(agent: QpuAgent, program_id: str) -> asyncio.Task[dict[str, Any]]:
    body = {"programId": program_id, "circuit": encode_circuit(zeros_shot_by_shot())}
    program = asyncio.create_task(agent.handle("run", {**body, "shots": LONG_SHOTS}))
    async with asyncio.timeout(10):
        while not agent.health().busy:
            await asyncio.sleep(0.01)
    return program


async def test_a_program_running_across_a_reload_takes_the_new_noise_from_its_next_chunk(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.yaml"
    write(path, manifest(**SHOT_BY_SHOT))
    agent = agent_on(path)
    agent.chunk_seconds = 0.1
    program = await start_long_program(agent, "across")

    write(path, manifest(readoutError=0.3, **SHOT_BY_SHOT))  # seen by the program's next chunk
    await asyncio.sleep(0.2)
    assert not program.done(), "the program ended before the reload; give it more shots"

    counts = (await program)["counts"]
    assert sum(counts.values()) == LONG_SHOTS
    assert counts.get("0000", 0) < 0.9 * LONG_SHOTS  # later chunks read with the new error
    assert agent.health().programs_run == 1


async def test_a_program_keeps_its_target_when_a_reload_changes_the_node_shape(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.yaml"
    write(path, manifest(**SHOT_BY_SHOT))
    agent = agent_on(path)
    agent.chunk_seconds = 0.1
    program = await start_long_program(agent, "reshaped")

    # Compiled for 4 qubits: the wider, recoupled node's noise waits for the next program.
    changed = manifest(readoutError=0.3, **SHOT_BY_SHOT)
    changed["spec"]["qubits"] = QUBITS + 2
    changed["spec"]["couplingMap"] = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]
    write(path, changed)
    await asyncio.sleep(0.2)
    assert not program.done(), "the program ended before the reload; give it more shots"

    assert (await program)["counts"] == {"0000": LONG_SHOTS}
    assert agent.health().qubits == QUBITS + 2
    assert await readout_error(agent) > 0.2
