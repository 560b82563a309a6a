"""Signed jobs: `qorch keygen`, `qorch sign`, `qorch verify`, and the Authorize step of the
embedded control plane, with replays refused beside a good job that still runs."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.api.distributed_job import stored_spec
from qorch.channel.identity import Identity
from qorch.channel.signing import now_utc, sign_job
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart"
PRIVATE_KEY_WANTED = (
    "not a PEM private key: give PREFIX.key as `qorch keygen` writes it (PREFIX.pub is the"
    " public half)"
)


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
    assert ok.returncode == 0 and "valid in namespace default, signed by sha256:" in ok.stdout
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


GHZ = yaml.safe_load((QUICKSTART / "ghz-job.yaml").read_text())


def job_signed(
    identity: Identity,
    name: str,
    namespace: str = "default",
    *,
    signed_for: tuple[str, str] | None = None,
    valid_for: timedelta = timedelta(hours=1),
) -> dict[str, Any]:
    """The quickstart job as `name` in `namespace`, signed for `signed_for` (namespace,
    name; where it is by default), as `qorch sign` signs it."""
    job = json.loads(json.dumps(GHZ))
    job["metadata"] = {"name": name, "namespace": namespace}
    where = signed_for or (namespace, name)
    job["spec"]["signature"] = sign_job(
        stored_spec(job["spec"]), where[0], where[1], identity, now_utc() + valid_for
    )
    return job


def by_place(jobs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(j["metadata"]["namespace"], j["metadata"]["name"]): j for j in jobs}


def trusting(*keys: object) -> list[str]:
    return [arg for key in keys for arg in ("--trusted-submitter", str(key))]


def run_jobs(tmp_path: Path, jobs: list[dict[str, Any]], *flags: str):
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(yaml.safe_dump_all(jobs, sort_keys=False))
    (tmp_path / "nodes.yaml").write_text((QUICKSTART / "nodes.yaml").read_text())
    proc = qorch("run", str(tmp_path / "nodes.yaml"), str(manifest), "-o", "json", *flags)
    assert proc.stdout, proc.stderr
    return proc, by_place(json.loads(proc.stdout))


def test_replays_stale_signatures_and_misplaced_keys_are_refused_beside_good_jobs(tmp_path):
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    alice.save(tmp_path / "alice")
    bob.save(tmp_path / "bob")
    carol.save(tmp_path / "carol")
    (tmp_path / "carol.notAfter").write_text(f"{(now_utc() - timedelta(hours=1)).isoformat()}\n")
    good = job_signed(alice, "ghz")
    jobs = [
        good,
        job_signed(alice, "ghz-renamed", signed_for=("default", "ghz")),
        job_signed(alice, "ghz", "team-b", signed_for=("default", "ghz")),
        job_signed(alice, "ghz-expired", valid_for=-timedelta(hours=2)),
        job_signed(bob, "ghz-bob"),
        job_signed(bob, "ghz-bob", "team-b"),
        job_signed(carol, "ghz-carol"),
    ]
    trust = trusting(tmp_path / "alice.pub", tmp_path / "carol.pub", f"default={tmp_path}/bob.pub")
    proc, done = run_jobs(tmp_path, jobs, *trust)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert done["default", "ghz"]["status"]["phase"] == "Succeeded"
    assert done["default", "ghz-bob"]["status"]["phase"] == "Succeeded"
    refused = {
        ("default", "ghz-renamed"): ("SignatureWrongName", "signed for the name ghz"),
        ("team-b", "ghz"): ("SignatureWrongNamespace", "signed for namespace default"),
        ("default", "ghz-expired"): ("SignatureExpired", "have the job signed again"),
        ("team-b", "ghz-bob"): ("UnknownSigner", "not a trusted submitter key in namespace team-b"),
        ("default", "ghz-carol"): ("SignerKeyOutsideWindow", "was retired at"),
    }
    for place, (reason, words) in refused.items():
        job = done[place]
        assert job["status"]["phase"] == "Rejected", place
        cond = authorized(job)
        assert (cond["status"], cond["reason"]) == ("False", reason), place
        assert words in cond["message"], (place, cond["message"])


def test_a_signed_job_run_again_is_refused_as_a_reused_nonce(tmp_path):
    alice = Identity.generate()
    alice.save(tmp_path / "alice")
    flags = [*trusting(tmp_path / "alice.pub"), "--nonce-record", str(tmp_path / "nonces.json")]
    first = job_signed(alice, "ghz")
    proc, done = run_jobs(tmp_path, [first], *flags)
    assert proc.returncode == 0, proc.stderr
    # The same signed job again (a new object: a new uid), beside a freshly signed one.
    proc, done = run_jobs(tmp_path, [first, job_signed(alice, "ghz-2")], *flags)
    assert proc.returncode == 1, proc.stderr
    assert done["default", "ghz-2"]["status"]["phase"] == "Succeeded"
    replay = done["default", "ghz"]
    assert replay["status"]["phase"] == "Rejected"
    cond = authorized(replay)
    assert (cond["status"], cond["reason"]) == ("False", "NonceReused")
    assert "already admitted job default/ghz (uid " in cond["message"]


def test_a_run_takes_neither_status_nor_uid_from_its_manifests(tmp_path):
    """As the API server creates objects: a status written into a manifest ("admitted"
    already) would skip the sanitizer and the signature check, and a uid chosen there would
    make a signed job the holder of its own used nonce, run again and again."""
    alice = Identity.generate()
    alice.save(tmp_path / "alice")
    flags = [*trusting(tmp_path / "alice.pub"), "--nonce-record", str(tmp_path / "nonces.json")]
    admitted = {"phase": "Pending", "timings": {"admittedAt": "2026-01-01T00:00:00Z"}}
    unsigned = {**json.loads(json.dumps(GHZ)), "metadata": {"name": "unsigned"}}
    unsigned["status"] = admitted
    replayed = job_signed(alice, "ghz")
    replayed["metadata"]["uid"] = "chosen-uid"
    proc, done = run_jobs(tmp_path, [unsigned, replayed], *flags)
    assert done["default", "ghz"]["status"]["phase"] == "Succeeded", proc.stderr
    assert done["default", "unsigned"]["status"]["phase"] == "Rejected"
    assert authorized(done["default", "unsigned"])["reason"] == "Unsigned"
    proc, done = run_jobs(tmp_path, [replayed], *flags)
    assert done["default", "ghz"]["status"]["phase"] == "Rejected"
    assert authorized(done["default", "ghz"])["reason"] == "NonceReused"


def test_sign_refuses_a_circuit_in_a_configmap_it_does_not_pin(tmp_path):
    """A signature covers the spec: the ConfigMap it names could hold any circuit."""
    assert qorch("keygen", str(tmp_path / "alice")).returncode == 0
    job = json.loads(json.dumps(GHZ))
    job["spec"]["circuit"] = {"configMapRef": {"name": "circuits", "key": "ghz.qasm"}}
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job))
    refused = qorch("sign", str(manifest), "--key", str(tmp_path / "alice.key"))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "set spec.circuit.configMapRef.sha256" in refused.stderr
    assert "kubectl get configmap circuits -o jsonpath='{.data.ghz\\.qasm}'" in refused.stderr
    job["spec"]["circuit"]["configMapRef"]["sha256"] = "0" * 64
    manifest.write_text(yaml.safe_dump(job))
    signed = qorch("sign", str(manifest), "--key", str(tmp_path / "alice.key"))
    assert signed.returncode == 0, signed.stderr


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--nonce-record", "typo/nonces.json", "no folder {tmp}/typo"),
        ("--trusted-submitter", "typo.pub", "No such file or directory"),
    ],
)
def test_an_unusable_record_or_key_path_ends_the_run_naming_the_option(
    tmp_path, flag, value, problem
):
    path = tmp_path / value
    proc = qorch("run", str(QUICKSTART), flag, str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"run: {flag} {path}: {problem.format(tmp=tmp_path)}"


def test_a_namespace_trusted_with_no_key_after_the_equals_sign_is_named():
    """`team-a=` would read as this folder's keys."""
    proc = qorch("run", str(QUICKSTART), "--trusted-submitter", "team-a=")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "run: --trusted-submitter team-a=: give NAMESPACE=PREFIX.pub or a folder"
    )


@pytest.mark.parametrize(
    ("command", "flag", "given", "problem"),
    [
        ("sign", "--key", "alice.pub", PRIVATE_KEY_WANTED),
        ("sign", "--key", "typo.key", "cannot read: No such file or directory"),
        ("sign", "--key", "/dev/zero", "larger than a key file is (1048576 bytes)"),
        ("verify", "--trusted", "typo.pub", "cannot read: No such file or directory"),
    ],
)
def test_a_wrong_key_file_is_named_with_its_option(signed, command, flag, given, problem):
    folder, job = signed
    proc = qorch(command, str(job), flag, str(folder / given))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{command}: {flag} {folder / given}: {problem}"
