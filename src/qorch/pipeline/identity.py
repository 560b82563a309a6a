"""Which public key the pipeline pins for a node: no trust on first use, ever."""

from __future__ import annotations

from qorch.api import QuantumNode
from qorch.channel.identity import decode_public_key


def pinned_key(node: QuantumNode, managed_key: bytes | None) -> bytes | None:
    """The key in the node's spec if set; else, for an `aer` node, the key qorch made for it.

    An external node without `spec.identity.publicKey` has no pinned key: nothing is sent.
    """
    if node.spec.identity.public_key:
        return decode_public_key(node.spec.identity.public_key)
    if node.spec.backend.type == "aer":
        return managed_key
    return None
