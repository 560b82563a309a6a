"""What a process is called and how long it lives, set through Linux's prctl(2); elsewhere
these do nothing."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG, _PR_SET_NAME = 1, 15


def die_with_parent(parent: int) -> None:
    """A child must not outlive the process that started it, however that one ends (a
    SIGKILL too): it would work on for nobody. Strictly, it dies with the thread that
    started it."""
    with contextlib.suppress(Exception):  # not Linux: it ends when next told to
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def name_process(name: str) -> None:
    """The name `ps`, `top` and /proc/PID/comm show (15 bytes at most), however the process
    started: a forked agent's command line is its fork server's."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode()[:15])
