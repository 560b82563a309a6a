"""A real TPM 2.0 for tests: `swtpm socket` with a fresh state folder, one per use."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

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
