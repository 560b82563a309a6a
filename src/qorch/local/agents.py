"""QPU agents as child processes on loopback, one per `aer` QuantumNode, as pods would be.

`spawn` starts `qorch qpu-agent` as a new process, as a pod's container does. `fork` runs the
same command in a process forked from a server that imported it once (`fork_server`):
an agent's start is mostly its imports (Qiskit, Aer, the channel; 0.8 s here), which N
agents would otherwise each repeat, on the cores the run itself imports on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import re
import runpy
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from threadpoolctl import threadpool_limits

from qorch.api import QuantumNode
from qorch.process_ties import die_with_parent

from .fork_server import AGENT_SIGNALS, FORKS, start_forkserver

_LISTENING = re.compile(r"listening on (http://\S+)")
STARTUP_TIMEOUT_SECONDS = 120.0
#: How long a stopped agent's output may take to end (a child it left may hold the pipe).
STOP_DRAIN_SECONDS = 2.0
#: The exit code of an agent the fork server never forked (as multiprocessing gives one
#: whose server went away).
NEVER_FORKED = 255

log = logging.getLogger(__name__)


class Child(Protocol):
    """What `AgentProcess` uses of its process: an asyncio subprocess, or a `Forked` one."""

    @property
    def pid(self) -> int | None: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    def kill(self) -> None: ...
    def terminate(self) -> None: ...
    async def wait(self) -> int: ...


class AgentProcess:
    """One `qorch qpu-agent` child process."""

    def __init__(self, node: QuantumNode, proc: Child, endpoint: str) -> None:
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
    async def adopt(cls, node: QuantumNode, proc: Child) -> AgentProcess:
        """The agent `spawn` or `fork` started, once it listens; killed if it does not."""
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


def agent_threads(agents: int) -> int:
    """Aer's threads in each of `agents` agents on this machine: the cores, shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, agents))


def _command(
    node: QuantumNode,
    key_file: Path,
    trusted: list[Path],
    telemetry_dir: Path | None,
    node_file: Path | None,
    threads: int | None,
    link_files: list[Path] | None,
) -> tuple[list[str], dict[str, str]]:
    """The `qorch qpu-agent` arguments for the node, and the environment it adds."""
    env = {}
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
    argv = ["qpu-agent", "--host", "127.0.0.1", "--port", "0", *source, *links]
    return [*argv, "--identity-key", str(key_file), *trust], env


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
    argv, env = _command(node, key_file, trusted, telemetry_dir, node_file, threads, link_files)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qorch",
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def fork(
    node: QuantumNode,
    key_file: Path,
    trusted: list[Path],
    telemetry_dir: Path | None = None,
    node_file: Path | None = None,
    threads: int | None = None,
    link_files: list[Path] | None = None,
) -> Child:
    """As `spawn`, the same command, in a process forked from the fork server (spawned,
    where no server could start). It returns at once: the server forks once its imports are
    done, while the caller goes on. As with any multiprocessing child, a caller's main
    script is imported again in the agent: it must keep its work under `__main__`."""
    if not start_forkserver():
        return await spawn(node, key_file, trusted, telemetry_dir, node_file, threads, link_files)
    argv, env = _command(node, key_file, trusted, telemetry_dir, node_file, threads, link_files)
    reading, writing = FORKS.Pipe(duplex=False)
    # As a new process would: this process's environment now, not the server's from when
    # it started (multiprocessing passes the folder). Daemonic: an agent its caller never
    # stopped is stopped at the caller's exit, not waited for.
    process = FORKS.Process(
        target=_run_forked, args=(argv, {**os.environ, **env}, writing, threads), daemon=True
    )
    stdout = asyncio.StreamReader()
    loop = asyncio.get_running_loop()

    def start() -> None:
        try:
            process.start()  # blocks until the server, done importing, has forked
        finally:
            writing.close()  # the child's copy is the only one left: its end is the EOF

    try:
        pipe = os.fdopen(os.dup(reading.fileno()), "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout), pipe)
        started = loop.run_in_executor(None, start)
    except BaseException:
        writing.close()
        raise
    finally:
        reading.close()
    return Forked(process, stdout, started)


def _run_forked(
    argv: list[str], env: dict[str, str], output: Connection, threads: int | None
) -> None:
    """In the forked process: `python -m qorch ARGV`, as `spawn` runs it, in the caller's
    environment, its output into `output`, on at most `threads` threads."""
    # Every child gets the server's "alive" pipe, and the server lives while any holds it.
    # Closed, the server ends with the run alone, and this agent with the server, however
    # the run ends (a SIGKILL too): nothing is left holding the run's output open.
    die_with_parent(os.getppid())  # first: the server may end once the fd below is closed
    server = multiprocessing.forkserver._forkserver
    with contextlib.suppress(AttributeError, OSError, TypeError):
        os.close(server._forkserver_alive_fd)  # type: ignore[attr-defined]
        server._forkserver_alive_fd = None  # type: ignore[attr-defined]
    multiprocessing.current_process().daemon = False  # it starts a simulation process
    gc.freeze()  # off in the server (fork_server_init): what it imported, out of its passes
    gc.enable()
    if threads:
        # OpenMP and OpenBLAS sized their pools to every core as the server loaded them,
        # before any run said how many agents share the cores (Aer's own threads follow
        # OMP_NUM_THREADS, which `_command` sets, anyway: `qpu.aer`). Before the handlers
        # below: a Ctrl-C meanwhile would be a traceback from outside the command.
        threadpool_limits(threads)
    for signum, handler in AGENT_SIGNALS.items():  # the server ignores them
        signal.signal(signum, handler)
    # Unblocked by the server as it ignored them; again here, should its first module have
    # failed to import (multiprocessing skips such a one): else SIGTERM would never stop it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, AGENT_SIGNALS.keys())
    os.environ.clear()
    os.environ.update(env)
    for stream in (1, 2):
        os.dup2(output.fileno(), stream)
    output.close()
    sys.argv = ["qorch", *argv]
    runpy.run_module("qorch", run_name="__main__", alter_sys=True)


def _log_failed_fork(started: asyncio.Future[None]) -> None:
    if not started.cancelled() and (exc := started.exception()) is not None:
        log.warning("the fork server forked no agent: %s: %s", type(exc).__name__, exc)


class Forked:
    """A process started by `fork`, with the face of an asyncio subprocess. Its fork is
    `started`, done in a worker thread: a signal sent before waits for it."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        stdout: asyncio.StreamReader,
        started: asyncio.Future[None],
    ) -> None:
        self.process = process
        self.stdout = stdout
        self.started = started
        self._ended: asyncio.Future[None] | None = None
        started.add_done_callback(_log_failed_fork)  # once, however often it is awaited

    def _forked(self) -> bool | None:
        """Whether it was forked; None while that is not known yet."""
        if not self.started.done():
            return None
        return not self.started.cancelled() and self.started.exception() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        forked = self._forked()
        if forked is None:
            return None
        return self.process.exitcode if forked else NEVER_FORKED

    def kill(self) -> None:
        self._signal(multiprocessing.process.BaseProcess.kill)

    def terminate(self) -> None:
        self._signal(multiprocessing.process.BaseProcess.terminate)

    def _signal(self, send: Callable[[multiprocessing.process.BaseProcess], None]) -> None:
        forked = self._forked()
        if forked is None:
            self.started.add_done_callback(lambda _: self._signal(send))
        elif forked:
            send(self.process)

    async def wait(self) -> int:
        with contextlib.suppress(Exception):  # not forked: `returncode` says so
            await asyncio.shield(self.started)
        if self._forked() and self.process.exitcode is None:
            if self._ended is None:
                loop = asyncio.get_running_loop()
                self._ended = ended = loop.create_future()
                sentinel = self.process.sentinel  # readable once the process has ended

                def done() -> None:
                    loop.remove_reader(sentinel)
                    if not ended.done():
                        ended.set_result(None)

                loop.add_reader(sentinel, done)
            await asyncio.shield(self._ended)
            self.process.join()
        code = self.returncode
        assert code is not None
        return code


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the child's output so it never blocks on a full pipe."""
    while await stream.readline():
        pass
