"""The Authorize step: nonces admit one job each, keys are trusted per namespace, and the
record of used nonces is bounded, pruned and kept across restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest

from qorch.api import DistributedJob
from qorch.api import reasons as R
from qorch.api.distributed_job import stored_spec
from qorch.channel.identity import Identity
from qorch.channel.signing import (
    CLOCK_SKEW_SECONDS,
    EXPIRED,
    NONCE_RECORD_FULL,
    NONCE_RECORD_UNAVAILABLE,
    NONCE_REUSED,
    UNKNOWN_SIGNER,
    WRONG_NAMESPACE,
    SignatureError,
    TrustedKey,
    now_utc,
    parse_signature,
    sign_job,
)
from qorch.local.nonces import FileNonces
from qorch.pipeline.authorization import AuthorizationPolicy, StaticKeys, authorize
from qorch.pipeline.nonces import MemoryNonces, NonceBook, NonceRecord

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n'
    "measure q -> c;"
)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
NONCE_A, NONCE_B = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


def signed_job(
    identity: Identity, namespace: str, name: str, uid: str, signed_for: str | None = None
) -> DistributedJob:
    spec = stored_spec({"circuit": {"qasm": BELL}, "shots": 100})
    spec["signature"] = sign_job(spec, signed_for or namespace, name, identity, now_utc() + HOUR)
    return DistributedJob.model_validate(
        {"metadata": {"name": name, "namespace": namespace, "uid": uid}, "spec": spec}
    )


def job_nonce(job: DistributedJob) -> str:
    return parse_signature(job.spec.signature).nonce


def policy(keys: StaticKeys, nonces: NonceRecord | None = None) -> AuthorizationPolicy:
    return AuthorizationPolicy(require_signature=True, keys=keys, nonces=nonces or MemoryNonces())


async def test_a_nonce_admits_one_job_and_the_same_job_again(alice: Identity) -> None:
    rules = policy(StaticKeys((TrustedKey(alice.public_key),)))
    first = signed_job(alice, "team-a", "bell", "uid-1")
    assert (await authorize(first, rules)).allowed
    # The same object re-admitted (a restart before its status was written) is no replay.
    assert (await authorize(first, rules)).allowed
    # Deleted and re-created from the same signed manifest: a new uid, the same nonce.
    again = first.model_copy(deep=True)
    again.metadata.uid = "uid-2"
    decision = await authorize(again, rules)
    assert not decision.allowed and decision.reason == NONCE_REUSED
    assert "already admitted job team-a/bell (uid uid-1)" in decision.message
    assert "signed again" in decision.message


async def test_a_namespace_key_is_trusted_in_its_namespace_only(alice: Identity) -> None:
    rules = policy(StaticKeys(namespaces={"team-a": (TrustedKey(alice.public_key),)}))
    assert (await authorize(signed_job(alice, "team-a", "bell", "u1"), rules)).allowed
    refused = await authorize(signed_job(alice, "team-b", "bell", "u2"), rules)
    assert (refused.allowed, refused.reason) == (False, UNKNOWN_SIGNER)
    assert "in namespace team-b" in refused.message


async def test_a_cluster_key_is_trusted_everywhere_but_binds_the_namespace(
    alice: Identity,
) -> None:
    rules = policy(StaticKeys((TrustedKey(alice.public_key),)))
    assert (await authorize(signed_job(alice, "team-b", "bell", "u1"), rules)).allowed
    moved = signed_job(alice, "team-b", "bell", "u2", signed_for="team-a")
    refused = await authorize(moved, rules)
    assert (refused.allowed, refused.reason) == (False, WRONG_NAMESPACE)


async def test_no_policy_no_check(alice: Identity) -> None:
    decision = await authorize(signed_job(alice, "x", "y", "z"), AuthorizationPolicy())
    assert decision.allowed and decision.reason == R.SIGNATURE_NOT_REQUIRED


def test_the_record_forgets_a_nonce_only_after_its_expiry() -> None:
    book = NonceBook()
    assert book.claim(NONCE_A, "ns/a/1", NOW + HOUR, NOW) is None
    assert book.claim(NONCE_A, "ns/b/2", NOW + HOUR, NOW + HOUR) == "ns/a/1"
    # Past the expiry and the skew allowance the signature is refused as expired anyway.
    assert book.claim(NONCE_B, "ns/c/3", NOW + 3 * HOUR, NOW + 2 * HOUR) is None
    assert NONCE_A not in book.entries


def test_a_signature_that_expired_before_its_claim_is_refused_as_its_first_use_may_be_forgotten():
    """Verified in time, claimed late (a slow API server): the entry of its first use may be
    pruned by then, so the claim itself refuses what has expired."""
    book = NonceBook()
    assert book.claim(NONCE_A, "ns/a/1", NOW, NOW) is None
    late = NOW + timedelta(seconds=CLOCK_SKEW_SECONDS + 1)
    with pytest.raises(SignatureError) as raised:
        book.claim(NONCE_A, "ns/b/2", NOW, late)  # a replay: the first entry is gone
    assert raised.value.reason == EXPIRED and "signed again" in str(raised.value)


def test_one_namespace_holds_a_share_of_the_record_not_all_of_it() -> None:
    book = NonceBook(max_entries=8)
    for i in range(2):
        assert book.claim(f"{i:032x}", f"tenant-a/j{i}/u", NOW + HOUR, NOW) is None
    with pytest.raises(SignatureError) as raised:
        book.claim("f" * 32, "tenant-a/j9/u", NOW + HOUR, NOW)
    assert raised.value.reason == NONCE_RECORD_FULL
    assert "namespace tenant-a holds 2 of the 8 entries" in str(raised.value)
    bytes_bound = NonceBook(max_entries=1000, max_bytes=400)  # a quarter: 100 bytes
    assert bytes_bound.claim(NONCE_A, "tenant-a/a-long-job-name/u", NOW + HOUR, NOW) is None
    with pytest.raises(SignatureError, match="namespace tenant-a holds 1 of the 1000"):
        bytes_bound.claim(NONCE_B, "tenant-a/another-long-name/u", NOW + HOUR, NOW)
    assert book.claim("e" * 32, "tenant-b/j/u", NOW + HOUR, NOW) is None


def test_a_full_record_refuses_rather_than_forgets() -> None:
    book = NonceBook(max_entries=1)
    book.claim(NONCE_A, "ns/a/1", NOW + HOUR, NOW)
    with pytest.raises(SignatureError, match="full") as raised:
        book.claim(NONCE_B, "ns/b/2", NOW + HOUR, NOW)
    assert raised.value.reason == NONCE_RECORD_FULL
    assert book.claim(NONCE_B, "ns/b/2", NOW + 2 * HOUR, NOW + 2 * HOUR) is None


def test_the_record_is_bounded_in_bytes() -> None:
    book = NonceBook(max_bytes=200)
    book.claim(NONCE_A, "ns/a/1", NOW + HOUR, NOW)
    with pytest.raises(SignatureError) as raised:
        book.claim(NONCE_B, "ns/" + "n" * 200 + "/2", NOW + HOUR, NOW)
    assert raised.value.reason == NONCE_RECORD_FULL


def test_the_record_round_trips_and_refuses_garbage() -> None:
    book = NonceBook()
    book.claim(NONCE_A, "ns/a/1", NOW + HOUR, NOW)
    assert NonceBook.from_json(book.to_json()).entries == book.entries
    for garbage in ("[1, 2]", "{not json", '{"n": 5}'):
        with pytest.raises(ValueError, match="nonce record"):
            NonceBook.from_json(garbage)


async def test_a_file_record_survives_the_process(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "nonces.json"
    rules = policy(StaticKeys((TrustedKey(alice.public_key),)), FileNonces(path))
    job = signed_job(alice, "team-a", "bell", "uid-1")
    assert (await authorize(job, rules)).allowed
    restarted = policy(StaticKeys((TrustedKey(alice.public_key),)), FileNonces(path))
    assert (await authorize(job, restarted)).allowed
    replay = job.model_copy(deep=True)
    replay.metadata.uid = "uid-2"
    assert (await authorize(replay, restarted)).reason == NONCE_REUSED
    assert json.loads(path.read_text()) == {job_nonce(job): ["team-a/bell/uid-1", ANY]}
    path.write_text("{broken")
    with pytest.raises(ValueError, match=r"nonces\.json"):
        FileNonces(path)


@pytest.mark.parametrize("damage", ["folder gone", "garbage written meanwhile"])
async def test_a_file_record_that_cannot_be_rewritten_refuses_the_job(
    tmp_path: Path, alice: Identity, damage: str
) -> None:
    """Fail closed, with the job: a signature whose use is not recorded could be replayed."""
    path = tmp_path / "record" / "nonces.json"
    path.parent.mkdir()
    nonces = FileNonces(path)  # usable when the run starts
    if damage == "folder gone":
        path.parent.rmdir()
    else:
        path.write_text("{broken")
    job = signed_job(alice, "team-a", "bell", "uid-1")
    decision = await authorize(job, policy(StaticKeys((TrustedKey(alice.public_key),)), nonces))
    assert not decision.allowed and decision.reason == NONCE_RECORD_UNAVAILABLE
    assert f"the record of used signatures {path} cannot be read and rewritten" in decision.message
