"""The server `qorch run` forks its agents from (`agents.fork`): a process that has imported
what `qorch qpu-agent` imports, once, for every agent.

Standard library only: `qorch run` starts it first of all (`cli.main`), before its own
imports, so that the server's 0.7 s of Qiskit, Aer and aiohttp run beside them. Each agent
bounds Aer's threads itself (`qpu.aer`, from the OMP_NUM_THREADS `fork` gives it), so the
server needs no thread count and can start before the manifests say how many agents run."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import multiprocessing.util
import os
import shutil
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: What the server imports before any agent asks: what `qorch qpu-agent` imports, and
#: the module of the function each forked agent starts with (`agents._run_forked`).
FORK_SERVER_MODULES = [
    "qorch.local.fork_server_init",
    "qorch.cli",
    "qorch.settings",
    "qorch.telemetry.sidecar_options",
    "qorch.qpu.agent",
    "qorch.qpu.agent_keys",
    "qorch.qpu.link_state",
    "qorch.local.agents",
]
FORKS = multiprocessing.get_context("forkserver")
#: The environment variable that tells a starting server its parent's pid: the server ties
#: its life to the process that started it (`fork_server_init`), which may have ended
#: before that line runs.
PARENT_VARIABLE = "QORCH_FORK_SERVER_PARENT"
#: Once asked: "up", whether a server could start.
_server: dict[str, bool] = {}

#: The signals the server ignores (`fork_server_init`), as an agent answers them.
AGENT_SIGNALS: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
    signal.SIGHUP: signal.SIG_DFL,
}


def start_forkserver() -> bool:
    """Start the server, if it is not running: it imports the agent's modules while the
    caller goes on; one that died is started again. False when it cannot start (its
    socket's path under TMPDIR too long, say): `agents.fork` then spawns."""
    if not _server:
        FORKS.set_forkserver_preload(FORK_SERVER_MODULES)
        _server["up"] = True
    if _server["up"]:
        _server["up"] = _ensure_running()
    return _server["up"]


def _ensure_running() -> bool:
    """multiprocessing's own start of the server (nothing, while it runs), with the run's
    signals held back until it ignores them, and this process's pid in its environment."""
    # The server ignores the run's signals once it has started (`fork_server_init`);
    # blocked until then, as the process inherits this thread's mask, a Ctrl-C to the
    # group cannot stop it mid-start. The resource tracker first: its own start unblocks
    # SIGINT and SIGTERM in this thread.
    mask = None
    try:
        multiprocessing.resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, AGENT_SIGNALS.keys())
        os.environ[PARENT_VARIABLE] = str(os.getpid())
        multiprocessing.forkserver.ensure_running()
        return True
    except OSError as exc:
        log.warning("agents are spawned, not forked: no fork server (%s)", exc)
        return False
    finally:
        os.environ.pop(PARENT_VARIABLE, None)
        if mask is not None:  # last: a signal held back is delivered here
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def stop_forkserver() -> None:
    """End the server at once, though still importing (for a run that needs no agents, or
    at the command's end with its agents stopped, when it would otherwise hold the
    command's output open until its imports are done); the next `start_forkserver` starts
    another."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    if _server and pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)  # it ignores the others; it holds nothing to save


def remove_forkserver_files() -> None:
    """The folder of the server's socket, which multiprocessing removes at a normal
    interpreter exit, and the `qorch` command skips that (`cli.command`)."""
    if _server:  # made before the server's socket, even one that could not be bound
        shutil.rmtree(multiprocessing.util.get_temp_dir(), ignore_errors=True)
