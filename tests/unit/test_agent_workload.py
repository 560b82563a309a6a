"""The agent workload the operator writes, and where it keeps its own identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from qorch.channel.identity import Identity, decode_public_key
from qorch.operator import kube
from qorch.operator.agent_workload import (
    PUBLIC_KEY_ANNOTATION,
    build_deployment,
    identity_secret_name,
    telemetry_sidecar,
)
from qorch.settings import Settings
from tests.support import make_node


def secret_volume(deployment: dict) -> str:
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    return str(volume["secret"]["secretName"])


def test_the_deployment_mounts_the_secret_named_after_its_key_and_records_the_key() -> None:
    node = make_node("sim", 5)
    first, second = Identity.generate().public_key, Identity.generate().public_key
    deployment = build_deployment(node, Settings(), first)
    assert secret_volume(deployment) == identity_secret_name(node, first)
    assert identity_secret_name(node, first).startswith("qpu-sim-identity-")
    recorded = deployment["metadata"]["annotations"][PUBLIC_KEY_ANNOTATION]
    assert decode_public_key(recorded) == first
    # A new identity is a new Secret and a new pod template: the agent restarts with it.
    other = build_deployment(node, Settings(), second)
    assert secret_volume(other) != secret_volume(deployment)
    hash_key = "qorch.dev/spec-hash"
    assert (
        other["metadata"]["annotations"][hash_key]
        != deployment["metadata"]["annotations"][hash_key]
    )


@pytest.mark.parametrize(
    ("resources", "complaint"),
    [
        ('{"limits": {"memory": "lots"}}', "String should match pattern"),
        ('{"limits": {"memory": "256Mi"}}', "the memory request 512Mi is above its limit 256Mi"),
        ('{"limits": {"gpu": "1"}}', "limits.gpu"),
        ('{"limit": {"memory": "2Gi"}}', "Extra inputs are not permitted"),
        ("2Gi", "not JSON"),
        ("null", "valid dictionary"),
    ],
)
def test_agent_resources_a_deployment_could_not_take_are_refused_at_start(
    resources: str, complaint: str
) -> None:
    with pytest.raises(ValidationError, match="agent_resources") as info:
        Settings.from_env({"QORCH_AGENT_RESOURCES": resources})
    assert complaint in str(info.value)


def test_the_otlp_endpoint_reaches_the_telemetry_sidecar_only_when_set() -> None:
    def sidecar_env(settings: Settings) -> dict[str, str]:
        key = Identity.generate().public_key
        pod = build_deployment(make_node("sim", 5), settings, key)["spec"]["template"]["spec"]
        (sidecar,) = [c for c in pod["containers"] if c["name"] == "telemetry"]
        return {e["name"]: e.get("value", "") for e in sidecar["env"]}

    endpoint = "http://otel-collector.monitoring:4318"
    env = sidecar_env(Settings(telemetry_otlp_endpoint=endpoint))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in sidecar_env(Settings())


def test_the_sidecar_is_restricted_and_sees_only_the_telemetry_volume() -> None:
    settings = Settings(telemetry_otlp_endpoint="http://otel:4318")
    pod = build_deployment(make_node("qpu-a", 4), settings, Identity.generate().public_key)
    c = telemetry_sidecar(make_node("qpu-a", 4), settings)
    assert c in pod["spec"]["template"]["spec"]["containers"]
    assert c["args"][:3] == ["telemetry-sidecar", "--node", "qpu-a"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9090}]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert [m["name"] for m in c["volumeMounts"]] == ["telemetry"]
    env = {e["name"]: e for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel:4318"
    assert env["QORCH_NODE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_the_agent_shares_its_stats_with_the_sidecar_but_never_its_identity() -> None:
    deployment = build_deployment(make_node("qpu-a", 4), Settings(), Identity.generate().public_key)
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"qpu-agent", "telemetry"}
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    sidecar_mounts = {m["name"] for m in containers["telemetry"]["volumeMounts"]}
    assert secret_volumes and not secret_volumes & sidecar_mounts
    assert "envFrom" not in containers["telemetry"]
    assert all("secretKeyRef" not in json.dumps(e) for e in containers["telemetry"]["env"])
    agent = containers["qpu-agent"]
    assert {"name": "telemetry", "mountPath": "/var/run/qorch/telemetry"} in agent["volumeMounts"]
    assert {"name": "QORCH_TELEMETRY_DIR", "value": "/var/run/qorch/telemetry"} in agent["env"]
    assert pod["volumes"].count({"name": "telemetry", "emptyDir": {"sizeLimit": "32Mi"}}) == 1


def kubeconfig(path: Path, namespace: str | None) -> Path:
    context: dict = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": context}],
        "current-context": "dev",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_own_namespace_is_the_setting_then_the_pod_then_the_kubeconfig_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", "quantum")))
    assert kube.own_namespace("qorch-system", False) == (
        "qorch-system",
        "from QORCH_OPERATOR_NAMESPACE",
    )
    assert kube.own_namespace(None, False) == ("quantum", 'from kubeconfig context "dev"')
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "bare", None)))
    assert kube.own_namespace(None, False)[0] == "default"  # as kubectl chooses
    mounted = tmp_path / "namespace"
    mounted.write_text("qorch-prod")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_NAMESPACE", mounted)
    assert kube.own_namespace(None, True) == ("qorch-prod", "from the pod")


def test_settings_leave_the_namespace_to_the_operator_unless_set() -> None:
    assert Settings.from_env({}).operator_namespace is None
    env = {"QORCH_OPERATOR_NAMESPACE": "ops"}
    assert Settings.from_env(env).operator_namespace == "ops"


def test_the_agent_pod_goes_to_its_site_when_the_node_names_one() -> None:
    key = Identity.generate().public_key
    node = make_node("qpu-a", 5)
    node.metadata.labels["qorch.dev/site"] = "site-a"
    pod = build_deployment(node, Settings(), key)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"topology.kubernetes.io/zone": "site-a"}
    anywhere = build_deployment(make_node("qpu-b", 5), Settings(), key)
    assert "nodeSelector" not in anywhere["spec"]["template"]["spec"]


def test_the_identity_secret_is_readable_by_the_agents_group_only() -> None:
    """Secret files are root's: fsGroup hands them to the agent's group, mode 0400 + group
    read, which is all a non-root agent needs to read its key."""
    deployment = build_deployment(make_node("sim", 5), Settings(), Identity.generate().public_key)
    pod = deployment["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    assert ctx["runAsUser"] == ctx["runAsGroup"] == ctx["fsGroup"] == 10001
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["defaultMode"] == 0o400
