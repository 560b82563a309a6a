"""Identities in Secrets: the operator's own, and one per `aer` QuantumNode it runs.

The operator's key rotates in three steps (docs/rotating-keys.md): its next public key is
published (`next.pub` in its Secret, or QORCH_NEXT_IDENTITY_PUBLIC_KEY_FILE) and agents
trust it beside the current one; the operator restarts with the next key as its own; the
old key is removed from the agents' trusted files.
"""

from __future__ import annotations

import base64

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from qorch.api import QuantumNode
from qorch.channel.identity import (
    Identity,
    decode_public_key,
    encode_public_key,
    load_public_keys,
)
from qorch.settings import Settings

from . import kube
from .agent_workload import PUBLIC_KEY_ANNOTATION, agent_name, identity_secret_name, labels

KEY, PUB, OPERATOR_PUB = "identity.key", "identity.pub", "operator.pub"
NEXT_PUB = "next.pub"  # in the operator's Secret while its key rotates


class OperatorKeys:
    """The operator's identity, and every operator key its agents should trust now: its
    own, and its next one while it rotates."""

    def __init__(self, identity: Identity, following: list[bytes] | None = None) -> None:
        self.identity = identity
        keys = [identity.public_key, *(following or [])]
        self.trusted = list(dict.fromkeys(keys))

    def trusted_file(self) -> bytes:
        """The agents' trusted-key file: one base64 key per line."""
        return "".join(encode_public_key(key) + "\n" for key in self.trusted).encode()


async def _read_secret(namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        secret = await kube.call(client.CoreV1Api().read_namespaced_secret, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


async def _create_secret(manifest: dict) -> bool:
    """Create; False when someone else created it first."""
    try:
        await kube.call(
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


def _next_keys(text: bytes | None, where: str) -> list[bytes]:
    if not text or not text.strip():
        return []
    try:
        return [decode_public_key(line) for line in text.decode("ascii").split()]
    except (UnicodeDecodeError, ValueError) as exc:
        raise kopf.PermanentError(f"{where}: not base64 ML-DSA-65 public keys ({exc})") from None


async def operator_identity(settings: Settings, ns: str) -> OperatorKeys:
    """From the key file when configured, else from its Secret in namespace `ns`, generated
    on first start; with the next key of a rotation, if one is published."""
    if settings.identity_key_file:
        identity = Identity.load(settings.identity_key_file)
        next_file = settings.next_identity_public_key_file
        return OperatorKeys(identity, load_public_keys(next_file) if next_file else [])
    name = settings.identity_secret
    for _ in range(2):
        data = await _read_secret(ns, name)
        if data is not None:
            published = _next_keys(data.get(NEXT_PUB), f"Secret {ns}/{name} key {NEXT_PUB}")
            return OperatorKeys(Identity.from_pem(data[KEY]), published)
        identity = Identity.generate()
        manifest = _secret(
            name,
            ns,
            {KEY: identity.private_pem(), PUB: encode_public_key(identity.public_key).encode()},
            {"app.kubernetes.io/name": "qorch", "app.kubernetes.io/component": "identity"},
        )
        try:
            if await _create_secret(manifest):
                return OperatorKeys(identity)
        except ApiException as exc:
            # A create answers 404 only for its namespace; waiting will not make one.
            if exc.status == 404:
                raise NamespaceMissing(ns) from None
            raise
    raise kopf.TemporaryError("the operator identity Secret keeps changing", delay=5)


async def ensure_node_identity(
    node: QuantumNode, operator: OperatorKeys, owner: kopf.Body
) -> bytes:
    """The public key of the node's identity; a new identity when its Deployment has none.

    The Secret (the node's private key, and the operator keys it trusts, one per line) is
    owned by the QuantumNode and mounted only into the node's agent container, which
    follows changes to it. The operator creates it and never reads it back: the public key
    is recorded on the agent Deployment, which the caller writes next. A crash in between
    leaves a Secret no Deployment mounts; it goes with the node.
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
            OPERATOR_PUB: operator.trusted_file(),
        },
        labels(node),
    )
    kopf.adopt(manifest, owner=owner)
    if not await _create_secret(manifest):
        # The name comes from a key made a moment ago: someone else must have written it.
        raise kopf.TemporaryError(f"Secret {ns}/{name} exists and was not made here", delay=5)
    return identity.public_key
