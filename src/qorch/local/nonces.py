"""`qorch run --nonce-record FILE`: used signature nonces kept across runs in a file, so a
signed job run once is refused when run again, as the operator's ConfigMap record does."""

from __future__ import annotations

import asyncio
import fcntl
import os
from datetime import datetime
from pathlib import Path

from qorch.channel.signing import NONCE_RECORD_UNAVAILABLE, SignatureError, now_utc
from qorch.pipeline.nonces import NonceBook


class FileNonces:
    """NonceRecord in a JSON file, locked while read and rewritten (runs may overlap)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """ValueError when the file exists but is not a nonce record: found before any job."""
        self.path = Path(path)
        self._lock = asyncio.Lock()
        if self.path.exists():
            try:
                NonceBook.from_json(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ValueError(f"{self.path}: {exc}") from None

    async def claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        async with self._lock:
            return await asyncio.to_thread(self._claim, nonce, holder, expires_at)

    def _claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        # A signature whose use cannot be recorded admits nothing: its job is refused.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            with os.fdopen(fd, "r+", encoding="utf-8") as stream:
                fcntl.flock(stream, fcntl.LOCK_EX)
                book = NonceBook.from_json(stream.read())
                first = book.claim(nonce, holder, expires_at, now_utc())
                stream.seek(0)
                stream.truncate()
                stream.write(book.to_json())
        except (OSError, ValueError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SignatureError(
                NONCE_RECORD_UNAVAILABLE,
                f"the record of used signatures {self.path} cannot be read and rewritten"
                f" ({problem}): the job's signature could not be recorded as used",
            ) from None
        return first
