"""Identities in Secrets: the operator's own, and one per `aer` QuantumNode it runs."""

from __future__ import annotations

import asyncio
import base64

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from qorch.api import QuantumNode
from qorch.channel.identity import Identity, decode_public_key, encode_public_key
from qorch.settings import Settings

from .agent_workload import identity_secret_name, labels

KEY, PUB, OPERATOR_PUB = "identity.key", "identity.pub", "operator.pub"


async def _read_secret(namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        secret = await asyncio.to_thread(client.CoreV1Api().read_namespaced_secret, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


async def _create_secret(manifest: dict) -> bool:
    """Create; False when someone else created it first (then read theirs)."""
    try:
        await asyncio.to_thread(
            client.CoreV1Api().create_namespaced_secret, manifest["metadata"]["namespace"], manifest
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def _secret(name: str, namespace: str, data: dict[str, bytes], extra_labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": extra_labels},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


async def operator_identity(settings: Settings) -> Identity:
    """From the key file when configured, else from its Secret, generated on first start."""
    if settings.identity_key_file:
        return Identity.load(settings.identity_key_file)
    ns, name = settings.operator_namespace, settings.identity_secret
    for _ in range(2):
        data = await _read_secret(ns, name)
        if data is not None:
            return Identity.from_pem(data[KEY])
        identity = Identity.generate()
        manifest = _secret(
            name,
            ns,
            {KEY: identity.private_pem(), PUB: encode_public_key(identity.public_key).encode()},
            {"app.kubernetes.io/name": "qorch", "app.kubernetes.io/component": "identity"},
        )
        if await _create_secret(manifest):
            return identity
    raise kopf.TemporaryError("the operator identity Secret keeps changing", delay=5)


async def ensure_node_identity(node: QuantumNode, operator: Identity, owner: kopf.Body) -> bytes:
    """The node's Secret (its private key, and the operator key it trusts); its public key.

    The Secret is owned by the QuantumNode, mounted only into the node's agent container.
    """
    ns, name = node.metadata.namespace, identity_secret_name(node)
    data = await _read_secret(ns, name)
    if data is None:
        identity = Identity.generate()
        manifest = _secret(
            name,
            ns,
            {
                KEY: identity.private_pem(),
                PUB: encode_public_key(identity.public_key).encode(),
                OPERATOR_PUB: encode_public_key(operator.public_key).encode(),
            },
            labels(node),
        )
        kopf.adopt(manifest, owner=owner)
        if await _create_secret(manifest):
            return identity.public_key
        data = await _read_secret(ns, name)
        assert data is not None
    return decode_public_key(data[PUB])
