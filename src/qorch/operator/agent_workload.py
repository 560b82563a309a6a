"""The Deployment and Service of an `aer` QuantumNode's QPU agent, as pure functions.

The agent's pod has two containers: `qpu-agent`, which holds the node's identity, and the
telemetry sidecar (`qorch telemetry-sidecar`), which shares only an emptyDir with it: the
agent writes its stats and spooled spans there, the sidecar serves and forwards them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from qorch.api import QuantumNode
from qorch.channel.identity import encode_public_key, fingerprint_digest
from qorch.settings import Settings
from qorch.telemetry import METRICS_PORT
from qorch.telemetry.agent import TELEMETRY_DIR_ENV
from qorch.telemetry.sidecar_options import DEFAULT_STATS_DIR, NAMESPACE_ENV

# Restricted Pod Security: what every container of ours runs with.
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def agent_name(node: QuantumNode) -> str:
    return f"qpu-{node.metadata.name}"


def identity_secret_name(node: QuantumNode, public_key: bytes) -> str:
    """Named after the key it holds: the operator never reads node Secrets back, so it never
    has to reuse a name whose content it cannot see."""
    return f"qpu-{node.metadata.name}-identity-{fingerprint_digest(public_key).hex()[:12]}"


IDENTITY_DIR = "/var/run/qorch/identity"
TELEMETRY_VOLUME = "telemetry"
# The physical state of the namespace's simulated links: one ConfigMap, a key
# `<link>.json` per link, created with the link's declared spec and then left to whoever
# makes the link drift (`kubectl edit`). Every agent of the namespace mounts it; the kubelet
# brings changes and new links into running pods (qorch.qpu.link_state).
LINK_STATES_CONFIG_MAP = "qorch-link-states"
LINK_STATES_DIR = "/etc/qorch/links"
# The public key of the node's identity, on its Deployment: where the operator finds it
# again, since it may create Secrets but not read them. Whoever can change a Deployment can
# run a pod that mounts the Secret, so this record is no easier to forge than the Secret.
PUBLIC_KEY_ANNOTATION = "qorch.dev/identity-public-key"


# A QuantumNode labelled with its edge site, and the Node label that site goes by.
SITE_LABEL = "qorch.dev/site"
SITE_TOPOLOGY_LABEL = "topology.kubernetes.io/zone"


def node_site(node: QuantumNode) -> str | None:
    return node.metadata.labels.get(SITE_LABEL) or None


def labels(node: QuantumNode) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "qorch-qpu-agent",
        "app.kubernetes.io/instance": node.metadata.name,
        "app.kubernetes.io/managed-by": "qorch",
        "qorch.dev/node": node.metadata.name,
    }


def agent_endpoint(node: QuantumNode, settings: Settings) -> str:
    if node.spec.backend.type == "external":
        assert node.spec.backend.endpoint is not None
        return node.spec.backend.endpoint
    return f"http://{agent_name(node)}.{node.metadata.namespace}.svc:{settings.agent_port}"


def telemetry_sidecar(node: QuantumNode, settings: Settings) -> dict[str, Any]:
    """The sidecar's container: restricted, and it mounts only the telemetry volume."""
    env: list[dict[str, Any]] = [
        {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "OTEL_SERVICE_NAME", "value": "qorch-qpu-agent"},
    ]
    if settings.telemetry_otlp_endpoint:
        env.append(
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": settings.telemetry_otlp_endpoint}
        )
    return {
        "name": "telemetry",
        "image": settings.telemetry_image,
        "args": [
            "telemetry-sidecar",
            "--node",
            node.metadata.name,
            "--stats-dir",
            DEFAULT_STATS_DIR,
            "--port",
            str(METRICS_PORT),
        ],
        "env": env,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}},
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 30},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": TELEMETRY_VOLUME, "mountPath": DEFAULT_STATS_DIR}],
    }


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def build_deployment(node: QuantumNode, settings: Settings, public_key: bytes) -> dict[str, Any]:
    """One replica of `qorch qpu-agent`, configured with the node's manifest, holding the
    identity whose public key is given."""
    manifest = json.dumps(
        {"metadata": {"name": node.metadata.name}, "spec": node.spec.wire()}, sort_keys=True
    )
    agent = {
        "name": "qpu-agent",
        "image": settings.agent_image,
        "args": ["qpu-agent", "--port", str(settings.agent_port), "--link-dir", LINK_STATES_DIR],
        "env": [
            {"name": "QORCH_NODE_MANIFEST", "value": manifest},
            {"name": "QORCH_IDENTITY_KEY_FILE", "value": f"{IDENTITY_DIR}/identity.key"},
            {"name": "QORCH_TRUSTED_CLIENT_KEY_FILES", "value": f"{IDENTITY_DIR}/operator.pub"},
            {"name": TELEMETRY_DIR_ENV, "value": DEFAULT_STATS_DIR},
        ],
        "ports": [{"name": "agent", "containerPort": settings.agent_port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "agent"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "agent"}, "periodSeconds": 20},
        "resources": settings.agent_resources.model_dump(),
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "identity", "mountPath": IDENTITY_DIR, "readOnly": True},
            {"name": TELEMETRY_VOLUME, "mountPath": DEFAULT_STATS_DIR},
            {"name": "links", "mountPath": LINK_STATES_DIR, "readOnly": True},
        ],
    }
    pod_spec: dict[str, Any] = {
        # The QPU agent runs at the processor's edge site, when the QuantumNode names one.
        **({"nodeSelector": {SITE_TOPOLOGY_LABEL: site}} if (site := node_site(node)) else {}),
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            # The identity Secret's files are root's, mode 0400: the kubelet gives them to
            # this group (and makes them group-readable), so the agent can read its key.
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The sidecar shares only the telemetry volume, never the identity Secret.
        "containers": [agent, telemetry_sidecar(node, settings)],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "identity",
                "secret": {
                    "secretName": identity_secret_name(node, public_key),
                    "defaultMode": 0o400,
                },
            },
            # Small: stats and span batches, which the sidecar deletes once forwarded.
            {"name": TELEMETRY_VOLUME, "emptyDir": {"sizeLimit": "32Mi"}},
            # Optional: the pod starts before the namespace has any link.
            {
                "name": "links",
                "configMap": {"name": LINK_STATES_CONFIG_MAP, "optional": True},
            },
        ],
    }
    spec = {
        "replicas": 1,
        "strategy": {"type": "Recreate"},  # one processor, never two copies of it
        "selector": {"matchLabels": labels(node)},
        "template": {"metadata": {"labels": labels(node)}, "spec": pod_spec},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": agent_name(node),
            "namespace": node.metadata.namespace,
            "labels": labels(node),
            "annotations": {
                "qorch.dev/spec-hash": _hash(spec),
                PUBLIC_KEY_ANNOTATION: encode_public_key(public_key),
            },
        },
        "spec": spec,
    }


def build_service(node: QuantumNode, settings: Settings) -> dict[str, Any]:
    spec = {
        "selector": labels(node),
        "ports": [{"name": "agent", "port": settings.agent_port, "targetPort": "agent"}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": agent_name(node),
            "namespace": node.metadata.namespace,
            "labels": labels(node),
            "annotations": {"qorch.dev/spec-hash": _hash(spec)},
        },
        "spec": spec,
    }
