"""Signed jobs: `qorch keygen`, `qorch sign`, `qorch verify`, and the Authorize step."""

import json
import subprocess
import sys

import pytest

from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart"


def qorch(*args: str, cwd=REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qorch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def signed(tmp_path):
    """A submitter key pair and the quickstart job signed with it."""
    assert qorch("keygen", str(tmp_path / "alice")).returncode == 0
    proc = qorch("sign", str(QUICKSTART / "ghz-job.yaml"), "--key", str(tmp_path / "alice.key"))
    assert proc.returncode == 0, proc.stderr
    job = tmp_path / "job.yaml"
    job.write_text(proc.stdout)
    return tmp_path, job


def test_keygen_sign_verify_round_trip_and_a_one_byte_change_fails(signed):
    keys, job = signed
    pub = str(keys / "alice.pub")
    ok = qorch("verify", str(job), "--trusted", pub)
    assert ok.returncode == 0 and "valid, signed by sha256:" in ok.stdout
    job.write_text(job.read_text().replace("shots: 2000", "shots: 2001"))
    bad = qorch("verify", str(job), "--trusted", pub)
    assert bad.returncode == 1
    assert "InvalidSignature" in bad.stdout


def test_private_key_is_written_owner_only(signed):
    keys, _ = signed
    assert (keys / "alice.key").stat().st_mode & 0o777 == 0o600


def run_with_trust(keys, job):
    (keys / "nodes.yaml").write_text((QUICKSTART / "nodes.yaml").read_text())
    proc = qorch(
        "run",
        str(keys / "nodes.yaml"),
        str(job),
        "-o",
        "json",
        "--trusted-submitter",
        str(keys / "alice.pub"),
    )
    return proc, json.loads(proc.stdout) if proc.stdout else None


def authorized(job_obj):
    return next(c for c in job_obj["status"]["conditions"] if c["type"] == "Authorized")


def test_signed_job_is_authorized_and_runs(signed):
    keys, job = signed
    proc, jobs = run_with_trust(keys, job)
    assert proc.returncode == 0, proc.stderr
    cond = authorized(jobs[0])
    assert cond["status"] == "True" and cond["reason"] == "SignatureValid"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda text: text.replace("shots: 2000", "shots: 1999"), "InvalidSignature"),
        (lambda text: "\n".join(x for x in text.splitlines() if "signature:" not in x), "Unsigned"),
    ],
    ids=["tampered", "stripped"],
)
def test_tampered_or_unsigned_job_is_rejected(signed, mutate, reason):
    keys, job = signed
    job.write_text(mutate(job.read_text()))
    proc, jobs = run_with_trust(keys, job)
    assert proc.returncode == 1, proc.stderr
    assert jobs[0]["status"]["phase"] == "Rejected"
    cond = authorized(jobs[0])
    assert cond["status"] == "False" and cond["reason"] == reason


def test_job_signed_by_an_unknown_key_is_rejected(signed, tmp_path):
    keys, job = signed
    assert qorch("keygen", str(tmp_path / "mallory")).returncode == 0
    proc = qorch("sign", str(QUICKSTART / "ghz-job.yaml"), "--key", str(tmp_path / "mallory.key"))
    job.write_text(proc.stdout)
    proc, jobs = run_with_trust(keys, job)
    assert proc.returncode == 1
    assert authorized(jobs[0])["reason"] == "UnknownSigner"
