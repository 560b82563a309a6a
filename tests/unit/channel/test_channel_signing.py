"""Signed DistributedJob specs: any change to a signed spec, or to its signature, is caught."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.channel.identity import Identity
from qorch.channel.signing import (
    INVALID_SIGNATURE,
    MALFORMED_SIGNATURE,
    NOT_CANONICAL,
    UNKNOWN_SIGNER,
    UNSIGNED,
    SignatureError,
    canonical_spec,
    sign_command,
    sign_spec,
    verify_command,
    verify_spec,
)

SPEC: dict[str, Any] = {
    "circuit": {"qasm": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\ncx q[0],q[1];'},
    "shots": 1000,
    "strategy": "auto",
    "fidelityBudget": 0.9,
    "nodeSelector": {"matchLabels": {"site": "lab-a"}},
    "observables": ["ZZ", "XX"],
}


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(SPEC)


def _reason(spec: dict[str, Any], signature: object, trusted: list[bytes]) -> str:
    with pytest.raises(SignatureError) as raised:
        verify_spec(spec, signature, trusted)
    return raised.value.reason


def test_a_signed_spec_verifies_and_names_its_signer(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = sign_spec(spec, operator_identity)
    assert signature.startswith(f"mldsa65:{operator_identity.fingerprint}:")
    signer = verify_spec(spec, signature, [operator_identity.public_key])
    assert signer.fingerprint == operator_identity.fingerprint
    assert signer.public_key == operator_identity.public_key


def test_the_signature_field_itself_is_not_signed(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    spec["signature"] = sign_spec(spec, operator_identity)
    assert verify_spec(spec, spec["signature"], [operator_identity.public_key])


def test_canonical_form_is_sorted_compact_utf8() -> None:
    spec = {"b": 1, "a": {"y": "é", "x": [1.0, 2.5]}, "signature": "ignored"}
    assert canonical_spec(spec) == '{"a":{"x":[1,2.5],"y":"é"},"b":1}'.encode()


def test_key_order_and_integral_floats_do_not_change_the_canonical_form(
    spec: dict[str, Any],
) -> None:
    reordered = dict(reversed(list(spec.items())))
    reordered["shots"] = 1000.0  # the API server may hand a number back either way
    assert canonical_spec(reordered) == canonical_spec(spec)


def test_a_stripped_signature_is_reported_as_unsigned(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    assert _reason(spec, None, [operator_identity.public_key]) == UNSIGNED
    assert _reason(spec, "", [operator_identity.public_key]) == UNSIGNED


@pytest.mark.parametrize(
    "path",
    [("shots",), ("strategy",), ("fidelityBudget",), ("circuit", "qasm"), ("observables", 0)],
)
def test_changing_one_character_of_the_spec_breaks_the_signature(
    spec: dict[str, Any], operator_identity: Identity, path: tuple[Any, ...]
) -> None:
    signature = sign_spec(spec, operator_identity)
    parent = spec
    for step in path[:-1]:
        parent = parent[step]
    value = parent[path[-1]]
    if isinstance(value, str):
        parent[path[-1]] = value[:-1] + chr(ord(value[-1]) ^ 1)
    else:
        parent[path[-1]] = value + 1
    assert _reason(spec, signature, [operator_identity.public_key]) == INVALID_SIGNATURE


def test_adding_a_field_breaks_the_signature(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    signature = sign_spec(spec, operator_identity)
    spec["priority"] = 100
    assert _reason(spec, signature, [operator_identity.public_key]) == INVALID_SIGNATURE


def test_a_forged_signature_byte_is_caught(
    spec: dict[str, Any], operator_identity: Identity
) -> None:
    scheme, algorithm, digest, encoded = sign_spec(spec, operator_identity).split(":")
    raw = bytearray(base64.b64decode(encoded))
    raw[100] ^= 0x01
    forged = ":".join([scheme, algorithm, digest, base64.b64encode(bytes(raw)).decode()])
    assert _reason(spec, forged, [operator_identity.public_key]) == INVALID_SIGNATURE


def test_a_signature_by_an_untrusted_key_names_that_key(
    spec: dict[str, Any], operator_identity: Identity, stranger_identity: Identity
) -> None:
    signature = sign_spec(spec, stranger_identity)
    with pytest.raises(SignatureError, match=stranger_identity.fingerprint) as raised:
        verify_spec(spec, signature, [operator_identity.public_key])
    assert raised.value.reason == UNKNOWN_SIGNER


def test_relabelling_a_signature_with_a_trusted_fingerprint_fails(
    spec: dict[str, Any], operator_identity: Identity, stranger_identity: Identity
) -> None:
    encoded = sign_spec(spec, stranger_identity).split(":")[-1]
    relabelled = f"mldsa65:{operator_identity.fingerprint}:{encoded}"
    assert _reason(spec, relabelled, [operator_identity.public_key]) == INVALID_SIGNATURE


@pytest.mark.parametrize(
    "signature",
    [
        "rsa:sha256:" + "0" * 64 + ":AAAA",
        "mldsa65:md5:" + "0" * 64 + ":AAAA",
        "mldsa65:sha256:xyz:AAAA",
        "mldsa65:sha256:" + "0" * 64 + ":not base64!",
        "mldsa65",
        12345,
    ],
)
def test_malformed_signatures_are_reported_as_such(
    spec: dict[str, Any], operator_identity: Identity, signature: object
) -> None:
    assert _reason(spec, signature, [operator_identity.public_key]) == MALFORMED_SIGNATURE


def test_a_spec_that_is_not_plain_json_cannot_be_signed(operator_identity: Identity) -> None:
    with pytest.raises(SignatureError) as raised:
        sign_spec({"when": object()}, operator_identity)
    assert raised.value.reason == NOT_CANONICAL
    with pytest.raises(SignatureError):
        sign_spec({"fidelityBudget": float("nan")}, operator_identity)


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
    assert documents[0]["spec"]["signature"].startswith("mldsa65:sha256:")
    assert documents[2]["spec"]["signature"].startswith("mldsa65:sha256:")
    assert "signature" not in documents[1]["data"]


def test_verify_accepts_a_signed_manifest(
    signed_manifest: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify_command(str(signed_manifest), [str(keys[1])]) == 0
    out = capsys.readouterr().out
    assert "DistributedJob/bell: valid" in out and "DistributedJob/ghz: valid" in out


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
