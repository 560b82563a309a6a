"""A real TPM 2.0 for tests: `swtpm socket` with a fresh state folder, one per use."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.api import QuantumNode
from qorch.channel.identity import decode_public_key

MISSING = [tool for tool in ("swtpm", "tpm2_quote", "tpm2_createek") if shutil.which(tool) is None]
requires_swtpm = pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed (Debian packages swtpm, tpm2-tools;"
    " hack/install-system-deps.sh installs them)",
)


class Swtpm:
    """A TPM emulator on a Unix socket in a short temporary folder (socket paths are
    bounded), started up (`startup-clear`) and ready for tpm2-tools."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="swtpm-"))
        (self.folder / "state").mkdir()
        self.socket = self.folder / "tpm.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:path={self.socket}"

    def start(self) -> Swtpm:
        self.proc = subprocess.Popen(
            [
                *("swtpm", "socket", "--tpm2"),
                *("--tpmstate", f"dir={self.folder / 'state'}"),
                *("--server", f"type=unixio,path={self.socket}"),
                *("--ctrl", f"type=unixio,path={self.socket}.ctrl"),
                *("--flags", "not-need-init,startup-clear"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"swtpm exited with {self.proc.returncode}")
            if self._accepts():
                return self
            time.sleep(0.02)
        raise RuntimeError("swtpm did not listen within 30 s")

    def _accepts(self) -> bool:
        for path in (self.socket, Path(f"{self.socket}.ctrl")):
            if not path.exists():
                return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(f"{self.socket}.ctrl")
            except OSError:
                return False
        return True

    def pause(self) -> None:
        """The TPM stops answering (its process is stopped, its sockets stay open)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


# -- enrolled nodes and their agents ---------------------------------------------------

LISTENING = re.compile(r"listening on (http://\S+)")


def manifest(name: str, readout_error: float = 0.01) -> dict[str, Any]:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": 3, "noise": {"readoutError": readout_error}},
    }


@dataclass
class Enrolled:
    """A node enrolled on its TPM: what `qorch tpm enroll` wrote and printed."""

    name: str
    tpm: Swtpm
    node_file: Path
    sealed: Path
    identity: dict[str, Any]  # spec.identity to pin

    @property
    def public_key(self) -> bytes:
        return decode_public_key(self.identity["publicKey"])

    def node(self, endpoint: str, identity: dict[str, Any] | None = None) -> QuantumNode:
        body = manifest(self.name)
        body["spec"]["backend"] = {"type": "external", "endpoint": endpoint}
        body["spec"]["identity"] = identity or self.identity
        return QuantumNode.model_validate(body)


def enroll(tpm: Swtpm, folder: Path, name: str) -> Enrolled:
    node_file = folder / f"{name}.yaml"
    node_file.write_text(yaml.safe_dump(manifest(name)))
    sealed = folder / f"{name}.sealed"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "qorch", "tpm", "enroll", "--tpm", tpm.tcti),
            *("--node-file", str(node_file), "--out", str(sealed)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    return Enrolled(name, tpm, node_file, sealed, printed["spec"]["identity"])


@dataclass
class Agent:
    proc: asyncio.subprocess.Process
    endpoint: str
    output: list[str]


@asynccontextmanager
async def tpm_agent(
    enrolled: Enrolled,
    trusted: Path,
    *,
    tpm_timeout: float = 10.0,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Agent]:
    """`qorch qpu-agent --tpm`: stopped at the end."""
    proc = await start_tpm_agent(enrolled, trusted, tpm_timeout=tpm_timeout, env=env)
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
            while raw := await stream.readline():
                output.append(raw.decode(errors="replace"))

        drain = asyncio.create_task(keep_reading(proc.stdout))
        yield Agent(proc, match.group(1), output)
    finally:
        if drain is not None:
            drain.cancel()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def start_tpm_agent(
    enrolled: Enrolled,
    trusted: Path,
    *,
    tpm_timeout: float = 10.0,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "qorch", "qpu-agent", "--host", "127.0.0.1", "--port", "0"),
        *("--node-file", str(enrolled.node_file), "--tpm", enrolled.tpm.tcti),
        *("--sealed-identity", str(enrolled.sealed), "--tpm-timeout", str(tpm_timeout)),
        *("--trusted-client-key", str(trusted)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
