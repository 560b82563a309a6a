"""Identities on disk: private keys stay private, public keys fit a Kubernetes spec field."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from qorch import cli
from qorch.channel.identity import (
    Identity,
    decode_public_key,
    encode_public_key,
    fingerprint,
    load_public_key,
)


def test_a_fingerprint_is_sha256_hex_of_the_raw_public_key(operator_identity: Identity) -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", operator_identity.fingerprint)
    assert fingerprint(operator_identity.public_key) == operator_identity.fingerprint


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    identity = Identity.generate()
    key_path, pub_path = identity.save(tmp_path / "node-a")
    assert (key_path.name, pub_path.name) == ("node-a.key", "node-a.pub")
    assert Identity.load(key_path).public_key == identity.public_key
    assert load_public_key(pub_path) == identity.public_key


def test_the_private_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    key_path, _ = Identity.generate().save(tmp_path / "op")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_public_key_file_is_one_base64_line_for_a_spec_field(tmp_path: Path) -> None:
    identity = Identity.generate()
    _, pub_path = identity.save(tmp_path / "op")
    lines = pub_path.read_text().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"[A-Za-z0-9+/]+=*", lines[0])
    assert lines[0] == encode_public_key(identity.public_key)
    assert len(lines[0]) == 2604


def test_existing_key_files_are_never_overwritten(tmp_path: Path) -> None:
    Identity.generate().save(tmp_path / "op")
    with pytest.raises(FileExistsError):
        Identity.generate().save(tmp_path / "op")


@pytest.mark.parametrize(
    "text", ["not base64!", "", "QUJD", "A" * 2604 + "="], ids=["garbage", "empty", "short", "pad"]
)
def test_malformed_public_keys_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        decode_public_key(text)


def test_a_public_key_may_be_wrapped_over_several_lines(operator_identity: Identity) -> None:
    text = encode_public_key(operator_identity.public_key)
    wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    assert decode_public_key(wrapped) == operator_identity.public_key


def test_identity_repr_shows_the_fingerprint_only(operator_identity: Identity) -> None:
    assert repr(operator_identity) == f"Identity(ML-DSA-65, {operator_identity.fingerprint})"


def test_keygen_writes_both_files_and_prints_the_fingerprint_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "operator"
    assert cli.main(["keygen", str(prefix)]) == 0
    out = capsys.readouterr().out
    public_key = load_public_key(f"{prefix}.pub")
    assert fingerprint(public_key) in out
    private_pem = Path(f"{prefix}.key").read_text()
    private_body = "".join(private_pem.splitlines()[1:-1])
    assert private_body not in out
    assert encode_public_key(public_key) not in out


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "operator")
    assert cli.main(["keygen", prefix]) == 0
    before = Path(f"{prefix}.key").read_bytes()
    assert cli.main(["keygen", prefix]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert Path(f"{prefix}.key").read_bytes() == before
