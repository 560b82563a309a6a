"""Signed DistributedJobs: any change to a signed spec, its place, its nonce or expiry, or its
signature is caught, each with its own reason."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.channel.identity import Identity, encode_public_key
from qorch.channel.signing import (
    CLOCK_SKEW_SECONDS,
    EXPIRED,
    INVALID_SIGNATURE,
    KEY_OUTSIDE_WINDOW,
    MALFORMED_SIGNATURE,
    NOT_CANONICAL,
    OUTDATED_SIGNATURE,
    UNKNOWN_SIGNER,
    UNSIGNED,
    VALIDITY_TOO_LONG,
    WRONG_NAME,
    WRONG_NAMESPACE,
    SignatureError,
    TrustedKey,
    canonical_job,
    load_trusted_keys,
    parse_signature,
    sign_command,
    sign_job,
    trusted_keys_from_entries,
    verify_command,
    verify_job,
)

SPEC: dict[str, Any] = {
    "circuit": {"qasm": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\ncx q[0],q[1];'},
    "shots": 1000,
    "strategy": "auto",
    "fidelityBudget": 0.9,
    "nodeSelector": {"matchLabels": {"site": "lab-a"}},
    "observables": ["ZZ", "XX"],
}
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
NONCE = "0123456789abcdef0123456789abcdef"
NS, NAME = "team-a", "bell"


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(SPEC)


def _sign(spec: dict[str, Any], identity: Identity, **overrides: Any) -> str:
    place = {"namespace": NS, "name": NAME, "expires_at": NOW + HOUR, "nonce": NONCE}
    place.update(overrides)
    return sign_job(spec, identity=identity, **place)


def _verify(
    spec: dict[str, Any],
    signature: object,
    trusted: list[TrustedKey],
    *,
    namespace: str = NS,
    name: str = NAME,
    now: datetime = NOW,
    max_validity_seconds: float = 7 * 86400,
) -> Any:
    return verify_job(
        spec,
        namespace,
        name,
        signature,
        trusted,
        now=now,
        max_validity_seconds=max_validity_seconds,
    )


def _reason(spec: dict[str, Any], signature: object, trusted: list[TrustedKey], **kw: Any) -> str:
    with pytest.raises(SignatureError) as raised:
        _verify(spec, signature, trusted, **kw)
    return raised.value.reason


def _trust(identity: Identity, **window: datetime) -> list[TrustedKey]:
    return [TrustedKey(identity.public_key, "test", window.get("nb"), window.get("na"))]


def test_suspend_is_not_signed_so_a_queue_controller_may_flip_it(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    trusted = _trust(operator_identity)
    for hold in (True, False):
        _verify({**spec, "suspend": hold}, signature, trusted)
    # Every other field stays covered.
    assert _reason({**spec, "shots": 1001}, signature, trusted) == "InvalidSignature"


def test_a_signed_job_verifies_and_names_its_signer_nonce_and_expiry(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    assert signature.startswith(
        f"mldsa65-v2:{operator_identity.fingerprint}:team-a/bell:{NONCE}:20260601T130000Z:"
    )
    signer = _verify(spec, signature, _trust(operator_identity))
    assert signer.fingerprint == operator_identity.fingerprint
    assert signer.public_key == operator_identity.public_key
    assert (signer.nonce, signer.expires_at) == (NONCE, NOW + HOUR)


def test_fresh_signatures_carry_fresh_128_bit_nonces(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    nonces = {
        parse_signature(sign_job(spec, NS, NAME, operator_identity, NOW + HOUR)).nonce
        for _ in range(3)
    }
    assert len(nonces) == 3 and all(len(n) == 32 for n in nonces)


def test_the_signature_field_itself_is_not_signed(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    spec["signature"] = _sign(spec, operator_identity)
    assert _verify(spec, spec["signature"], _trust(operator_identity))


def test_canonical_form_binds_place_nonce_and_expiry_sorted_compact_utf8() -> None:
    spec = {"b": 1, "a": {"y": "é", "x": [1.0, 2.5]}, "signature": "ignored"}
    assert (
        canonical_job(spec, "ns", "job", NONCE, NOW)
        == (
            '{"expires":"20260601T120000Z","name":"job","namespace":"ns",'
            f'"nonce":"{NONCE}","spec":{{"a":{{"x":[1,2.5],"y":"é"}},"b":1}}}}'
        ).encode()
    )


def test_key_order_and_integral_floats_do_not_change_the_canonical_form(
    spec: dict[str, Any],
) -> None:
    reordered = dict(reversed(list(spec.items())))
    reordered["shots"] = 1000.0  # the API server may hand a number back either way
    assert canonical_job(reordered, NS, NAME, NONCE, NOW) == canonical_job(
        spec, NS, NAME, NONCE, NOW
    )


def test_a_stripped_signature_is_reported_as_unsigned(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    assert _reason(spec, None, _trust(operator_identity)) == UNSIGNED
    assert _reason(spec, "", _trust(operator_identity)) == UNSIGNED


def test_a_v1_spec_only_signature_is_outdated(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    v1 = f"mldsa65:{operator_identity.fingerprint}:AAAA"
    with pytest.raises(SignatureError, match="qorch sign") as raised:
        _verify(spec, v1, _trust(operator_identity))
    assert raised.value.reason == OUTDATED_SIGNATURE


@pytest.mark.parametrize(
    "path",
    [("shots",), ("strategy",), ("fidelityBudget",), ("circuit", "qasm"), ("observables", 0)],
)
def test_changing_one_character_of_the_spec_breaks_the_signature(
    spec: dict[str, Any], operator_identity: Identity, path: tuple[Any, ...]
) -> None:
    signature = _sign(spec, operator_identity)
    parent = spec
    for step in path[:-1]:
        parent = parent[step]
    value = parent[path[-1]]
    if isinstance(value, str):
        parent[path[-1]] = value[:-1] + chr(ord(value[-1]) ^ 1)
    else:
        parent[path[-1]] = value + 1
    assert _reason(spec, signature, _trust(operator_identity)) == INVALID_SIGNATURE


def test_adding_a_field_breaks_the_signature(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    spec["priority"] = 100
    assert _reason(spec, signature, _trust(operator_identity)) == INVALID_SIGNATURE


@pytest.mark.parametrize(
    ("index", "replacement"),
    [
        (3, "team-b/bell"),
        (3, "team-a/other"),
        (4, "f" * 32),
        (5, "20260601T140000Z"),
    ],
    ids=["namespace", "name", "nonce", "expiry"],
)
def test_editing_the_envelope_breaks_the_signature(
    spec: dict[str, Any], operator_identity: Identity, index: int, replacement: str
) -> None:
    parts = _sign(spec, operator_identity).split(":")
    parts[index] = replacement
    edited = ":".join(parts)
    # A relabelled place is caught as a forgery, not mistaken for a wrong place.
    assert _reason(spec, edited, _trust(operator_identity)) == INVALID_SIGNATURE


def test_a_replay_into_another_namespace_is_refused_naming_both(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    with pytest.raises(SignatureError, match="signed for namespace team-a, submitted in team-b"):
        _verify(spec, signature, _trust(operator_identity), namespace="team-b")
    assert _reason(spec, signature, _trust(operator_identity), namespace="team-b") == (
        WRONG_NAMESPACE
    )


def test_a_replay_under_another_name_is_refused_naming_both(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    with pytest.raises(SignatureError, match="signed for the name bell, submitted as bell-2"):
        _verify(spec, signature, _trust(operator_identity), name="bell-2")
    assert _reason(spec, signature, _trust(operator_identity), name="bell-2") == WRONG_NAME


def test_an_expired_signature_is_refused_after_the_skew_allowance(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    assert _verify(spec, signature, _trust(operator_identity), now=NOW + HOUR + skew)
    with pytest.raises(SignatureError, match="expired at 2026-06-01T13:00:00Z") as raised:
        _verify(spec, signature, _trust(operator_identity), now=NOW + HOUR + 2 * skew)
    assert raised.value.reason == EXPIRED


def test_a_signature_valid_for_longer_than_allowed_is_refused(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity, expires_at=NOW + timedelta(days=3650))
    assert _reason(spec, signature, _trust(operator_identity)) == VALIDITY_TOO_LONG
    # The same signature is fine where the bound allows it.
    assert _verify(spec, signature, _trust(operator_identity), max_validity_seconds=3651 * 86400)


def test_a_key_is_trusted_only_within_its_window(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    early = _trust(operator_identity, nb=NOW + HOUR / 2)
    with pytest.raises(SignatureError, match="trusted only from 2026-06-01T12:30:00Z") as raised:
        _verify(spec, signature, early)
    assert raised.value.reason == KEY_OUTSIDE_WINDOW
    retired = _trust(operator_identity, na=NOW - HOUR / 2)
    with pytest.raises(SignatureError, match="retired at 2026-06-01T11:30:00Z") as raised:
        _verify(spec, signature, retired)
    assert raised.value.reason == KEY_OUTSIDE_WINDOW
    inside = _trust(operator_identity, nb=NOW - HOUR, na=NOW + HOUR)
    assert _verify(spec, signature, inside)


def test_rotation_overlap_accepts_old_and_new_then_only_new(
    spec: dict[str, Any], operator_identity: Identity, stranger_identity: Identity
) -> None:
    old, new = operator_identity, stranger_identity
    trusted = [
        TrustedKey(old.public_key, "old", None, NOW + 2 * HOUR),
        TrustedKey(new.public_key, "new", NOW - HOUR, None),
    ]
    by_old, by_new = _sign(spec, old), _sign(spec, new, expires_at=NOW + 4 * HOUR)
    assert _verify(spec, by_old, trusted) and _verify(spec, by_new, trusted)
    later = NOW + 3 * HOUR
    assert _verify(spec, by_new, trusted, now=later)
    old_later = _sign(spec, old, expires_at=NOW + 4 * HOUR)
    assert _reason(spec, old_later, trusted, now=later) == KEY_OUTSIDE_WINDOW


def test_a_key_listed_twice_may_sign_while_either_entry_is_in_its_window(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = _sign(spec, operator_identity)
    retired_cluster_wide = TrustedKey(operator_identity.public_key, "cluster", None, NOW - HOUR)
    current_here = TrustedKey(operator_identity.public_key, "team-a", NOW - HOUR, None)
    assert _verify(spec, signature, [retired_cluster_wide, current_here])
    assert _reason(spec, signature, [retired_cluster_wide]) == KEY_OUTSIDE_WINDOW


def test_a_forged_signature_byte_is_caught(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    parts = _sign(spec, operator_identity).split(":")
    raw = bytearray(base64.b64decode(parts[-1]))
    raw[100] ^= 0x01
    parts[-1] = base64.b64encode(bytes(raw)).decode()
    assert _reason(spec, ":".join(parts), _trust(operator_identity)) == INVALID_SIGNATURE


def test_a_signature_by_an_untrusted_key_names_that_key_and_the_namespace(
    spec: dict[str, Any], operator_identity: Identity, stranger_identity: Identity
) -> None:
    signature = _sign(spec, stranger_identity)
    with pytest.raises(SignatureError, match=stranger_identity.fingerprint) as raised:
        _verify(spec, signature, _trust(operator_identity))
    assert raised.value.reason == UNKNOWN_SIGNER
    assert "in namespace team-a" in str(raised.value)


def test_relabelling_a_signature_with_a_trusted_fingerprint_fails(
    spec: dict[str, Any], operator_identity: Identity, stranger_identity: Identity
) -> None:
    parts = _sign(spec, stranger_identity).split(":")
    parts[2] = operator_identity.fingerprint.split(":")[1]
    assert _reason(spec, ":".join(parts), _trust(operator_identity)) == INVALID_SIGNATURE


@pytest.mark.parametrize(
    "signature",
    [
        "rsa:sha256:" + "0" * 64 + ":ns/n:" + NONCE + ":20260101T000000Z:AAAA",
        "mldsa65-v2:md5:" + "0" * 64 + ":ns/n:" + NONCE + ":20260101T000000Z:AAAA",
        "mldsa65-v2:sha256:xyz:ns/n:" + NONCE + ":20260101T000000Z:AAAA",
        "mldsa65-v2:sha256:" + "0" * 64 + ":ns-n:" + NONCE + ":20260101T000000Z:AAAA",
        "mldsa65-v2:sha256:" + "0" * 64 + ":ns/n:short:20260101T000000Z:AAAA",
        "mldsa65-v2:sha256:" + "0" * 64 + ":ns/n:" + NONCE + ":tomorrow:AAAA",
        "mldsa65-v2:sha256:" + "0" * 64 + ":ns/n:" + NONCE + ":20260101T000000Z:not base64!",
        "mldsa65-v2",
        12345,
    ],
)
def test_malformed_signatures_are_reported_as_such(
    spec: dict[str, Any], operator_identity: Identity, signature: object
) -> None:
    assert _reason(spec, signature, _trust(operator_identity)) == MALFORMED_SIGNATURE


def test_a_spec_that_is_not_plain_json_cannot_be_signed(operator_identity: Identity) -> None:
    with pytest.raises(SignatureError) as raised:
        _sign({"when": object()}, operator_identity)
    assert raised.value.reason == NOT_CANONICAL
    with pytest.raises(SignatureError):
        _sign({"fidelityBudget": float("nan")}, operator_identity)


# --- trusted keys -----------------------------------------------------------------------------


def test_trusted_key_entries_carry_their_windows(
    operator_identity: Identity, stranger_identity: Identity
) -> None:
    entries = {
        "alice.pub": encode_public_key(operator_identity.public_key),
        "alice.notAfter": "2026-07-01T00:00:00Z",
        "bob.pub": encode_public_key(stranger_identity.public_key) + "\n",
        "bob.notBefore": "2026-06-15T00:00:00+02:00",
        "README": "not a key",
    }
    keys, problems = trusted_keys_from_entries(entries, "ConfigMap q/keys")
    assert problems == []
    by_source = {k.source: k for k in keys}
    alice, bob = by_source["ConfigMap q/keys alice.pub"], by_source["ConfigMap q/keys bob.pub"]
    assert alice.public_key == operator_identity.public_key
    assert (alice.not_before, alice.not_after) == (None, datetime(2026, 7, 1, tzinfo=UTC))
    assert bob.not_before == datetime(2026, 6, 14, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"a.pub": "not base64!"}, "a.pub: public key is not valid base64"),
        ({"a.notAfter": "2026-07-01T00:00:00Z"}, "a.pub: missing"),
        ({"a.pub": "KEY", "a.notBefore": "next week"}, "a.notBefore: not an RFC 3339 time"),
        ({"a.pub": "KEY", "a.notAfter": "2026-07-01T00:00:00"}, "a.notAfter: give the time zone"),
        ({"a.pub": "A" * 20000}, "a.pub: larger than"),
    ],
)
def test_unusable_key_entries_are_named_and_the_rest_still_count(
    operator_identity: Identity, entries: dict[str, str], problem: str
) -> None:
    good = encode_public_key(operator_identity.public_key)
    entries = {k: good if v == "KEY" else v for k, v in entries.items()}
    keys, problems = trusted_keys_from_entries({**entries, "ok.pub": good}, "src")
    assert [k.source for k in keys] == ["src ok.pub"]
    assert len(problems) == 1 and problem in problems[0]


def test_a_key_file_takes_its_window_files_beside_it(
    tmp_path: Path, operator_identity: Identity
) -> None:
    _, pub = operator_identity.save(tmp_path / "alice")
    (tmp_path / "alice.notAfter").write_text("2026-07-01T00:00:00Z\n")
    (key,) = load_trusted_keys(pub)
    assert key.not_after == datetime(2026, 7, 1, tzinfo=UTC)
    assert load_trusted_keys(tmp_path)[0].not_after == key.not_after
    with pytest.raises(ValueError, match=r"PREFIX\.pub"):
        load_trusted_keys(tmp_path / "alice.key")


# --- CLI --------------------------------------------------------------------------------------

MANIFEST = """\
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata:
  name: bell
spec:
  circuit:
    qasm: |
      OPENQASM 2.0;
      include "qelib1.inc";
      qreg q[2];
      h q[0];
      cx q[0],q[1];
  shots: 1000
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  key: value
---
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata:
  name: ghz
spec:
  circuit:
    qasm: "OPENQASM 2.0; qreg q[3];"
  shots: 500
"""


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key_path, pub_path = Identity.generate().save(tmp_path / "submitter")
    return key_path, pub_path


@pytest.fixture
def signed_manifest(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> Path:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST)
    assert sign_command(str(manifest), str(keys[0])) == 0
    signed = tmp_path / "jobs.signed.yaml"
    signed.write_text(capsys.readouterr().out)
    return signed


def test_sign_writes_a_signature_into_every_distributed_job(signed_manifest: Path) -> None:
    documents = list(yaml.safe_load_all(signed_manifest.read_text()))
    assert [d["kind"] for d in documents] == ["DistributedJob", "ConfigMap", "DistributedJob"]
    first, second = documents[0]["spec"]["signature"], documents[2]["spec"]["signature"]
    assert first.startswith("mldsa65-v2:sha256:") and ":default/bell:" in first
    assert second.startswith("mldsa65-v2:sha256:") and ":default/ghz:" in second
    assert parse_signature(first).nonce != parse_signature(second).nonce
    assert "namespace" not in documents[0]["metadata"]  # the manifest stays the submitter's
    assert "signature" not in documents[1]["data"]


def test_verify_accepts_a_signed_manifest(
    signed_manifest: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_command(str(signed_manifest), [str(keys[1])]) == 0
    out = capsys.readouterr().out
    assert "DistributedJob/bell: valid in namespace default" in out
    assert "DistributedJob/ghz: valid" in out


def test_verify_refuses_a_manifest_meant_for_another_namespace(
    signed_manifest: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_command(str(signed_manifest), [str(keys[1])], namespace="prod") == 1
    assert f"DistributedJob/bell: invalid ({WRONG_NAMESPACE})" in capsys.readouterr().out


def test_sign_binds_the_namespace_flag_and_the_validity(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST)
    before = datetime.now(UTC).replace(microsecond=0)
    assert sign_command(str(manifest), str(keys[0]), namespace="prod", valid_for_seconds=600) == 0
    signature = yaml.safe_load_all(capsys.readouterr().out).__next__()["spec"]["signature"]
    envelope = parse_signature(signature)
    assert (envelope.namespace, envelope.name) == ("prod", "bell")
    assert before + timedelta(seconds=600) <= envelope.expires_at
    assert envelope.expires_at <= before + timedelta(seconds=602)


@pytest.mark.parametrize(
    ("manifest", "kwargs", "message"),
    [
        (
            MANIFEST.replace("name: bell", "namespace: dev\n  name: bell"),
            {"namespace": "prod"},
            "the manifest says namespace dev, --namespace says prod",
        ),
        (MANIFEST.replace("name: bell", "generateName: bell-"), {}, "needs metadata.name"),
        (MANIFEST, {"valid_for_seconds": 8 * 86400}, "--valid-for must be"),
        (MANIFEST, {"valid_for_seconds": 0}, "--valid-for must be"),
    ],
    ids=["namespace-conflict", "generate-name", "too-long", "zero"],
)
def test_sign_refuses_what_it_cannot_bind(
    tmp_path: Path,
    keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    manifest: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(manifest)
    assert sign_command(str(path), str(keys[0]), **kwargs) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_verify_rejects_a_manifest_edited_after_signing(
    signed_manifest: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed_manifest.write_text(signed_manifest.read_text().replace("shots: 500", "shots: 501"))
    assert verify_command(str(signed_manifest), [str(keys[1])]) == 1
    out = capsys.readouterr().out
    assert "DistributedJob/bell: valid" in out
    assert f"DistributedJob/ghz: invalid ({INVALID_SIGNATURE})" in out


def test_verify_rejects_an_unsigned_manifest(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST)
    assert verify_command(str(manifest), [str(keys[1])]) == 1
    assert f"invalid ({UNSIGNED})" in capsys.readouterr().out


def test_verify_rejects_a_signer_outside_the_trusted_keys(
    signed_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, other_pub = Identity.generate().save(tmp_path / "someone-else")
    assert verify_command(str(signed_manifest), [str(other_pub)]) == 1
    assert f"invalid ({UNKNOWN_SIGNER})" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content", ["kind: ConfigMap\napiVersion: v1\n", "key: [unclosed\n"], ids=["no-job", "bad-yaml"]
)
def test_unusable_manifests_exit_2(
    tmp_path: Path, keys: tuple[Path, Path], content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(content)
    assert sign_command(str(manifest), str(keys[0])) == 2
    assert verify_command(str(manifest), [str(keys[1])]) == 2


def test_missing_files_exit_2(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST)
    assert sign_command(str(tmp_path / "missing.yaml"), str(keys[0])) == 2
    assert sign_command(str(manifest), str(tmp_path / "missing.key")) == 2
    assert verify_command(str(manifest), [str(tmp_path / "missing.pub")]) == 2
    assert verify_command(str(manifest), []) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_sign_never_prints_the_private_key(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(MANIFEST)
    sign_command(str(manifest), str(keys[0]))
    captured = capsys.readouterr()
    private_body = "".join(keys[0].read_text().splitlines()[1:-1])
    assert private_body not in captured.out + captured.err
