"""The Helm chart as rendered by `helm lint` / `helm template`: no cluster needed.

Hardened by default (restricted Pod Security in every pod and container), least-privilege
RBAC without wildcards, values checked by values.schema.json, CRDs identical to crds/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.channel.identity import Identity, decode_public_key, encode_public_key
from qorch.channel.signing import trusted_keys_from_entries
from qorch.operator.agent_workload import build_deployment
from qorch.sanitizer import load_policy
from qorch.settings import Settings
from tests.e2e.chart_support import (
    CHART,
    HELM,
    by_kind,
    containers,
    helm,
    one,
    pod_specs,
    rbac_rules,
    render,
    set_args,
)
from tests.support import REPO, make_node

pytestmark = pytest.mark.skipif(not HELM.exists(), reason="helm is built by `make tools`")

SUBMITTER_KEY = encode_public_key(Identity.generate().public_key)
MON = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}

# Value sets every structural test runs against: the defaults and each mode of the chart.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watched-namespaces": {"watch": {"namespaces": ["quantum-a", "quantum-b"]}},
    "cluster-wide": {"watch": {"clusterWide": True}},
    "everything-on": {
        "watch": {"namespaces": ["quantum-a"]},
        "peering": {"enabled": True},
        "priorityClasses": {"urgent": {"value": 1000, "preemptionPolicy": "PreemptLowerPriority"}},
        "sanitizerPolicy": {"default": {"maxQubits": 64}, "namespaces": {"quantum-a": {}}},
        "trustedSubmitters": {"keys": {"alice": SUBMITTER_KEY}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "monitoring"}},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "operator": {"extraEnv": [{"name": "QORCH_CAPACITY_RETRY_SECONDS", "value": "1"}]},
        "telemetry": {"otlp": {"endpoint": "http://otel-collector.monitoring:4318", "to": [MON]}},
        "networkPolicy": {
            "apiServer": {"cidrs": ["10.0.0.1/32", "172.18.0.2/32"]},
            "operatorExtraEgress": [
                {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 8443}]}
            ],
        },
    },
    "cluster-wide-peering": {"watch": {"clusterWide": True}, "peering": {"enabled": True}},
}


@pytest.fixture(scope="module", params=list(VALUE_SETS), ids=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(VALUE_SETS[request.param])


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# -- lint and schema ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_is_clean(name: str) -> None:
    out = helm("lint", "--strict", str(CHART), *set_args(VALUE_SETS[name]))
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": 0}, "/replicas"),
        ({"priorityClasses": {"urgent": {"value": 1, "preemptionPolicy": "Always"}}}, "urgent"),
        ({"priorityClasses": {"urgent": {"value": 2**31}}}, "/priorityClasses/urgent/value"),
        ({"leaderElection": {"leaseDurationSeconds": 1}}, "/leaderElection/leaseDurationSeconds"),
        ({"watch": {"namespaces": ["Not_A_Namespace"]}}, "/watch/namespaces/0"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"agent": {"port": 70000}}, "/agent/port"),
        ({"agent": {"resources": {"limits": {"memory": "lots"}}}}, "/agent/resources/limits"),
        ({"operator": {"logLevel": "LOUD"}}, "/operator/logLevel"),
        ({"trustedSubmitters": {"keys": {"alice": "not a key!"}}}, "/trustedSubmitters/keys/alice"),
        ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
        ({"rbac": {"create": "yes"}}, "/rbac/create"),
        ({"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}, "/networkPolicy/apiServer"),
        ({"networkPolicy": {"dns": {"to": [{"pods": {}}]}}}, "/networkPolicy/dns/to/0"),
        ({"telemetry": {"otlp": {"endpoint": "otel:4318"}}}, "/telemetry/otlp/endpoint"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(yaml.safe_dump(values))
    for command in ("lint", "template"):
        args = [command, *(["qorch"] if command == "template" else []), str(CHART)]
        proc = helm(*args, "--values", str(bad), check=False)
        assert proc.returncode != 0, f"helm {command} accepted {values}"
        assert complaint in proc.stdout + proc.stderr


def test_cluster_wide_and_a_namespace_list_exclude_each_other() -> None:
    proc = helm(
        "template",
        "qorch",
        str(CHART),
        *set_args({"watch": {"clusterWide": True, "namespaces": ["a"]}}),
        check=False,
    )
    assert proc.returncode != 0
    assert "exclude each other" in proc.stderr


# -- CRDs ----------------------------------------------------------------------------------


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    ours = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty"
    assert set(ours) == set(generated), "charts/qorch/crds/ and crds/ hold different files"
    drifted = sorted(name for name in generated if ours[name] != generated[name])
    assert not drifted, f"charts/qorch/crds/ drifted from crds/: {drifted} (copy crds/*.yaml)"


# -- restricted Pod Security -----------------------------------------------------------------


def test_every_pod_and_container_runs_restricted(rendered: list[dict[str, Any]]) -> None:
    specs = list(pod_specs(rendered))
    assert specs, "no workload rendered"
    for where, pod in specs:
        pod_sc = pod.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), f"{where}: {flag}"
        for volume in pod.get("volumes", []):
            assert "hostPath" not in volume, f"{where}: hostPath volume {volume['name']}"
        mounts_tmp = False
        for container in containers(pod):
            name = f"{where}/{container['name']}"
            sc = container.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, name
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", name
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), name
            assert not sc.get("capabilities", {}).get("add"), name
            assert not sc.get("privileged"), name
            assert container.get("resources", {}).get("requests"), f"{name}: no requests"
            assert container["resources"].get("limits", {}).get("memory"), f"{name}: no limit"
            mounts_tmp |= any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", []))
        assert mounts_tmp, f"{where}: no writable /tmp on a read-only root filesystem"


def test_operator_is_two_replicas_electing_a_leader_with_kopf_liveness(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    container = operator_container(rendered)
    assert "--leader-election" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    liveness = [a for a in container["args"] if a.startswith("--liveness=")]
    assert liveness == [f"--liveness=http://0.0.0.0:{ports['liveness']}/healthz"]
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert ports["metrics"] == 9090
    env = env_of(container)
    assert env["QORCH_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["QORCH_IDENTITY_SECRET"] == "qorch-identity"
    assert env["QORCH_AGENT_IMAGE"] == container["image"] == "ghcr.io/qorch/qorch:0.1.0"


def test_leader_election_gets_its_lease_only_and_a_disruption_budget() -> None:
    docs = render()
    env = env_of(operator_container(docs))
    assert env["QORCH_LEADER_ELECTION_LEASE"] == "qorch-leader"
    assert (env["QORCH_LEASE_DURATION_SECONDS"], env["QORCH_LEASE_RENEW_DEADLINE_SECONDS"]) == (
        "15",
        "10",
    )
    leases = [(w, r) for w, r in rbac_rules(docs) if "leases" in r["resources"]]
    assert leases == [
        (
            "Role/qorch-system/qorch-leader",
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["qorch-leader"],
                "verbs": ["get", "update"],
            },
        ),
        (
            "Role/qorch-system/qorch-leader",
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ),
    ]
    pdb = one(docs, "PodDisruptionBudget")
    pod = one(docs, "Deployment")["spec"]["template"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    anti = pod["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
    # One replica: no budget (it would block every drain), no anti-affinity.
    single = render({"replicas": 1})
    assert by_kind(single, "PodDisruptionBudget") == []
    assert "affinity" not in one(single, "Deployment")["spec"]["template"]["spec"]
    # Without leader election: one replica, recreated, and no Lease rule.
    alone = render({"replicas": 1, "leaderElection": {"enabled": False}})
    assert one(alone, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-election" not in operator_container(alone)["args"]
    assert not [r for _, r in rbac_rules(alone) if "leases" in r["resources"]]
    proc = helm(
        "template", "qorch", str(CHART), *set_args({"leaderElection": {"enabled": False}}),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "replicas above 1 need leaderElection.enabled" in proc.stderr


def test_priority_classes_reach_the_operator_as_json() -> None:
    classes = {"urgent": {"value": 1000, "preemptionPolicy": "PreemptLowerPriority"}}
    env = env_of(operator_container(render({"priorityClasses": classes, "maxPreemptions": 1})))
    assert json.loads(env["QORCH_PRIORITY_CLASSES"]) == classes
    assert env["QORCH_MAX_PREEMPTIONS"] == "1"
    assert "QORCH_PRIORITY_CLASSES" not in env_of(operator_container(render()))


def test_agent_resources_reach_the_operator_as_json_and_the_agent_deployment() -> None:
    resources = {"requests": {"cpu": 1, "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    env = env_of(operator_container(render({"agent": {"resources": resources}})))
    settings = Settings.from_env({"QORCH_AGENT_RESOURCES": env["QORCH_AGENT_RESOURCES"]})
    node, key = make_node("wide", 28), Identity.generate().public_key
    pod = build_deployment(node, settings, key)["spec"]["template"]["spec"]
    (agent,) = [c for c in pod["containers"] if c["name"] == "qpu-agent"]
    assert agent["resources"] == {**resources, "requests": {"cpu": "1", "memory": "4Gi"}}
    # The chart's default is the operator's, and so is what an emptied value leaves.
    for values in ({}, {"agent": {"resources": None}}):
        default = env_of(operator_container(render(values)))["QORCH_AGENT_RESOURCES"]
        assert Settings.from_env({"QORCH_AGENT_RESOURCES": default}) == Settings()


def test_operator_watches_the_release_namespace_by_default() -> None:
    args = operator_container(render(namespace="quantum"))["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=quantum"]
    assert "--peering" not in " ".join(args), "standalone unless peering is enabled"
    args = operator_container(render(VALUE_SETS["cluster-wide"]))["args"]
    assert not [a for a in args if a.startswith("--namespace")]


# -- RBAC ------------------------------------------------------------------------------------


def test_rbac_has_no_wildcards_and_no_escalation(rendered: list[dict[str, Any]]) -> None:
    rules = list(rbac_rules(rendered))
    assert rules
    for where, rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            values = rule.get(field, [])
            assert not any("*" in v for v in values), f"{where}: wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule, where
        assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(
            rule["verbs"]
        ), f"{where}: {rule}"
        assert not {"pods", "pods/exec", "roles", "rolebindings"} & set(rule["resources"]), where


def test_no_rule_reads_a_secret_it_does_not_name(rendered: list[dict[str, Any]]) -> None:
    """RBAC cannot select Secrets by label, and a create cannot be limited by name: the
    operator may create Secrets, but read only the one it names (its own identity)."""
    secret_rules = [(w, r) for w, r in rbac_rules(rendered) if "secrets" in r["resources"]]
    assert secret_rules
    for where, rule in secret_rules:
        assert rule["resources"] == ["secrets"], f"{where}: {rule}"
        if rule.get("resourceNames"):
            assert rule["verbs"] == ["get"], f"{where}: {rule}"
        else:
            assert rule["verbs"] == ["create"], f"{where}: {rule}"


def test_namespaced_mode_keeps_secrets_out_of_cluster_roles() -> None:
    docs = render(VALUE_SETS["watched-namespaces"], namespace="qorch-system")
    for where, rule in rbac_rules(docs):
        if where.startswith("ClusterRole/"):
            assert "secrets" not in rule["resources"], where
            assert set(rule["apiGroups"]) <= {"", "apiextensions.k8s.io", "kueue.x-k8s.io"}, where
            if "kueue.x-k8s.io" in rule["apiGroups"]:  # Kueue's cluster-scoped objects, read
                assert set(rule["verbs"]) <= {"get", "list"}, where
    secret_roles = {
        where
        for where, rule in rbac_rules(docs)
        if "secrets" in rule["resources"] and where.startswith("Role/")
    }
    assert secret_roles == {
        "Role/quantum-a/qorch",
        "Role/quantum-b/qorch",
        "Role/qorch-system/qorch-identity",
    }
    identity = one(docs, "Role", "qorch-identity")
    read = [r for r in identity["rules"] if "get" in r["verbs"]]
    assert read == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["qorch-identity"],
            "verbs": ["get"],
        }
    ]


def test_every_role_is_bound_to_the_operator_service_account(
    rendered: list[dict[str, Any]],
) -> None:
    sa = one(rendered, "ServiceAccount")["metadata"]
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in rendered
        if d["kind"] in ("Role", "ClusterRole")
    }
    bound = set()
    for binding in by_kind(rendered, "RoleBinding") + by_kind(rendered, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
        ]
        ref = binding["roleRef"]
        bound.add((ref["kind"], binding["metadata"].get("namespace"), ref["name"]))
    assert bound == roles
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["name"]


def test_peering_adds_kopf_peering_rules_and_objects() -> None:
    docs = render(VALUE_SETS["everything-on"])
    args = operator_container(docs)["args"]
    assert "--peering=qorch" in args
    (peering,) = by_kind(docs, "KopfPeering")
    assert peering["metadata"] == {**peering["metadata"], "name": "qorch", "namespace": "quantum-a"}
    kopf_role = one(docs, "Role", "qorch-kopf")
    assert any("kopfpeerings" in r["resources"] for r in kopf_role["rules"])
    docs = render(VALUE_SETS["cluster-wide-peering"])
    assert len(by_kind(docs, "ClusterKopfPeering")) == 1
    assert any("clusterkopfpeerings" in r["resources"] for _, r in rbac_rules(docs))


# -- configuration objects ---------------------------------------------------------------------


def test_sanitizer_policy_is_mounted_as_a_valid_policy_file(tmp_path: Path) -> None:
    policy = {"default": {"maxQubits": 64, "maxShots": 20000}, "namespaces": {"t": {"maxShots": 5}}}
    docs = render({"sanitizerPolicy": policy})
    config_map = one(docs, "ConfigMap", "qorch-sanitizer-policy")
    path = tmp_path / "policy.yaml"
    path.write_text(config_map["data"]["policy.yaml"])
    loaded = load_policy(path)
    assert loaded.default.max_qubits == 64
    assert loaded.for_namespace("t").max_shots == 5
    container = operator_container(docs)
    assert env_of(container)["QORCH_SANITIZER_POLICY_FILE"] == "/etc/qorch/sanitizer/policy.yaml"
    assert {"name": "sanitizer-policy", "mountPath": "/etc/qorch/sanitizer", "readOnly": True} in (
        container["volumeMounts"]
    )
    names = {c["metadata"]["name"] for c in by_kind(render(), "ConfigMap")}
    assert "qorch-sanitizer-policy" not in names, "no policy ConfigMap without a policy"
    assert "QORCH_SANITIZER_POLICY_FILE" not in env_of(operator_container(render()))


def test_trusted_submitter_keys_become_a_secret_of_pub_files() -> None:
    docs = render(VALUE_SETS["everything-on"])
    secret = one(docs, "Secret", "qorch-trusted-submitters")
    assert set(secret["stringData"]) == {"alice.pub"}
    assert decode_public_key(secret["stringData"]["alice.pub"])
    container = operator_container(docs)
    assert env_of(container)["QORCH_TRUSTED_SUBMITTERS_DIR"] == "/etc/qorch/trusted-submitters"
    existing = render({"trustedSubmitters": {"existingSecret": "our-submitters"}})
    assert not by_kind(existing, "Secret")
    volumes = one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "trusted-submitters", "secret": {"secretName": "our-submitters"}} in [
        {**v, "secret": {"secretName": v["secret"]["secretName"]}} for v in volumes if "secret" in v
    ]
    assert "QORCH_TRUSTED_SUBMITTERS_DIR" not in env_of(operator_container(render()))


def test_key_windows_and_per_namespace_keys_render_as_operator_side_entries() -> None:
    window = {"publicKey": SUBMITTER_KEY, "notAfter": "2026-07-01T00:00:00Z"}
    values = {
        "trustedSubmitters": {
            "keys": {"alice": window},
            "namespaces": {"team-a": {"bob": SUBMITTER_KEY}},
        }
    }
    docs = render(values, namespace="qorch-system")
    secret = one(docs, "Secret", "qorch-trusted-submitters")
    assert secret["stringData"]["alice.notAfter"] == "2026-07-01T00:00:00Z"
    keys, problems = trusted_keys_from_entries(secret["stringData"], "Secret")
    assert problems == [] and keys[0].not_after is not None
    config_map = one(docs, "ConfigMap", "qorch-submitters-team-a")
    assert config_map["metadata"]["namespace"] == "qorch-system"
    assert config_map["metadata"]["labels"]["qorch.dev/trusted-submitters-for"] == "team-a"
    assert trusted_keys_from_entries(config_map["data"], "ConfigMap")[0]
    env = env_of(operator_container(docs))
    assert env["QORCH_REQUIRE_SIGNED_JOBS"] == "true"
    assert env["QORCH_NONCE_RECORD_CONFIG_MAP"] == "qorch-submitter-nonces"
    assert env["QORCH_MAX_SIGNATURE_VALIDITY_SECONDS"] == "604800"


def test_signed_jobs_add_a_role_for_key_config_maps_and_the_nonce_record_only() -> None:
    assert not [d for d in render() if d["metadata"]["name"] == "qorch-submitters"]
    docs = render(VALUE_SETS["everything-on"], namespace="qorch-system")
    role = one(docs, "Role", "qorch-submitters")
    assert role["metadata"]["namespace"] == "qorch-system"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["qorch-submitter-nonces"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    ]
    # No rule anywhere lists or watches ConfigMaps beyond the operator's own namespace.
    for where, rule in rbac_rules(docs):
        if "configmaps" in rule["resources"] and {"list", "watch"} & set(rule["verbs"]):
            assert where == "Role/qorch-system/qorch-submitters", where


AGENT_PODS = {"matchLabels": {"app.kubernetes.io/name": "qorch-qpu-agent"}}
DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}
CHANNEL_PORT = [{"port": 8080, "protocol": "TCP"}]


def network_policies(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in by_kind(docs, "NetworkPolicy")
    }


def test_qpu_agents_talk_only_to_the_operator_peers_prometheus_and_dns() -> None:
    docs = render(VALUE_SETS["watched-namespaces"], namespace="qorch-system")
    policies = network_policies(docs)
    assert set(policies) == {
        ("quantum-a", "qorch-qpu-agents"),
        ("quantum-b", "qorch-qpu-agents"),
        ("qorch-system", "qorch-operator"),
    }
    operator_labels = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    for ns in ("quantum-a", "quantum-b"):
        spec = policies[(ns, "qorch-qpu-agents")]
        assert spec["podSelector"] == AGENT_PODS
        assert spec["policyTypes"] == ["Ingress", "Egress"], "both denied by default"
        channel, from_prometheus = spec["ingress"]
        assert channel["from"] == [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "qorch-system"}
                },
                "podSelector": {"matchLabels": operator_labels},
            },
            {"podSelector": AGENT_PODS},  # peer agents of the same namespace
        ]
        assert channel["ports"] == CHANNEL_PORT
        (peer,) = from_prometheus["from"]
        assert set(peer) == {"namespaceSelector", "podSelector"}, "both must match, not either"
        assert from_prometheus["ports"] == [{"port": "metrics", "protocol": "TCP"}]
        # Out: DNS and peer agents; no span export unless an OTLP endpoint is configured.
        assert spec["egress"] == [
            DNS_RULE,
            {"to": [{"podSelector": AGENT_PODS}], "ports": CHANNEL_PORT},
        ]


def test_operator_accepts_only_scrapes_and_reaches_only_api_dns_and_agents() -> None:
    docs = render(VALUE_SETS["watched-namespaces"], namespace="qorch-system")
    spec = network_policies(docs)[("qorch-system", "qorch-operator")]
    template = one(docs, "Deployment")["spec"]["template"]
    assert spec["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # In: Prometheus on the metrics port; the kubelet's liveness probes come from the node,
    # which policies never block.
    (scrape,) = spec["ingress"]
    (peer,) = scrape["from"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    assert scrape["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert "metrics" in {p["name"] for p in operator_container(docs)["ports"]}
    api, dns, agents = spec["egress"]
    assert api == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
    assert dns == DNS_RULE
    assert agents == {
        "to": [
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": ["quantum-a", "quantum-b"],
                        }
                    ]
                },
                "podSelector": AGENT_PODS,
            }
        ],
        "ports": CHANNEL_PORT,
    }


def test_operator_policy_follows_the_mode_and_the_extra_values() -> None:
    # Cluster-wide, agents may run in any namespace.
    spec = network_policies(render(VALUE_SETS["cluster-wide"]))[("qorch-system", "qorch-operator")]
    assert spec["egress"][2]["to"][0]["namespaceSelector"] == {}
    # The API server pinned by address; external agents by the extra rules.
    spec = network_policies(render(VALUE_SETS["everything-on"]))[("qorch-system", "qorch-operator")]
    api = spec["egress"][0]
    assert api["to"] == [
        {"ipBlock": {"cidr": "10.0.0.1/32"}},
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
    ]
    assert spec["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
        "ports": [{"port": 8443}],
    }
    assert not by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_an_otlp_endpoint_is_configured_and_reachable_for_operator_and_sidecars() -> None:
    otlp_rule = {"to": [MON], "ports": [{"port": 4318, "protocol": "TCP"}]}
    docs = render(VALUE_SETS["everything-on"])
    policies = network_policies(docs)
    assert otlp_rule in policies[("quantum-a", "qorch-qpu-agents")]["egress"]
    assert otlp_rule in policies[("qorch-system", "qorch-operator")]["egress"]
    env = env_of(operator_container(docs))
    endpoint = "http://otel-collector.monitoring:4318"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint  # the operator's own spans
    assert env["QORCH_TELEMETRY_OTLP_ENDPOINT"] == endpoint  # handed to the sidecars
    # Without `to`, any address on the OTLP ports; without an endpoint, no rule and no env.
    docs = render({"telemetry": {"otlp": {"endpoint": endpoint}}})
    egress = network_policies(docs)[("qorch-system", "qorch-qpu-agents")]["egress"]
    assert egress[-1] == {"ports": [{"port": 4318, "protocol": "TCP"}]}
    for spec in network_policies(render()).values():
        assert all(r["ports"] != otlp_rule["ports"] for r in spec["egress"])
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env_of(operator_container(render()))


def test_service_monitor_scrapes_the_operator_and_pod_monitor_the_agents() -> None:
    docs = render(VALUE_SETS["everything-on"])
    service = one(docs, "Service", "qorch-metrics")
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod_monitor = one(docs, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["quantum-a"]}
    assert pod_monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "qorch-qpu-agent"}
    }
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    defaults = render()
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert not by_kind(defaults, kind), f"{kind} needs the Prometheus Operator: opt-in"


@pytest.fixture
def chart_with_assets(tmp_path: Path) -> Path:
    """A copy of the chart with one dashboard and one rule file, whatever the real ones are."""
    chart = tmp_path / "qorch"
    shutil.copytree(CHART, chart)
    for folder in ("dashboards", "rules"):
        shutil.rmtree(chart / folder, ignore_errors=True)
        (chart / folder).mkdir()
    dashboard = '{"title": "qorch jobs", "panels": [{"legendFormat": "{{node}}"}]}\n'
    (chart / "dashboards" / "Job_Overview.json").write_text(dashboard)
    rules = {
        "groups": [
            {
                "name": "qorch.jobs",
                "rules": [
                    {
                        "alert": "QorchJobsFailing",
                        "expr": "rate(qorch_jobs_total{phase='Failed'}[5m]) > 0",
                        "annotations": {"summary": "{{ $labels.namespace }} jobs fail"},
                    }
                ],
            }
        ]
    }
    (chart / "rules" / "jobs.yaml").write_text(yaml.safe_dump(rules))
    return chart


def test_dashboards_and_rules_come_from_the_chart_files(chart_with_assets: Path) -> None:
    values = {"prometheusRule": {"enabled": True}}
    docs = render(values, chart=chart_with_assets)
    dashboard = one(docs, "ConfigMap", "qorch-dashboard-job-overview")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = (chart_with_assets / "dashboards" / "Job_Overview.json").read_text()
    assert dashboard["data"] == {"job-overview.json": text.rstrip("\n")}
    rule = one(docs, "PrometheusRule")
    expected = yaml.safe_load((chart_with_assets / "rules" / "jobs.yaml").read_text())
    assert rule["spec"]["groups"] == expected["groups"], "rule text passes through untemplated"
    off = render({"dashboards": {"enabled": False}}, chart=chart_with_assets)
    assert not by_kind(off, "ConfigMap")


def test_real_dashboards_render_one_config_map_each() -> None:
    files = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    config_maps = by_kind(render(), "ConfigMap")
    assert len(config_maps) == len(files)
    for config_map in config_maps:
        ((key, text),) = config_map["data"].items()
        assert json.loads(text) == json.loads(files[key]), key
        assert len(text) < 900_000, f"{key}: too close to the 1 MiB ConfigMap limit"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool: apt-get install prometheus")
def test_wrapped_rules_still_pass_promtool(tmp_path: Path) -> None:
    """The PrometheusRule's groups, written back as a rule file, are valid Prometheus rules."""
    rule = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    sources = sorted((CHART / "rules").glob("*.yaml"))
    expected = [g for p in sources for g in yaml.safe_load(p.read_text())["groups"]]
    assert rule["spec"]["groups"] == expected
    if not expected:
        return
    path = tmp_path / "wrapped.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_identity_secret_is_left_to_the_operator() -> None:
    """Helm never owns the identity: it survives uninstall, agents keep trusting it."""
    docs = render(VALUE_SETS["everything-on"])
    names = {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    assert "qorch-identity" not in names


# -- documentation -------------------------------------------------------------------------


def undocumented_values(text: str) -> list[str]:
    """Paths of values.yaml leaves with no `# --` comment on them or on an enclosing key."""
    lines = text.splitlines()
    entries = []  # (indent, key, documented)
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        j, comment = i - 1, []
        while j >= 0 and lines[j].lstrip().startswith("#"):
            comment.append(lines[j].strip())
            j -= 1
        entries.append(
            (
                len(line) - len(stripped),
                stripped.split(":")[0],
                any(c.startswith("# --") for c in comment),
            )
        )
    missing, stack = [], []  # stack of (indent, key, documented)
    for n, (indent, key, documented) in enumerate(entries):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        covered = documented or any(d for _, _, d in stack)
        has_children = n + 1 < len(entries) and entries[n + 1][0] > indent
        if not covered and not has_children:
            missing.append(".".join([*(k for _, k, _ in stack), key]))
        stack.append((indent, key, documented))
    return missing


def test_every_value_is_documented_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    assert undocumented_values(text) == []
    schema = json.loads((CHART / "values.schema.json").read_text())

    def check(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        for key, value in values.items():
            assert key in node.get("properties", {}), f"{path}{key} is not in the schema"
            sub = node["properties"][key]
            if isinstance(value, dict) and "properties" in sub:
                check(value, sub, f"{path}{key}.")

    check(yaml.safe_load(text), schema, "")
    assert undocumented_values("a:\n  b: 1\n# -- c\nc: 2\n") == ["a.b"]
