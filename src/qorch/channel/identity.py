"""ML-DSA-65 identities of the operator and of every QPU node.

Files written by `Identity.save(prefix)` (`write_key_pair`), e.g. by `qorch keygen`:

* `PREFIX.key`: the private key as PEM, mode 0600 whatever the umask, never through a
  symlink nor over an existing file (unless forced, then replaced atomically). With the
  default provider it is PKCS#8 in seed form (RFC 9881), which `openssl pkey` (OpenSSL
  >= 3.5) reads.
* `PREFIX.pub`: one line, the standard base64 of the raw 1952-byte FIPS 204
  public key (2604 characters), mode 0644. The same string goes into a QuantumNode's
  `spec.identity.publicKey` and into trusted-key lists.

A file of trusted keys (`load_public_keys`, e.g. the operator keys an agent answers) holds
one such line per key, so that it can hold the current and the next key of a rotation.

A fingerprint is `sha256:` + the hex SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from qorch.api.yamlload import TooLarge, read_at_most
from qorch.channel.provider import CryptoProvider, SignatureScheme, SigningKey, get_provider

FINGERPRINT_PREFIX = "sha256:"
#: Larger than any file of keys qorch reads (an ML-DSA-65 public key is 2.6 KB in base64),
#: so that a path naming a device or a huge file is refused, not read to its end.
MAX_KEY_FILE_BYTES = 1024 * 1024


def fingerprint_digest(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()


def fingerprint(public_key: bytes) -> str:
    """`sha256:<64 hex digits>` of the raw public key."""
    return FINGERPRINT_PREFIX + fingerprint_digest(public_key).hex()


def encode_public_key(public_key: bytes) -> str:
    return base64.b64encode(public_key).decode("ascii")


def decode_public_key(text: str | bytes, scheme: SignatureScheme | None = None) -> bytes:
    """Parse a base64 public key (whitespace ignored) and check that it imports."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    try:
        public_key = base64.b64decode(b"".join(raw.split()), validate=True)
    except binascii.Error:
        raise ValueError("public key is not valid base64") from None
    (scheme or get_provider()).check_public_key(public_key)
    return public_key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A key file's bytes, up to MAX_KEY_FILE_BYTES (ValueError beyond, OSError as is)."""
    try:
        return read_at_most(path, MAX_KEY_FILE_BYTES)
    except TooLarge:
        raise ValueError(f"larger than a key file is ({MAX_KEY_FILE_BYTES} bytes)") from None


def load_public_key(path: str | os.PathLike[str], scheme: SignatureScheme | None = None) -> bytes:
    try:
        return decode_public_key(read_key_file(path), scheme)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_public_keys(
    path: str | os.PathLike[str], scheme: SignatureScheme | None = None
) -> list[bytes]:
    """The keys of a file with one base64 key per line (blank lines and `#` comments
    skipped); a `PREFIX.pub` file is such a file with one line, and a single key wrapped
    over several lines is read as `load_public_key` reads it."""
    try:
        data = read_key_file(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        return [decode_public_key(data, scheme)]
    except ValueError:
        pass
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a file of base64 public keys") from None
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(decode_public_key(line, scheme))
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}: {exc}") from None
    if not keys:
        raise ValueError(f"{path}: holds no public key")
    return keys


class Identity:
    """A signing key pair: who this operator or node is on the channel."""

    def __init__(self, signing_key: SigningKey) -> None:
        self._signing_key = signing_key
        self.public_key: bytes = signing_key.public_bytes()
        self.fingerprint: str = fingerprint(self.public_key)

    @classmethod
    def generate(cls, provider: CryptoProvider | None = None) -> Identity:
        return cls((provider or get_provider()).generate_signing_key())

    @classmethod
    def load(
        cls, key_path: str | os.PathLike[str], provider: CryptoProvider | None = None
    ) -> Identity:
        """Load `PREFIX.key` (the PEM private key)."""
        return cls.from_pem(read_key_file(key_path), provider)

    @classmethod
    def from_pem(cls, pem: bytes, provider: CryptoProvider | None = None) -> Identity:
        """The identity of a PEM private key, e.g. from a Kubernetes Secret."""
        return cls((provider or get_provider()).load_signing_key(pem))

    def private_pem(self) -> bytes:
        """The PEM private key, for a Kubernetes Secret; never log it."""
        return self._signing_key.private_pem()

    @property
    def algorithm(self) -> str:
        return self._signing_key.algorithm

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self._signing_key.sign(message, context)

    def save(self, prefix: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, Path]:
        """Write `PREFIX.key` and `PREFIX.pub`, as `write_key_pair` does."""
        return write_key_pair(self, prefix, force=force)

    def __repr__(self) -> str:
        return f"Identity({self.algorithm}, {self.fingerprint})"


# --- key files --------------------------------------------------------------------------------

PRIVATE_KEY_MODE = 0o600
PUBLIC_KEY_MODE = 0o644
# Never through a symlink, and never onto a file that is already there.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class KeyFileExists(FileExistsError):
    pass


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` holding `data` with exactly `mode` (umask notwithstanding)."""
    fd = os.open(path, _CREATE, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Put `data` at `path` atomically: written beside it under a fresh name, then renamed
    over it, so a symlink there is replaced, never followed, and a reader sees old or new."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_new(temporary, data, mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_key_pair(
    identity: Identity, prefix: str | os.PathLike[str], *, force: bool = False
) -> tuple[Path, Path]:
    """Write `PREFIX.key` (mode 0600) and `PREFIX.pub` (0644), whatever the umask.

    Without `force`, an existing path (a dangling symlink included) is refused before either
    file is written. With `force`, each file is replaced atomically (see `_replace`)."""
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    files = (
        (key_path, identity.private_pem(), PRIVATE_KEY_MODE),
        (pub_path, (encode_public_key(identity.public_key) + "\n").encode(), PUBLIC_KEY_MODE),
    )
    if force:
        for path, _, _ in files:  # checked before either is replaced: no half pair
            if path.is_dir() and not path.is_symlink():
                raise IsADirectoryError(f"{path} is a directory; refusing to replace it")
        for path, data, mode in files:
            _replace(path, data, mode)
        return key_path, pub_path
    for path, _, _ in files:
        if os.path.lexists(path):
            what = " (a symlink)" if path.is_symlink() else ""
            raise KeyFileExists(
                f"{path} exists{what}; refusing to overwrite a key (--force replaces it)"
            )
    written: list[Path] = []
    try:
        for path, data, mode in files:
            try:
                _write_new(path, data, mode)
            except FileExistsError:  # created since the check above
                raise KeyFileExists(
                    f"{path} exists; refusing to overwrite a key (--force replaces it)"
                ) from None
            written.append(path)
    except BaseException:
        for path in written:  # no half pair left behind
            path.unlink(missing_ok=True)
        raise
    return key_path, pub_path
