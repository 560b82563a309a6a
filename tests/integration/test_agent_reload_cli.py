"""`qorch qpu-agent --node-file`: the agent follows its manifest as a kubelet rewrites a mounted
ConfigMap, so a node's noise drifts without a restart."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.channel.identity import Identity
from qorch.qpu.transport import SecureAgentClient

LISTENING = re.compile(r"listening on (http://\S+)")


def manifest(readout_error: float) -> dict[str, Any]:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "drifting"},
        "spec": {"qubits": 4, "noise": {"readoutError": readout_error}},
    }


def write(path: Path, body: dict[str, Any]) -> None:
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(yaml.safe_dump(body))
    stamp = max(previous + 1_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(stamp, stamp))


@asynccontextmanager
async def agent_process(node_file: Path, key: Path, trusted: Path) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "qorch", "qpu-agent", "--host", "127.0.0.1", "--port", "0"),
        *("--node-file", str(node_file), "--identity-key", str(key)),
        *("--trusted-client-key", str(trusted)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(120):
            while raw := await proc.stdout.readline():
                output.append(raw.decode(errors="replace"))
                if match := LISTENING.search(output[-1]):
                    break
            else:
                pytest.fail("qpu-agent did not start:\n" + "".join(output[-20:]))

        async def keep_reading(stream: asyncio.StreamReader) -> None:
            while await stream.readline():
                pass

        drain = asyncio.create_task(keep_reading(proc.stdout))
        yield match.group(1)
    finally:
        if drain is not None:
            drain.cancel()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_the_agent_takes_up_a_rewritten_node_file(tmp_path: Path, operator_key) -> None:
    node_file = tmp_path / "node.yaml"
    write(node_file, manifest(0.01))
    identity = Identity.generate()
    key, _ = identity.save(tmp_path / "node")
    async with agent_process(node_file, key, operator_key.pub_file) as endpoint:
        client = SecureAgentClient(endpoint, operator_key.identity, identity.public_key)
        try:
            before = await client.call("calibrate", {}, timeout=60)
            write(node_file, manifest(0.2))
            after = await client.call("calibrate", {}, timeout=60)
            health = await client.call("health", {})
        finally:
            await client.close()
    assert before["readoutError"] == pytest.approx(0.01, abs=0.01)
    assert after["readoutError"] == pytest.approx(0.2, abs=0.03)
    assert health["node"] == "drifting"
