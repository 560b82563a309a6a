"""The three kinds of group qorch.dev/v1alpha1; these models are the source of truth."""

from .base import API_VERSION, GROUP, VERSION, Condition, ObjectMeta, get_condition, set_condition
from .distributed_job import (
    TERMINAL_PHASES,
    DistributedJob,
    DistributedJobSpec,
    DistributedJobStatus,
)
from .entanglement_link import EntanglementLink, EntanglementLinkSpec, EntanglementLinkStatus
from .phases import JobPhases, LinkPhases, NodePhases, is_terminal
from .quantum_node import NoiseSpec, QuantumNode, QuantumNodeSpec, QuantumNodeStatus

KINDS = (QuantumNode, EntanglementLink, DistributedJob)
KIND_BY_NAME = {k.crd.kind: k for k in KINDS}

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "KIND_BY_NAME",
    "TERMINAL_PHASES",
    "VERSION",
    "Condition",
    "DistributedJob",
    "DistributedJobSpec",
    "DistributedJobStatus",
    "EntanglementLink",
    "EntanglementLinkSpec",
    "EntanglementLinkStatus",
    "JobPhases",
    "LinkPhases",
    "NodePhases",
    "NoiseSpec",
    "ObjectMeta",
    "QuantumNode",
    "QuantumNodeSpec",
    "QuantumNodeStatus",
    "get_condition",
    "is_terminal",
    "set_condition",
]
