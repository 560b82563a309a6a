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

from . import kube
from .agent_workload import PUBLIC_KEY_ANNOTATION, agent_name, identity_secret_name, labels

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
    """Create; False when someone else created it first."""
    try:
        await asyncio.to_thread(
            client.CoreV1Api().create_namespaced_secret, manifest["metadata"]["namespace"], manifest
        )
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


class NamespaceMissing(Exception):
    """The namespace meant for the operator's identity does not exist."""


def _secret(name: str, namespace: str, data: dict[str, bytes], extra_labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": extra_labels},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


async def operator_identity(settings: Settings, ns: str) -> Identity:
    """From the key file when configured, else from its Secret in namespace `ns`, generated
    on first start."""
    if settings.identity_key_file:
        return Identity.load(settings.identity_key_file)
    name = settings.identity_secret
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
        try:
            if await _create_secret(manifest):
                return identity
        except ApiException as exc:
            # A create answers 404 only for its namespace; waiting will not make one.
            if exc.status == 404:
                raise NamespaceMissing(ns) from None
            raise
    raise kopf.TemporaryError("the operator identity Secret keeps changing", delay=5)


async def ensure_node_identity(node: QuantumNode, operator: Identity, owner: kopf.Body) -> bytes:
    """The public key of the node's identity; a new identity when its Deployment has none.

    The Secret (the node's private key, and the operator key it trusts) is owned by the
    QuantumNode and mounted only into the node's agent container. The operator creates it
    and never reads it back: the public key is recorded on the agent Deployment, which the
    caller writes next. A crash in between leaves a Secret no Deployment mounts; it goes
    with the node.
    """
    ns = node.metadata.namespace
    recorded = await kube.deployment_annotation(ns, agent_name(node), PUBLIC_KEY_ANNOTATION)
    if recorded:
        return decode_public_key(recorded)
    identity = Identity.generate()
    name = identity_secret_name(node, identity.public_key)
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
    if not await _create_secret(manifest):
        # The name comes from a key made a moment ago: someone else must have written it.
        raise kopf.TemporaryError(f"Secret {ns}/{name} exists and was not made here", delay=5)
    return identity.public_key
