"""A node's TPM 2.0, driven through the tpm2-tools commands, each bounded in time.

The TPM is named by a TCTI string, as tpm2-tools take it (`swtpm:host=127.0.0.1,port=2321`,
`device:/dev/tpmrm0`). What qorch keeps in it, at fixed persistent handles:

* the attestation key (AK, `AK_HANDLE`): a restricted RSA-2048 signing key made under the
  endorsement key (EK) and shown to live in the same TPM as the EK by credential
  activation at enrolment (`enroll_ak`);
* a sealed 32-byte key (`SEALED_HANDLE`) that wraps the node's ML-DSA-65 private key
  (qorch.qpu.attestor); its policy is PolicyPCR over PCR 23, so the TPM releases it only
  while PCR 23 holds the value of the measurements it was sealed to.

PCR 23 ("application support" in the PC Client profile) is used because it is resettable
at locality 0 and no firmware or OS component extends it: the agent resets it and extends
its own measurements at start, so its value depends on those measurements only, without a
reboot. PCR 16 (also resettable) is reserved for debugging. The price of a resettable PCR:
anything that can talk to the TPM can reset it and extend chosen values, so it shows what
an honest launcher measured (a modified file on disk), not what a hostile process claims.
Binding to the boot chain (PCRs 0-7, IMA in PCR 10) would close that gap on real hardware.

swtpm and most setups have no resource manager between the tools and the TPM, so
transient objects and sessions are flushed after every operation, and operations on one
TPM are serialised by a lock. One agent per TPM.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from qorch.channel.attestation import MEASUREMENT_PCR, pcr_after

DEFAULT_TIMEOUT_SECONDS = 10.0
AK_HANDLE = 0x81010002
SEALED_HANDLE = 0x81010003
PCR_SPEC = f"sha256:{MEASUREMENT_PCR}"
# Bytes of a tool's error output kept in a TpmError.
_STDERR_KEPT = 300


class TpmError(Exception):
    """A TPM operation failed; the message says which and why."""


class TpmTimeout(TpmError):
    """The TPM did not answer within the time allowed."""


def code_measurement(root: Path | None = None) -> bytes:
    """SHA-256 over the qorch package the process runs: each file (sources and data,
    compiled caches left out) in the order of its relative path, as `len(path) (4 bytes,
    big-endian) || path || SHA-256(content)`."""
    root = root or Path(__file__).resolve().parent.parent
    files = sorted(
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    digest = hashlib.sha256()
    for relative, path in files:
        name = relative.encode()
        digest.update(
            len(name).to_bytes(4, "big") + name + hashlib.sha256(path.read_bytes()).digest()
        )
    return digest.digest()


def file_measurement(path: str | os.PathLike[str]) -> bytes:
    """SHA-256 of a file's bytes (what `sha256sum` prints)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()


def expected_pcr(node_file: str | os.PathLike[str], code_root: Path | None = None) -> bytes:
    """PCR 23 of an agent that runs this code with this node file, just after its start."""
    return pcr_after([code_measurement(code_root), file_measurement(node_file)])


class Tpm:
    """One TPM, reached through `tcti`; every command bounded by `timeout` seconds."""

    def __init__(self, tcti: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.tcti = tcti
        self.timeout = timeout
        self._lock = threading.Lock()
        self._unflushed = False

    def __repr__(self) -> str:
        return f"Tpm({self.tcti!r})"

    # -- plumbing ----------------------------------------------------------------------

    def _tool(self, *args: str, cwd: Path) -> str:
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        try:
            done = subprocess.run(
                args, cwd=cwd, env=env, capture_output=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TpmTimeout(
                f"the TPM at {self.tcti} did not answer {args[0]} within {self.timeout:g} s"
            ) from None
        except FileNotFoundError:
            raise TpmError(f"{args[0]} is not installed (Debian package tpm2-tools)") from None
        if done.returncode != 0:
            raise TpmError(f"{args[0]} failed: {_reason(done.stderr)}")
        return done.stdout.decode("utf-8", "replace")

    @contextmanager
    def _operation(self) -> Iterator[Path]:
        """A private folder for the tools' files; transient objects and sessions flushed
        after, so the TPM's few slots are free for the next operation. After a timeout
        nothing more is asked of the TPM: the next operation flushes first."""
        with self._lock, tempfile.TemporaryDirectory(prefix="qorch-tpm-") as folder:
            work = Path(folder)
            if self._unflushed and not self._flush(work):
                raise TpmTimeout(
                    f"the TPM at {self.tcti} did not answer within {self.timeout:g} s (nor"
                    " since an earlier timeout)"
                )
            try:
                yield work
            except TpmTimeout:
                self._unflushed = True
                raise
            except BaseException:
                self._flush(work)
                raise
            self._flush(work)

    def _flush(self, work: Path) -> bool:
        """Flush every transient object and session; False if the TPM did not answer."""
        self._unflushed = True
        for kind in ("-t", "-l", "-s"):
            try:
                self._tool("tpm2_flushcontext", kind, cwd=work)
            except TpmTimeout:
                return False
            except TpmError:
                pass  # nothing to flush
        self._unflushed = False
        return True

    def _persist(self, context: str, handle: int, work: Path) -> None:
        """Make an object persistent at `handle`, replacing what was there."""
        listed = self._tool("tpm2_getcap", "handles-persistent", cwd=work)
        if f"{handle:#x}" in listed.lower():
            self._tool("tpm2_evictcontrol", "-C", "o", "-c", f"{handle:#x}", cwd=work)
        self._tool("tpm2_evictcontrol", "-C", "o", "-c", context, f"{handle:#x}", cwd=work)

    # -- measurements ------------------------------------------------------------------

    def measure(self, measurements: Sequence[bytes]) -> None:
        """Reset PCR 23 and extend it with each SHA-256 measurement in turn."""
        with self._operation() as work:
            self._tool("tpm2_pcrreset", str(MEASUREMENT_PCR), cwd=work)
            for measurement in measurements:
                self._extend(measurement, work)

    def extend(self, measurement: bytes) -> None:
        with self._operation() as work:
            self._extend(measurement, work)

    def _extend(self, measurement: bytes, work: Path) -> None:
        spec = f"{MEASUREMENT_PCR}:sha256={measurement.hex()}"
        self._tool("tpm2_pcrextend", spec, cwd=work)

    def read_pcr(self) -> bytes:
        with self._operation() as work:
            self._tool("tpm2_pcrread", PCR_SPEC, "-o", "pcr.bin", cwd=work)
            return (work / "pcr.bin").read_bytes()

    # -- sealing -----------------------------------------------------------------------

    def seal(self, secret: bytes, pcr_value: bytes) -> None:
        """Seal `secret` (at most 128 bytes) at SEALED_HANDLE, released only while PCR 23
        equals `pcr_value`."""
        with self._operation() as work:
            (work / "pcr.bin").write_bytes(pcr_value)
            (work / "secret.bin").write_bytes(secret)
            self._tool(
                "tpm2_createpolicy", "--policy-pcr", "-l", PCR_SPEC, "-f", "pcr.bin",
                "-L", "policy.dat", cwd=work,
            )  # fmt: skip
            self._tool("tpm2_createprimary", "-C", "o", "-c", "primary.ctx", cwd=work)
            self._tool(
                "tpm2_create", "-C", "primary.ctx", "-i", "secret.bin", "-L", "policy.dat",
                "-a", "fixedtpm|fixedparent", "-u", "sealed.pub", "-r", "sealed.priv", cwd=work,
            )  # fmt: skip
            self._tool("tpm2_flushcontext", "-t", cwd=work)  # room for the load
            self._tool(
                "tpm2_load", "-C", "primary.ctx", "-u", "sealed.pub", "-r", "sealed.priv",
                "-c", "sealed.ctx", cwd=work,
            )  # fmt: skip
            self._persist("sealed.ctx", SEALED_HANDLE, work)

    def unseal(self) -> bytes:
        """The sealed secret; a TpmError when PCR 23 is not what it was sealed to."""
        with self._operation() as work:
            self._tool("tpm2_startauthsession", "--policy-session", "-S", "s.ctx", cwd=work)
            self._tool("tpm2_policypcr", "-S", "s.ctx", "-l", PCR_SPEC, cwd=work)
            try:
                self._tool(
                    "tpm2_unseal", "-p", "session:s.ctx", "-c", f"{SEALED_HANDLE:#x}",
                    "-o", "secret.bin", cwd=work,
                )  # fmt: skip
            except TpmTimeout:
                raise
            except TpmError as exc:
                if "policy check failed" in str(exc):
                    raise TpmError(
                        f"the TPM refuses to unseal the identity key: PCR {MEASUREMENT_PCR}"
                        " differs from the value it was sealed to (the agent's code or node"
                        " file changed since enrolment)"
                    ) from None
                raise
            return (work / "secret.bin").read_bytes()

    # -- attestation key ---------------------------------------------------------------

    def enroll_ak(self) -> tuple[str, str]:
        """Make an AK under the EK, prove by credential activation that the TPM holding the
        EK holds it, and keep it at AK_HANDLE. The EK and AK public keys, as PEM."""
        with self._operation() as work:
            self._tool(
                "tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub", cwd=work
            )  # fmt: skip
            self._tool("tpm2_readpublic", "-c", "ek.ctx", "-f", "pem", "-o", "ek.pem", cwd=work)
            self._tool("tpm2_flushcontext", "-t", cwd=work)
            self._tool(
                "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-s", "rsassa",
                "-g", "sha256", "-u", "ak.pem", "-f", "pem", "-n", "ak.name", cwd=work,
            )  # fmt: skip
            # The verifier's side: a secret only the TPM holding this EK can recover, and only
            # for a key of this name (the AK's public area, hashed) loaded in that TPM.
            secret = os.urandom(32)
            (work / "secret.bin").write_bytes(secret)
            name = (work / "ak.name").read_bytes().hex()
            self._tool(
                "tpm2_makecredential", "-T", "none", "-u", "ek.pub", "-s", "secret.bin",
                "-n", name, "-o", "credential.bin", cwd=work,
            )  # fmt: skip
            self._tool("tpm2_flushcontext", "-t", cwd=work)
            self._tool("tpm2_startauthsession", "--policy-session", "-S", "s.ctx", cwd=work)
            self._tool("tpm2_policysecret", "-S", "s.ctx", "-c", "e", cwd=work)
            self._tool(
                "tpm2_activatecredential", "-c", "ak.ctx", "-C", "ek.ctx",
                "-i", "credential.bin", "-o", "recovered.bin", "-P", "session:s.ctx", cwd=work,
            )  # fmt: skip
            if (work / "recovered.bin").read_bytes() != secret:
                raise TpmError("credential activation recovered another secret: AK not in EK's TPM")
            self._tool("tpm2_flushcontext", "-t", cwd=work)
            self._persist("ak.ctx", AK_HANDLE, work)
            return (work / "ek.pem").read_text(), (work / "ak.pem").read_text()

    def quote(self, qualifying_data: bytes) -> tuple[bytes, bytes, bytes]:
        """A quote of PCR 23 by the AK: the TPMS_ATTEST, its RSASSA signature and the PCR
        value as the TPM read it."""
        with self._operation() as work:
            self._tool(
                "tpm2_quote", "-c", f"{AK_HANDLE:#x}", "-l", PCR_SPEC,
                "-q", qualifying_data.hex(), "-g", "sha256", "-m", "quote.msg",
                "-s", "quote.sig", "-f", "plain", "-o", "quote.pcrs", "-F", "values", cwd=work,
            )  # fmt: skip
            return (
                (work / "quote.msg").read_bytes(),
                (work / "quote.sig").read_bytes(),
                (work / "quote.pcrs").read_bytes(),
            )


def _reason(stderr: bytes) -> str:
    """The tool's own ERROR lines, which name the TPM's response code."""
    text = stderr.decode("utf-8", "replace")
    lines = [
        line.strip().removeprefix("ERROR: ")
        for line in text.splitlines()
        if line.startswith("ERROR: ") and "Unable to run" not in line
    ]
    reason = "; ".join(lines) or text.strip()
    return reason[:_STDERR_KEPT] or "no error output"
