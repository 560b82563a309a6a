"""`qorch keygen` never writes through a symlink or over an existing file, and sets the key
files' modes itself: 0600 private, 0644 public, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from qorch.channel.identity import Identity, load_public_key
from tests.support import REPO


def keygen(prefix: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qorch", "keygen", str(prefix), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        umask=umask,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def assert_key_pair(prefix: Path) -> None:
    key, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    assert stat.S_ISREG(key.lstat().st_mode) and stat.S_ISREG(pub.lstat().st_mode)
    assert (mode(key), mode(pub)) == (0o600, 0o644)
    assert Identity.load(key).public_key == load_public_key(pub)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_modes_do_not_depend_on_the_umask(tmp_path, umask):
    proc = keygen(tmp_path / "alice", umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert_key_pair(tmp_path / "alice")


@pytest.mark.parametrize("suffix", [".pub", ".key"])
def test_a_dangling_symlink_is_refused_and_not_followed(tmp_path, suffix):
    target = tmp_path / "elsewhere" / "planted"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"alice{suffix}").symlink_to(target)
    proc = keygen(tmp_path / "alice")
    assert proc.returncode == 1
    assert f"alice{suffix} exists (a symlink); refusing to overwrite a key" in proc.stderr
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice" + suffix, "elsewhere"]


def test_an_existing_key_is_refused_and_left_alone(tmp_path):
    (tmp_path / "alice.pub").write_text("keep me\n")
    proc = keygen(tmp_path / "alice")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"keygen: {tmp_path / 'alice.pub'} exists; refusing to overwrite a key"
        " (--force replaces it)"
    )
    assert (tmp_path / "alice.pub").read_text() == "keep me\n"
    assert not (tmp_path / "alice.key").exists()  # no half pair


@pytest.mark.parametrize("dangling", [True, False])
def test_force_replaces_a_symlink_without_following_it(tmp_path, dangling):
    target = tmp_path / "target"
    if not dangling:
        target.write_text("not a key\n")
    for suffix in (".key", ".pub"):
        (tmp_path / f"alice{suffix}").symlink_to(target)
    proc = keygen(tmp_path / "alice", "--force", umask=0o077)
    assert proc.returncode == 0, proc.stderr
    assert_key_pair(tmp_path / "alice")
    assert target.exists() is not dangling
    if not dangling:
        assert target.read_text() == "not a key\n"


def test_force_replaces_an_existing_pair(tmp_path):
    assert keygen(tmp_path / "alice").returncode == 0
    before = load_public_key(tmp_path / "alice.pub")
    os.chmod(tmp_path / "alice.pub", 0o666)
    proc = keygen(tmp_path / "alice", "--force")
    assert proc.returncode == 0, proc.stderr
    assert_key_pair(tmp_path / "alice")
    assert load_public_key(tmp_path / "alice.pub") != before


def test_force_refuses_a_folder_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "alice.pub").mkdir()
    proc = keygen(tmp_path / "alice", "--force")
    assert proc.returncode == 1 and "is a directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.pub"]
