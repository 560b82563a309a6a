"""ML-DSA-65 identities of the operator and of every QPU node.

Files written by `Identity.save(prefix)` / `keygen_command(prefix)`:

* `PREFIX.key`: the private key as PEM, mode 0600. With the default provider it
  is PKCS#8 in seed form (RFC 9881), which `openssl pkey` (OpenSSL >= 3.5) reads.
* `PREFIX.pub`: one line, the standard base64 of the raw 1952-byte FIPS 204
  public key (2604 characters). The same string goes into a QuantumNode's
  `spec.identity.publicKey` and into trusted-key lists.

A fingerprint is `sha256:` + the hex SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from pathlib import Path

from qorch.channel.errors import ProviderUnavailable
from qorch.channel.provider import CryptoProvider, SignatureScheme, SigningKey, get_provider

FINGERPRINT_PREFIX = "sha256:"


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


def load_public_key(path: str | os.PathLike[str], scheme: SignatureScheme | None = None) -> bytes:
    try:
        return decode_public_key(Path(path).read_bytes(), scheme)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


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
        return cls.from_pem(Path(key_path).read_bytes(), provider)

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

    def save(self, prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write `PREFIX.key` (0600) and `PREFIX.pub`; refuse to overwrite either."""
        key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
        for path in (key_path, pub_path):
            if path.exists():
                raise FileExistsError(f"{path} exists; refusing to overwrite a key")
        _write_private(key_path, self.private_pem())
        pub_path.write_text(encode_public_key(self.public_key) + "\n")
        return key_path, pub_path

    def __repr__(self) -> str:
        return f"Identity({self.algorithm}, {self.fingerprint})"


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never follow a planted symlink or reuse a file with looser permissions.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def keygen_command(out_prefix: str) -> int:
    """CLI: generate an identity, write PREFIX.key and PREFIX.pub, print the fingerprint."""
    try:
        identity = Identity.generate()
        key_path, pub_path = identity.save(out_prefix)
    except (OSError, ValueError, ProviderUnavailable) as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    print(f"private key: {key_path} (mode 0600, keep it secret)")
    print(f"public key:  {pub_path}")
    print(f"fingerprint: {identity.fingerprint}")
    return 0
