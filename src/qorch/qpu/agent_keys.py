"""The agent's identity and the operator keys it trusts, followed in their files.

A node's key rotates without a restart: replace its key file (`qorch keygen --force`
replaces it atomically, as a kubelet updates a mounted Secret) and the agent answers the
next call or handshake with the new key. Its sessions opened with the old key are
forgotten, so the operator meets the new key at once (its next call re-handshakes);
programs in flight are the agent's, not a session's, and carry on. The trusted operator
keys follow their files the same way, which is how the operator's own key rotates
(current and next key in the file during the swap, then the old one removed).

Files are looked at before each handshake and each call: a `stat` when nothing changed. A file that
cannot be read or holds no valid key is ignored with one warning; the keys in use stay.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from qorch.channel.http import ChannelServer
from qorch.channel.identity import Identity, fingerprint, load_public_keys

log = logging.getLogger(__name__)

FileState = tuple[int, int, int] | None


def _state(path: Path) -> FileState:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _load_trusted(paths: list[Path]) -> list[bytes]:
    keys: dict[bytes, None] = {}
    for path in paths:
        keys.update(dict.fromkeys(load_public_keys(path)))
    return list(keys)


@dataclass
class AgentKeys:
    """Where the agent's keys come from, and the keys read from there last."""

    identity_file: Path | None  # None: a key unsealed by the TPM, rotated by re-enrolment
    trusted_files: list[Path]
    identity: Identity
    trusted: list[bytes]
    _seen: dict[Path, FileState] = field(default_factory=dict)
    _server: ChannelServer | None = None

    @classmethod
    def load(cls, identity_file: str | Path, trusted_files: list[str] | list[Path]) -> AgentKeys:
        """Read both now; raises OSError or ValueError naming the file at fault."""
        identity_path, trusted_paths = Path(identity_file), [Path(p) for p in trusted_files]
        if not trusted_paths:
            raise ValueError("no trusted operator key: the agent would answer nobody")
        seen = {path: _state(path) for path in (identity_path, *trusted_paths)}
        identity = Identity.load(identity_path)
        return cls(identity_path, trusted_paths, identity, _load_trusted(trusted_paths), seen)

    @classmethod
    def unsealed(cls, identity: Identity, trusted_files: list[str] | list[Path]) -> AgentKeys:
        """A TPM-held identity (no key file to follow) and the trusted keys' files."""
        trusted_paths = [Path(p) for p in trusted_files]
        if not trusted_paths:
            raise ValueError("no trusted operator key: the agent would answer nobody")
        seen = {path: _state(path) for path in trusted_paths}
        return cls(None, trusted_paths, identity, _load_trusted(trusted_paths), seen)

    def _files(self) -> list[Path]:
        return [*([self.identity_file] if self.identity_file else []), *self.trusted_files]

    def attach(self, server: ChannelServer) -> None:
        """The server whose keys follow the files (it calls `refresh` before each hello
        and each call)."""
        self._server = server

    def refresh(self) -> None:
        """Take up the files' keys if a file changed since the last look."""
        states = {path: _state(path) for path in self._files()}
        if states == self._seen:
            return
        changed = {path for path, state in states.items() if self._seen.get(path) != state}
        self._seen = states
        if self.identity_file is not None and self.identity_file in changed:
            self._reload_identity()
        if changed & set(self.trusted_files):
            self._reload_trusted()

    def _reload_identity(self) -> None:
        assert self.identity_file is not None
        try:
            identity = Identity.load(self.identity_file)
        except (OSError, ValueError) as exc:
            # The type only: a key parser's message could quote the file.
            why = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
            log.warning("identity key %s ignored (%s); key kept", self.identity_file, why)
            return
        if identity.public_key == self.identity.public_key:
            return
        previous, self.identity = self.identity.fingerprint, identity
        if self._server is not None:
            self._server.rekey(identity)
        log.info(
            "identity key %s reloaded: %s -> %s",
            self.identity_file,
            previous,
            identity.fingerprint,
        )

    def _reload_trusted(self) -> None:
        try:
            trusted = _load_trusted(self.trusted_files)
        except (OSError, ValueError) as exc:
            log.warning("trusted operator keys ignored (%s); keys kept", exc)
            return
        if trusted == self.trusted:
            return
        self.trusted = trusted
        if self._server is not None:
            self._server.trust(trusted)
        log.info(
            "trusted operator keys reloaded: %s", ", ".join(fingerprint(key) for key in trusted)
        )
