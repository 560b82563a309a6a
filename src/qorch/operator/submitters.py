"""Who may submit signed jobs, and which signatures were used: the operator's side.

Trusted keys: cluster-wide ones in QORCH_TRUSTED_SUBMITTERS_DIR (a mounted Secret, so
re-read at each admission: a rotated key takes effect without a restart), and
per-namespace ones in ConfigMaps of the operator's own namespace labelled
`qorch.dev/trusted-submitters-for: <namespace>`. They live beside the operator rather
than in each tenant namespace because whoever may write a namespace's ConfigMaps (its
editors, who also submit jobs) must not be able to trust their own keys; and the
operator then needs to list ConfigMaps in one namespace only, not read them everywhere.

Used nonces: the ConfigMap QORCH_NONCE_RECORD_CONFIG_MAP in the operator's namespace,
written with optimistic concurrency (resourceVersion), so it survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from qorch.channel.signing import TrustedKey, now_utc, trusted_keys_from_entries
from qorch.pipeline.nonces import DEFAULT_MAX_BYTES, NonceBook

from . import kube
from .kube import API_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

TRUSTED_FOR_LABEL = "qorch.dev/trusted-submitters-for"
NONCE_KEY = "nonces.json"
_FOLDER_FILES_READ = 256
_ENTRY_BYTES_READ = 16 * 1024 + 1


def _folder_entries(folder: Path) -> dict[str, bytes]:
    entries = {}
    # Only the first files: a folder is a mounted Secret, not an unbounded input.
    for path in sorted(folder.iterdir())[:_FOLDER_FILES_READ]:
        if path.is_file() and not path.name.startswith("."):
            with path.open("rb") as stream:
                entries[path.name] = stream.read(_ENTRY_BYTES_READ)
    return entries


class OperatorKeys:
    """KeySource over the cluster-wide folder and the per-namespace ConfigMaps."""

    def __init__(self, folder: str | None, operator_namespace: str) -> None:
        self.folder = Path(folder) if folder else None
        self.operator_namespace = operator_namespace

    def _cluster(self) -> list[TrustedKey]:
        if self.folder is None:
            return []
        try:
            entries = _folder_entries(self.folder)
        except OSError as exc:
            log.warning("cannot read trusted submitters in %s: %s", self.folder, exc)
            return []
        keys, problems = trusted_keys_from_entries(entries, f"{self.folder} (cluster-wide)")
        for problem in problems:
            log.warning("trusted submitter key ignored: %s", problem)
        return keys

    async def _namespaced(self, namespace: str) -> list[TrustedKey]:
        maps = await kube.call(
            client.CoreV1Api().list_namespaced_config_map,
            self.operator_namespace,
            label_selector=f"{TRUSTED_FOR_LABEL}={namespace}",
            _request_timeout=API_TIMEOUT_SECONDS,
        )
        keys = []
        for cm in maps.items:
            source = f"ConfigMap {self.operator_namespace}/{cm.metadata.name}"
            found, problems = trusted_keys_from_entries(cm.data or {}, source)
            for problem in problems:
                log.warning("trusted submitter key ignored: %s", problem)
            keys.extend(found)
        return keys

    async def keys_for(self, namespace: str) -> list[TrustedKey]:
        cluster = await kube.call(self._cluster)
        return [*cluster, *await self._namespaced(namespace)]


class ConfigMapNonces:
    """NonceRecord in a ConfigMap; one writer at a time in this process, and a conflicting
    write by another (an operator that took over) is retried on the fresh record."""

    ATTEMPTS = 5

    def __init__(self, namespace: str, name: str, max_entries: int) -> None:
        self.namespace = namespace
        self.name = name
        self.max_entries = max_entries
        self._lock = asyncio.Lock()

    async def claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        async with self._lock:
            for _ in range(self.ATTEMPTS):
                try:
                    return await kube.call(self._claim, nonce, holder, expires_at)
                except ApiException as exc:
                    if exc.status != 409:  # someone else wrote first: read it again
                        raise
            raise RuntimeError(f"ConfigMap {self.namespace}/{self.name} kept changing")

    def _claim(self, nonce: str, holder: str, expires_at: datetime) -> str | None:
        api = client.CoreV1Api()
        try:
            current: Any = api.read_namespaced_config_map(
                self.name, self.namespace, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            current = None
        text = (current.data or {}).get(NONCE_KEY) if current is not None else None
        try:
            book = NonceBook.from_json(text, self.max_entries, DEFAULT_MAX_BYTES)
        except ValueError as exc:
            raise ValueError(
                f"ConfigMap {self.namespace}/{self.name} key {NONCE_KEY}: {exc}; delete it to"
                " start a new record (signatures it held may then be replayed until they expire)"
            ) from None
        first = book.claim(nonce, holder, expires_at, now_utc())
        if first is not None or (text is not None and book.to_json() == text):
            return first
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "qorch"},
        }
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        body["data"] = {NONCE_KEY: book.to_json()}
        if current is None:
            api.create_namespaced_config_map(
                self.namespace, body, _request_timeout=API_TIMEOUT_SECONDS
            )
        else:
            metadata["resourceVersion"] = current.metadata.resource_version
            api.replace_namespaced_config_map(
                self.name, self.namespace, body, _request_timeout=API_TIMEOUT_SECONDS
            )
        return None
