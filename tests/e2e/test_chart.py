"""The Helm chart against the real API server: install, uninstall, and RBAC that is enough.

The operator runs as the chart's ServiceAccount (its token, never the admin certificate),
with the arguments and environment of the installed Deployment, and does its job: an `aer`
QuantumNode gets its agent workload, a DistributedJob Succeeds on an external agent that
trusts the identity the operator created for itself. Everything else is denied.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorch.channel.identity import Identity, encode_public_key
from qorch.local.agents import AgentProcess
from tests.e2e.chart_support import CHART, helm
from tests.e2e.conftest import KUBECTL, Cluster
from tests.support import REPO, make_node

pytestmark = pytest.mark.e2e

GHZ_JOB = REPO / "examples" / "quickstart" / "ghz-job.yaml"
QORCH_KINDS = ("distributedjobs", "quantumnodes", "entanglementlinks")


def create_namespace(cluster: Cluster, name: str) -> None:
    """A namespace whose pods the API server admits only at the restricted Pod Security level."""
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")


def delete_namespace(cluster: Cluster, name: str) -> None:
    for kind in QORCH_KINDS:
        for obj in cluster.kubectl("get", kind, "-n", name, "-o", "name", check=False).split():
            if "/" in obj:
                patch = '{"metadata":{"finalizers":null}}'
                cluster.kubectl("patch", obj, "-n", name, "--type=merge", "-p", patch, check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def install(cluster: Cluster, release: str, namespace: str, *args: str) -> str:
    """`helm install --wait`: the operator pod must be admitted and become Ready (kwok)."""
    out = helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--wait",
        "--timeout=90s",
        *args,
        env=cluster.env,
    )
    return out.stdout


def names(cluster: Cluster, kinds: str, selector: str, namespace: str | None = None) -> set[str]:
    scope = ["-n", namespace] if namespace else []
    out = cluster.kubectl("get", kinds, "-l", selector, *scope, "-o", "name")
    return set(out.split())


@pytest.fixture
def operator_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"qorch-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster, name)
    yield name
    delete_namespace(cluster, name)


def test_install_creates_the_objects_and_uninstall_removes_them(
    cluster: Cluster, operator_namespace: str
) -> None:
    ns, release = operator_namespace, operator_namespace
    notes = install(cluster, release, ns)
    assert f"kubectl -n {ns} apply -f examples/quickstart/" in notes
    assert f"kubectl -n {ns} get djob" in notes and "Grafana" in notes

    selector = f"app.kubernetes.io/instance={release}"
    assert names(cluster, "deployment,serviceaccount,service,networkpolicy", selector, ns) == {
        f"deployment.apps/{release}",
        f"serviceaccount/{release}",
        f"service/{release}-metrics",
        f"networkpolicy.networking.k8s.io/{release}-qpu-agents",
        f"networkpolicy.networking.k8s.io/{release}-operator",
    }
    assert names(cluster, "role,rolebinding", selector, ns) == {
        f"{kind}.rbac.authorization.k8s.io/{release}{suffix}"
        for kind in ("role", "rolebinding")
        for suffix in ("", "-kopf", "-identity", "-leader")
    }
    pdb = f"poddisruptionbudget.policy/{release}"
    assert names(cluster, "poddisruptionbudget", selector, ns) == {pdb}
    assert names(cluster, "clusterrole,clusterrolebinding", selector) == {
        f"clusterrole.rbac.authorization.k8s.io/{release}-kopf",
        f"clusterrolebinding.rbac.authorization.k8s.io/{release}-kopf",
    }
    crds = cluster.kubectl("get", "crd", "-o", "name").split()
    for kind in QORCH_KINDS:
        assert f"customresourcedefinition.apiextensions.k8s.io/{kind}.qorch.dev" in crds
    # Admitted under the namespace's restricted Pod Security level, and Running (kwok).
    pods = cluster.wait_for(
        "pods",
        "",
        ns,
        # Two replicas: the leader and a standby.
        lambda o: [p["status"].get("phase") for p in o["items"]] == ["Running"] * 2,
        timeout=60,
        selector=f"{selector},app.kubernetes.io/component=operator",
    )
    for pod in pods["items"]:
        assert pod["spec"]["serviceAccountName"] == release

    helm("uninstall", release, "--namespace", ns, "--wait", env=cluster.env)
    everything = (
        "deployment,serviceaccount,service,networkpolicy,role,rolebinding,configmap,secret,"
        "poddisruptionbudget"
    )
    assert names(cluster, everything, selector, ns) == set()
    assert names(cluster, "clusterrole,clusterrolebinding", selector) == set()
    # Helm never deletes CRDs (and with them every user's objects).
    assert f"customresourcedefinition.apiextensions.k8s.io/{QORCH_KINDS[0]}.qorch.dev" in (
        cluster.kubectl("get", "crd", "-o", "name").split()
    )


# -- the operator as the chart's ServiceAccount --------------------------------------------


@dataclass
class Release:
    name: str
    namespace: str  # where the operator runs
    watched: str  # where the quantum objects live
    kubeconfig: Path  # the ServiceAccount's token, nothing else

    @property
    def service_account(self) -> str:
        return self.name

    def can_i(self, cluster: Cluster, *args: str) -> bool:
        proc = subprocess.run(
            [str(KUBECTL), "auth", "can-i", *args],
            capture_output=True,
            text=True,
            env={**cluster.env, "KUBECONFIG": str(self.kubeconfig)},
            timeout=30,
        )
        answer = proc.stdout.strip()
        assert answer in ("yes", "no"), proc.stdout + proc.stderr
        return answer == "yes"


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a token of the ServiceAccount, as its pod would."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").strip()
    admin = yaml.safe_load(Path(cluster.env["KUBECONFIG"]).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": admin["clusters"][0]["name"], "user": account},
            }
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart installed in its own namespace, watching another one."""
    suffix = uuid.uuid4().hex[:8]
    system, watched = f"qorch-{suffix}", f"quantum-{suffix}"
    for name in (system, watched):
        create_namespace(cluster, name)
    name = f"qorch-{suffix}"
    install(
        cluster,
        name,
        system,
        f"--set=watch.namespaces={{{watched}}}",
        "--set=operator.nodeCheckSeconds=1",
        "--set=operator.linkCheckSeconds=1",
    )
    kubeconfig = token_kubeconfig(
        cluster, system, name, tmp_path_factory.mktemp("sa") / "kubeconfig"
    )
    yield Release(name, system, watched, kubeconfig)
    helm("uninstall", name, "--namespace", system, env=cluster.env, check=False)
    for namespace in (watched, system):
        delete_namespace(cluster, namespace)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def operator_command(cluster: Cluster, rel: Release, liveness_port: int) -> tuple[list[str], dict]:
    """The installed Deployment's container, as a local process: its args and env."""
    deployment = cluster.get("deployment", rel.name, rel.namespace)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == rel.service_account
    args = [
        f"--liveness=http://127.0.0.1:{liveness_port}/healthz" if a.startswith("--liveness") else a
        for a in container["args"]
    ]
    downward = {"metadata.namespace": rel.namespace, "metadata.name": f"{rel.name}-local"}
    env = {
        e["name"]: e["value"] if "value" in e else downward[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in container["env"]
    }
    # Only the ServiceAccount's token: no admin certificate reaches the operator.
    return [sys.executable, "-m", "qorch", *args], {
        **cluster.env,
        **env,
        "KUBECONFIG": str(rel.kubeconfig),
    }


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"operator exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as rsp:
                if rsp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200:\n{log.read_text()[-3000:]}")


@pytest.fixture
def chart_operator(
    cluster: Cluster, release: Release, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    port = free_port()
    command, env = operator_command(cluster, release, port)
    assert "--namespace=" + release.watched in command
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        # kopf's liveness endpoint answers once the startup handlers (the identity) are done.
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", 90, proc, log)
        yield proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def apply(cluster: Cluster, namespace: str, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))


async def test_operator_does_its_job_with_the_chart_rbac(
    cluster: Cluster, release: Release, chart_operator: tuple[Any, Path], tmp_path: Path
) -> None:
    _, log = chart_operator
    ns = release.watched
    # The operator created its own identity Secret; the agent is told to trust that key.
    secret = cluster.get("secret", f"{release.name}-identity", release.namespace)
    operator_pub = tmp_path / "operator.pub"
    operator_pub.write_bytes(base64.b64decode(secret["data"]["identity.pub"]))
    node_identity = Identity.generate()
    key_file, _ = node_identity.save(tmp_path / "edge")
    agent = await AgentProcess.start(make_node("edge", 8), key_file, [operator_pub])
    try:
        edge = {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": "edge"},
            "spec": {
                "qubits": 8,
                "backend": {"type": "external", "endpoint": agent.endpoint},
                "identity": {"publicKey": encode_public_key(node_identity.public_key)},
            },
        }
        sim = {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": "sim"},
            "spec": {"qubits": 5},
        }
        apply(cluster, ns, edge, sim, yaml.safe_load(GHZ_JOB.read_text()))

        # `aer` node: Deployment, Service and identity Secret, owned by the node.
        uid = cluster.wait_for("qn", "sim", ns, lambda o: True)["metadata"]["uid"]
        for kind in ("deployment", "service"):
            obj = cluster.wait_for(kind, "qpu-sim", ns, lambda o: True, timeout=60)
            assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
        # Created, never read: the Deployment mounts it and records its public key.
        pod = cluster.get("deployment", "qpu-sim", ns)["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if "secret" in v]
        node_secret = cluster.get("secret", volume["secret"]["secretName"], ns)
        assert node_secret["metadata"]["ownerReferences"][0]["uid"] == uid
        # Its agent pod passes the restricted Pod Security level of the namespace (kwok runs it).
        cluster.wait_for(
            "pods",
            "",
            ns,
            lambda o: [p["status"].get("phase") for p in o["items"]] == ["Running"],
            timeout=60,
            selector="qorch.dev/node=sim",
        )

        job = cluster.wait_for(
            "djob",
            "ghz",
            ns,
            lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed", "Rejected"),
            timeout=120,
        )
        assert job["status"]["phase"] == "Succeeded", (job["status"], log.read_text()[-3000:])
        assert job["status"]["plan"]["placement"]
        events = json.loads(
            cluster.kubectl(
                "get", "events", "-n", ns, "--field-selector=involvedObject.name=ghz", "-o", "json"
            )
        )
        assert "Completed" in {e["reason"] for e in events["items"]}
    finally:
        await agent.stop()
    output = log.read_text()
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert refusal not in output, output[-3000:]


# -- least privilege: what the ServiceAccount may and may not do ----------------------------

WATCHED, OPERATOR, OTHER, CLUSTER = "watched", "operator", "other", "cluster"

ALLOWED = [
    (WATCHED, "watch", "quantumnodes.qorch.dev"),
    (WATCHED, "patch", "distributedjobs.qorch.dev", "--subresource=status"),
    (WATCHED, "create", "deployments.apps"),
    (WATCHED, "patch", "services"),
    (WATCHED, "create", "secrets"),
    (WATCHED, "get", "configmaps"),
    (WATCHED, "create", "configmaps"),
    (WATCHED, "patch", "configmaps/qorch-link-states"),
    (WATCHED, "create", "events"),
    (OPERATOR, "get", "secrets/{identity}"),
    (OPERATOR, "get", "leases.coordination.k8s.io/{lease}"),
    (OPERATOR, "update", "leases.coordination.k8s.io/{lease}"),
    (OPERATOR, "create", "leases.coordination.k8s.io"),
    (CLUSTER, "watch", "customresourcedefinitions.apiextensions.k8s.io"),
]

DENIED = [
    # Secrets: created in the watched namespaces, but read only by name, and only its own.
    (OTHER, "get", "secrets"),
    (OTHER, "create", "secrets"),
    (WATCHED, "get", "secrets"),
    (WATCHED, "get", "secrets/qpu-sim-identity-0123456789ab"),
    (WATCHED, "list", "secrets"),
    (WATCHED, "watch", "secrets"),
    (WATCHED, "update", "secrets"),
    (WATCHED, "patch", "secrets"),
    (OPERATOR, "list", "secrets"),
    (OPERATOR, "get", "secrets/someone-elses"),
    (CLUSTER, "list", "secrets", "--all-namespaces"),
    # The Lease: its own, by name, in its own namespace; never deleted.
    (OPERATOR, "update", "leases.coordination.k8s.io/someone-elses"),
    (OPERATOR, "delete", "leases.coordination.k8s.io/{lease}"),
    (OPERATOR, "list", "leases.coordination.k8s.io"),
    (WATCHED, "create", "leases.coordination.k8s.io"),
    # Nothing outside the watched namespaces.
    (OTHER, "list", "quantumnodes.qorch.dev"),
    (OTHER, "create", "deployments.apps"),
    # ConfigMaps: the links' states patched by name, no other.
    (WATCHED, "patch", "configmaps/someone-elses"),
    (WATCHED, "update", "configmaps/qorch-link-states"),
    (WATCHED, "delete", "configmaps/qorch-link-states"),
    # No pods, no exec, no deleting: garbage collection removes what a node owned.
    (WATCHED, "create", "pods"),
    (WATCHED, "create", "pods", "--subresource=exec"),
    (WATCHED, "delete", "deployments.apps"),
    (WATCHED, "delete", "distributedjobs.qorch.dev"),
    (WATCHED, "create", "quantumnodes.qorch.dev"),
    # No cluster administration, no way to escalate.
    (CLUSTER, "delete", "namespaces"),
    (CLUSTER, "get", "nodes"),
    (CLUSTER, "patch", "customresourcedefinitions.apiextensions.k8s.io"),
    (CLUSTER, "create", "clusterrolebindings.rbac.authorization.k8s.io"),
    (WATCHED, "create", "rolebindings.rbac.authorization.k8s.io"),
    (WATCHED, "impersonate", "serviceaccounts"),
    (CLUSTER, "*", "*"),
]


def can_i(cluster: Cluster, rel: Release, where: str, verb: str, what: str, *extra: str) -> bool:
    namespaces = {WATCHED: rel.watched, OPERATOR: rel.namespace, OTHER: "default"}
    scope = ["-n", namespaces[where]] if where in namespaces else []
    return rel.can_i(
        cluster,
        verb,
        what.format(identity=f"{rel.name}-identity", lease=f"{rel.name}-leader"),
        *extra,
        *scope,
    )


@pytest.mark.parametrize("check", ALLOWED, ids=lambda c: " ".join(c))
def test_service_account_may_do_what_the_operator_needs(cluster, release, check) -> None:
    assert can_i(cluster, release, *check)


@pytest.mark.parametrize("check", DENIED, ids=lambda c: " ".join(c))
def test_service_account_is_denied_everything_else(cluster, release, check) -> None:
    assert not can_i(cluster, release, *check)


def test_service_account_cannot_read_a_secret_it_does_not_own(
    cluster: Cluster, release: Release
) -> None:
    """An actual request with the ServiceAccount's token, not only `auth can-i`."""
    for namespace in (release.watched, release.namespace):
        cluster.kubectl(
            "create", "secret", "generic", "unrelated", "-n", namespace, "--from-literal=k=v"
        )
        try:
            for verb in (["get", "secret", "unrelated"], ["get", "secrets"]):
                proc = subprocess.run(
                    [str(KUBECTL), *verb, "-n", namespace, "-o", "json"],
                    capture_output=True,
                    text=True,
                    env={**cluster.env, "KUBECONFIG": str(release.kubeconfig)},
                    timeout=30,
                )
                assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stdout
                assert "dj0=" not in proc.stdout  # base64 of the Secret's value
        finally:
            cluster.kubectl("delete", "secret", "unrelated", "-n", namespace, check=False)


def test_cluster_wide_mode_grants_our_kinds_everywhere_and_still_no_listing_secrets(
    cluster: Cluster, operator_namespace: str, tmp_path: Path
) -> None:
    ns = operator_namespace
    install(cluster, ns, ns, "--set=watch.clusterWide=true")
    try:
        rel = Release(ns, ns, ns, token_kubeconfig(cluster, ns, ns, tmp_path / "kubeconfig"))
        assert rel.can_i(cluster, "watch", "quantumnodes.qorch.dev", "--all-namespaces")
        assert rel.can_i(cluster, "create", "events", "-n", "default")
        assert not rel.can_i(cluster, "list", "secrets", "--all-namespaces")
        assert not rel.can_i(cluster, "get", "secrets", "-n", "default")
        assert not rel.can_i(cluster, "list", "namespaces")  # kopf lists them only when namespaced
        assert not rel.can_i(cluster, "delete", "deployments.apps", "-n", "default")
    finally:
        helm("uninstall", ns, "--namespace", ns, "--wait", env=cluster.env)


# The operator's calls for signed jobs, run as the ServiceAccount: keys for a namespace from
# the release namespace's ConfigMaps, and one nonce claimed twice by two jobs.
SUBMITTER_CALLS = """
import asyncio, json, sys
from datetime import timedelta
from kubernetes import config
from qorch.channel.signing import now_utc
from qorch.operator.submitters import ConfigMapNonces, OperatorKeys

system, watched, record = sys.argv[1:4]
config.load_kube_config()
async def main():
    keys = await OperatorKeys(None, system).keys_for(watched)
    elsewhere = await OperatorKeys(None, system).keys_for("default")
    nonces = ConfigMapNonces(system, record, 10)
    expires = now_utc() + timedelta(hours=1)
    first = await nonces.claim("a" * 32, f"{watched}/one/u1", expires)
    again = await nonces.claim("a" * 32, f"{watched}/one/u1", expires)
    other = await nonces.claim("a" * 32, f"{watched}/two/u2", expires)
    print(json.dumps([[k.fingerprint for k in keys], len(elsewhere), first, again, other]))
asyncio.run(main())
"""


def test_signed_jobs_release_lets_the_operator_read_keys_and_keep_nonces_and_no_more(
    cluster: Cluster, operator_namespace: str, tmp_path: Path
) -> None:
    ns, watched = operator_namespace, f"quantum-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster, watched)
    bob = Identity.generate()
    install(
        cluster,
        ns,
        ns,
        f"--set=watch.namespaces={{{watched}}}",
        f"--set=trustedSubmitters.namespaces.{watched}.bob={encode_public_key(bob.public_key)}",
    )
    try:
        rel = Release(ns, ns, watched, token_kubeconfig(cluster, ns, ns, tmp_path / "kubeconfig"))
        record = f"{ns}-submitter-nonces"
        proc = subprocess.run(
            [sys.executable, "-c", SUBMITTER_CALLS, ns, watched, record],
            capture_output=True,
            text=True,
            env={**cluster.env, "KUBECONFIG": str(rel.kubeconfig), "PYTHONPATH": str(REPO / "src")},
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        keys, elsewhere, first, again, other = json.loads(proc.stdout)
        assert keys == [bob.fingerprint] and elsewhere == 0
        assert (first, again, other) == (None, None, f"{watched}/one/u1")
        assert json.loads(cluster.get("configmap", record, ns)["data"]["nonces.json"])
        # Key ConfigMaps are listed in the release namespace only; no Secret is read for them.
        assert not rel.can_i(cluster, "list", "configmaps", "-n", watched)
        assert not rel.can_i(cluster, "list", "configmaps", "--all-namespaces")
        assert not rel.can_i(cluster, "update", "configmaps/unrelated", "-n", ns)
        assert not rel.can_i(cluster, "list", "secrets", "-n", ns)
    finally:
        helm("uninstall", ns, "--namespace", ns, "--wait", env=cluster.env)
        delete_namespace(cluster, watched)
