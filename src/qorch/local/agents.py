"""QPU agents as child processes on loopback, one per `aer` QuantumNode, as pods would be."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path

from qorch.api import QuantumNode

_LISTENING = re.compile(r"listening on (http://\S+)")
STARTUP_TIMEOUT_SECONDS = 120.0
#: How long a stopped agent's output may take to end (a child it left may hold the pipe).
STOP_DRAIN_SECONDS = 2.0


class AgentProcess:
    """One `qorch qpu-agent` child process."""

    def __init__(self, node: QuantumNode, proc: asyncio.subprocess.Process, endpoint: str) -> None:
        self.node = node
        self.proc = proc
        self.endpoint = endpoint
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        node: QuantumNode,
        key_file: Path,
        trusted: list[Path],
        telemetry_dir: Path | None = None,
        node_file: Path | None = None,
        threads: int | None = None,
        link_files: list[Path] | None = None,
    ) -> AgentProcess:
        """Start the agent with its private key file and the operator keys it answers;
        with a telemetry folder, it writes its stats and spans there, as in its pod. With a
        node file, the manifest is written there and the agent follows later changes to it
        (as to a mounted ConfigMap); so it does to each of `link_files`, the physical state
        of its links. With `threads`, Aer uses at most that many."""
        proc = await spawn(node, key_file, trusted, telemetry_dir, node_file, threads, link_files)
        return await cls.adopt(node, proc)

    @classmethod
    async def adopt(cls, node: QuantumNode, proc: asyncio.subprocess.Process) -> AgentProcess:
        """The agent `spawn` started, once it listens; killed if it does not."""
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
                while raw := await proc.stdout.readline():
                    line = raw.decode(errors="replace").rstrip()
                    lines.append(line)
                    if match := _LISTENING.search(line):
                        agent = cls(node, proc, match.group(1))
                        agent._drain = asyncio.create_task(_drain(proc.stdout))
                        return agent
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        except BaseException:
            # Cancelled (the run got a signal) while the agent started: nobody else knows of
            # this process yet, so it must not outlive this call.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        await proc.wait()
        tail = "\n".join(lines[-20:])
        raise RuntimeError(f"qpu-agent for {node.metadata.name} did not start:\n{tail}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it may have exited just now
                self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            # Read its output to the end, which closes the pipe: a pipe left open is closed
            # by the garbage collector, after the event loop perhaps, with a warning.
            with contextlib.suppress(Exception):  # timed out, or the reading itself failed
                async with asyncio.timeout(STOP_DRAIN_SECONDS):
                    await asyncio.shield(self._drain)
            self._drain.cancel()


async def spawn(
    node: QuantumNode,
    key_file: Path,
    trusted: list[Path],
    telemetry_dir: Path | None = None,
    node_file: Path | None = None,
    threads: int | None = None,
    link_files: list[Path] | None = None,
) -> asyncio.subprocess.Process:
    """`qorch qpu-agent` for the node, started (`AgentProcess.start` says what the arguments
    do); `AgentProcess.adopt` waits for it to listen."""
    env = dict(os.environ)
    if telemetry_dir:
        env["QORCH_TELEMETRY_DIR"] = str(telemetry_dir)
    if threads:
        # Aer's OpenMP threads spin while they wait: agents sharing the cores each take
        # every core otherwise, and small noisy circuits run 3x slower.
        env["OMP_NUM_THREADS"] = str(threads)
    manifest = node.model_dump_json(by_alias=True, exclude_none=True)
    if node_file is not None:
        node_file.write_text(manifest)
        source = ["--node-file", str(node_file)]
    else:
        source = ["--node-json", manifest]
    trust = [arg for path in trusted for arg in ("--trusted-client-key", str(path))]
    links = [arg for path in link_files or () for arg in ("--link-file", str(path))]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qorch",
        "qpu-agent",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *source,
        *links,
        "--identity-key",
        str(key_file),
        *trust,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the child's output so it never blocks on a full pipe."""
    while await stream.readline():
        pass
