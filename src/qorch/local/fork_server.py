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
    signals held back until it ignores them."""
    # The server ignores the run's signals once it has started (`fork_server_init`);
    # blocked until then, as the process inherits this thread's mask, a Ctrl-C to the
    # group cannot stop it mid-start. The resource tracker first: its own start unblocks
    # SIGINT and SIGTERM in this thread.
    mask = None
    try:
        multiprocessing.resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, AGENT_SIGNALS.keys())
        multiprocessing.forkserver.ensure_running()
        return True
    except OSError as exc:
        log.warning("agents are spawned, not forked: no fork server (%s)", exc)
        return False
    finally:
        if mask is not None:  # last: a signal held back is delivered here
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def stop_forkserver() -> None:
    """At the `qorch` command's end (`cli.command`), its agents stopped: the server ends at
    once, though still importing for a run that ended before it needed agents (it would
    hold the command's output open that long), and its socket's folder is removed, which
    multiprocessing does at a normal interpreter exit, and the command skips that."""
    if not _server:
        return
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)  # it ignores the others; it holds nothing to save
    # Made before the server's socket, even one that could not be bound.
    shutil.rmtree(multiprocessing.util.get_temp_dir(), ignore_errors=True)
