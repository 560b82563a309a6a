"""The agent's keys follow their files: a new node key or trusted operator set is taken up
before the next handshake, a broken file is ignored and the keys in use stay."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from qorch.channel import ChannelServer
from qorch.channel.identity import Identity, encode_public_key, load_public_keys
from qorch.qpu.agent_keys import AgentKeys


async def _nothing(op: str, payload: dict) -> dict:
    return {}


def _touch_later(path: Path) -> None:
    """Move the file's mtime on, so a rewrite within one clock tick still shows."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Identity, Identity, AgentKeys, ChannelServer]:
    node, operator = Identity.generate(), Identity.generate()
    node.save(tmp_path / "node")
    operator.save(tmp_path / "operator")
    keys = AgentKeys.load(tmp_path / "node.key", [tmp_path / "operator.pub"])
    server = ChannelServer(keys.identity, keys.trusted, _nothing, refresh_keys=keys.refresh)
    keys.attach(server)
    return node, operator, keys, server


def test_a_replaced_key_file_rekeys_the_server(
    tmp_path: Path, files: tuple[Identity, Identity, AgentKeys, ChannelServer]
) -> None:
    node, _, keys, server = files
    keys.refresh()
    assert server.identity.public_key == node.public_key
    following = Identity.generate()
    following.save(tmp_path / "node", force=True)  # atomic, as a kubelet swaps a Secret
    keys.refresh()
    assert server.identity.public_key == following.public_key == keys.identity.public_key


def test_a_broken_key_file_is_ignored_and_the_key_kept(
    tmp_path: Path,
    files: tuple[Identity, Identity, AgentKeys, ChannelServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    node, _, keys, server = files
    key_file = tmp_path / "node.key"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    _touch_later(key_file)
    with caplog.at_level(logging.WARNING, "qorch.qpu.agent_keys"):
        keys.refresh()
    assert server.identity.public_key == node.public_key
    assert "ignored" in caplog.text and "not a key" not in caplog.text
    key_file.unlink()
    keys.refresh()  # gone: still the key in memory
    assert server.identity.public_key == node.public_key


def test_the_trusted_file_may_hold_the_current_and_the_next_operator_key(
    tmp_path: Path, files: tuple[Identity, Identity, AgentKeys, ChannelServer]
) -> None:
    _, operator, keys, _ = files
    following = Identity.generate()
    trusted_file = tmp_path / "operator.pub"
    trusted_file.write_text(
        f"# current\n{encode_public_key(operator.public_key)}\n\n"
        f"# next\n{encode_public_key(following.public_key)}\n"
    )
    _touch_later(trusted_file)
    keys.refresh()
    assert keys.trusted == [operator.public_key, following.public_key]
    trusted_file.write_text("garbage\n")
    _touch_later(trusted_file)
    keys.refresh()  # a broken file: the trusted set stays
    assert keys.trusted == [operator.public_key, following.public_key]


def test_a_trust_file_names_the_line_at_fault(tmp_path: Path) -> None:
    path = tmp_path / "trusted.pub"
    path.write_text(encode_public_key(Identity.generate().public_key) + "\n!!!\n")
    with pytest.raises(ValueError, match=r"line 2: public key is not valid base64"):
        load_public_keys(path)
    path.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="holds no public key"):
        load_public_keys(path)
