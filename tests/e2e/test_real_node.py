"""The chart, the operator and the QPU agents in real containers on real kubelets.

A control plane of its own (hack/controlplane.py) with one real node per edge site
(hack/realnode.py: containerd, runc, CNI, kubelet, kube-proxy, CoreDNS) and the
qorch image built without a registry (hack/build-image.sh). Where the machine cannot
run a node, every test here skips with one line naming what is missing; with
QORCH_REQUIRE_REAL_NODE=1 (set by .ci/run) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from qorch.memory_limit import EXACT_BYTES_PER_OUTCOME, widest_fitting
from tests.e2e.chart_support import CHART, helm
from tests.e2e.conftest import Cluster
from tests.support import REPO

pytestmark = pytest.mark.e2e

SITES = ("site-a", "site-b")


def _controlplane() -> Any:
    import controlplane  # hack/, on sys.path through tests.e2e.conftest

    return controlplane


def leftovers(state_dir: Path, record: dict[str, Any]) -> list[str]:
    """What a stopped cluster with real nodes left on the machine."""
    import realnode

    found: list[str] = []
    for pid in realnode._pids_matching(lambda cmd: str(state_dir) in cmd):
        found.append(f"process {pid}: {realnode._cmdline(pid)[:200]}")
    found += [f"mount {m}" for m in realnode.mounts_under(state_dir)]
    found += [f"netns {ns}" for ns in record["netns"] if Path("/run/netns", ns).exists()]
    found += [f"veth {v}" for v in record["host_veths"] if Path("/sys/class/net", v).exists()]
    for cg in record["cgroups"]:
        found += [f"cgroup {h / cg}" for h in realnode._hierarchies() if (h / cg).exists()]
    return found


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cp_module = _controlplane()
    import realnode

    missing = realnode.missing_capabilities(REPO / ".tools" / "bin")
    if missing:
        message = "real node unavailable here: missing " + "; ".join(missing)
        if os.environ.get("QORCH_REQUIRE_REAL_NODE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    state_dir = tmp_path_factory.mktemp("real")
    cp = cp_module.ControlPlane(state_dir=state_dir, real_sites=SITES)
    cp.images.append(realnode.build_image("qorch"))
    record: dict[str, Any] = {}
    try:
        cp.start(pods=True)
        record = json.loads((state_dir / "nodes.json").read_text())
        c = Cluster(cp)
        c.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
        yield c
    finally:
        cp.stop()
    # `make cluster-down` uses the same stop(): nothing of the nodes may remain.
    assert leftovers(state_dir, record) == []


def image(cluster: Cluster) -> str:
    return cluster.cp.images[-1][1]


def pod_manifest(name: str, node: str, image_name: str, *args: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image_name,
                    "imagePullPolicy": "Never",
                    "command": ["/opt/qorch/bin/python", "-c"],
                    "args": list(args),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def run_pod(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> str:
    """Create the pod, wait for it to finish, return its log; fails unless it Succeeded."""
    name = manifest["metadata"]["name"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    pod = cluster.wait_for(
        "pod",
        name,
        namespace,
        lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        timeout=120,
    )
    log = cluster.kubectl("logs", name, "-n", namespace)
    assert pod["status"]["phase"] == "Succeeded", f"{name}: {log}\n{json.dumps(pod['status'])}"
    return log


@pytest.fixture
def real_namespace(real_cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    real_cluster.kubectl("create", "namespace", name)
    restricted = "pod-security.kubernetes.io/enforce=restricted"
    real_cluster.kubectl("label", "namespace", name, restricted)
    real_cluster.wait_for(
        "serviceaccount", "default", name, lambda sa: bool(sa.get("metadata")), timeout=60
    )
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_each_site_has_a_ready_real_node(real_cluster: Cluster) -> None:
    nodes = json.loads(real_cluster.kubectl("get", "nodes", "-l", "type=real", "-o", "json"))
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"]: n for n in nodes["items"]}
    assert sorted(zones) == sorted(SITES)
    for node in zones.values():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", ready
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_pods_really_run_and_reach_the_api_and_each_other(
    real_cluster: Cluster, real_namespace: str
) -> None:
    """A pod on each site: the container runs (its output is the kernel's answer, not a
    fake's), and a pod on site-b reaches the API server by the `kubernetes` Service's
    name, through CoreDNS and kube-proxy."""
    img = image(real_cluster)
    log = run_pod(
        real_cluster,
        real_namespace,
        pod_manifest(
            "uname",
            "node-site-a",
            img,
            "import os, sys; print(os.uname().sysname, os.getuid(), sys.version_info[:2])",
        ),
    )
    assert log.strip() == "Linux 10001 (3, 11)"
    probe = (
        "import socket, ssl\n"
        "addr = socket.getaddrinfo('kubernetes.default', 443)[0][4][0]\n"
        "s = socket.create_connection(('kubernetes.default', 443), timeout=10)\n"
        "print(addr, 'connected')\n"
    )
    log = run_pod(real_cluster, real_namespace, pod_manifest("dns", "node-site-b", img, probe))
    assert log.strip() == "10.96.0.1 connected"


def get_json(url: str, timeout: float = 10) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.read().decode()


def wait_http(url: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return str(get_json(url))
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise AssertionError(f"{url} never answered: {last}")


@dataclass(frozen=True)
class Release:
    system: str  # the operator's namespace
    watched: str  # the quickstart's
    faults: str  # the kill tests' two nodes, apart from the quickstart's


@pytest.fixture(scope="module")
def operator_release(real_cluster: Cluster) -> Iterator[Release]:
    """The chart installed with the locally built image; the operator watches two
    namespaces. The kill tests' nodes are applied at once, so that their pods start and
    calibrate while the earlier tests run."""
    suffix = uuid.uuid4().hex[:6]
    release = Release(f"qorch-{suffix}", f"quantum-{suffix}", f"faults-{suffix}")
    for ns in (release.system, release.watched, release.faults):
        real_cluster.kubectl("create", "namespace", ns)
        real_cluster.kubectl(
            "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted"
        )
    repo_name, tag = image(real_cluster).rsplit(":", 1)
    helm(
        "install",
        release.system,
        str(CHART),
        "--namespace",
        release.system,
        "--wait",
        "--timeout=240s",
        f"--set=image.repository={repo_name}",
        f"--set=image.tag={tag}",
        "--set=image.pullPolicy=Never",
        f"--set=watch.namespaces={{{release.watched},{release.faults}}}",
        "--set=operator.nodeCheckSeconds=2",
        "--set=operator.linkCheckSeconds=2",
        env=real_cluster.env,
        timeout=300,
    )
    apply_slow_nodes(real_cluster, release.faults)
    yield release
    helm(
        "uninstall",
        release.system,
        "--namespace",
        release.system,
        "--wait",
        env=real_cluster.env,
        check=False,
    )


def leader(cluster: Cluster, namespace: str, pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator pod holding the leader-election Lease (the chart's identity is the pod's
    name); the others are standbys, which serve liveness but no metrics until they lead."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    deadline = time.monotonic() + 60
    while True:
        leases = json.loads(cluster.kubectl("get", "lease", "-n", namespace, "-o", "json"))
        holders = {lease["spec"].get("holderIdentity") for lease in leases["items"]}
        found = [by_name[name] for name in holders if name in by_name]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no operator pod holds a Lease: {holders}"
        time.sleep(1)


# Prometheus starts here, so that it discovers and scrapes while the later tests run.
@pytest.mark.usefixtures("prometheus")
def test_operator_pod_is_ready_and_serves_metrics_and_liveness(
    real_cluster: Cluster, operator_release: Release
) -> None:
    system = operator_release.system
    pods = json.loads(
        real_cluster.kubectl(
            "get", "pods", "-n", system, "-l", "app.kubernetes.io/component=operator", "-o", "json"
        )
    )["items"]
    assert len(pods) >= 1
    for pod in pods:  # leader and standbys alike
        assert pod["spec"]["nodeName"].startswith("node-")
        ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        ctx = pod["spec"]["containers"][0]["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert wait_http(f"http://{pod['status']['podIP']}:8081/healthz")
    active = leader(real_cluster, system, pods)
    metrics = wait_http(f"http://{active['status']['podIP']}:9090/metrics")
    assert "qorch_" in metrics
    # The memory limit as read inside the container (its cgroup), and the widest exact
    # simulations sized to it.
    limit = active["spec"]["containers"][0]["resources"]["limits"]["memory"]
    limit_bytes = int(limit[:-2]) << {"Gi": 30, "Mi": 20}[limit[-2:]]
    samples = {
        (s.name, s.labels.get("kind")): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert samples[("qorch_memory_limit_bytes", None)] == limit_bytes, limit
    widest = widest_fitting(EXACT_BYTES_PER_OUTCOME, 26, limit_bytes)
    assert samples[("qorch_exact_simulation_max_qubits", "verification")] == widest


def succeeded(obj: dict[str, Any]) -> bool:
    return obj.get("status", {}).get("phase") in ("Succeeded", "Failed", "Rejected")


def agent_pods(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """Running agent pods by QuantumNode name."""
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", "qorch.dev/node", "-o", "json")
    )["items"]
    return {
        p["metadata"]["labels"]["qorch.dev/node"]: p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def test_quickstart_runs_on_agent_pods_at_their_sites(
    real_cluster: Cluster, operator_release: Release
) -> None:
    """`kubectl apply -f examples/quickstart/` with `aer` nodes: the operator creates each
    node's Deployment, the agent pods (agent + telemetry sidecar) start at their sites,
    calibration and the link probe run over the post-quantum channel between pods, and
    the GHZ job Succeeds with the GHZ distribution."""
    ns = operator_release.watched
    real_cluster.kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "quickstart"))
    job = real_cluster.wait_for("djob", "ghz", ns, succeeded, timeout=240)
    status = job["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    counts = status["result"]["counts"]
    assert sum(counts.values()) == 2000
    # GHZ: all zeros or all ones, but for the modelled noise.
    assert counts.get("0000", 0) + counts.get("1111", 0) > 0.8 * 2000, counts
    # The link probe runs between the two agent pods, apart from the job, on the link's
    # physical state the pods mount (the namespace's ConfigMap of link states).
    link = real_cluster.wait_for(
        "qlink",
        "a-b",
        ns,
        lambda o: (
            o.get("status", {}).get("phase") == "Up"
            and o["status"].get("probe", {}).get("source") == "linkState"
        ),
        timeout=120,
    )
    assert link["status"]["probe"]["pairs"] > 0
    pods = agent_pods(real_cluster, ns)
    for name, site in (("qpu-a", "site-a"), ("qpu-b", "site-b")):
        pod = pods[name]
        assert pod["spec"]["nodeName"] == f"node-{site}"
        statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
        assert set(statuses) == {"qpu-agent", "telemetry"}
        assert all(c["ready"] for c in statuses.values())
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in pod["spec"]["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
        # The sidecar serves the agent's stats it reads from the shared volume.
        metrics = wait_http(f"http://{pod['status']['podIP']}:9090/metrics")
        assert "qorch_" in metrics
    real_cluster.kubectl("delete", "-n", ns, "djob", "ghz")


def test_a_link_made_to_drift_in_its_config_map_turns_degraded(
    real_cluster: Cluster, operator_release: Release
) -> None:
    """The quickstart's link, its physical state edited where its agent pods read it (the
    namespace's ConfigMap of link states): the kubelet brings the change into the running
    pods, their next probe measures it, and the link turns Degraded, with no restart."""
    ns = operator_release.watched
    cm = json.loads(
        real_cluster.kubectl("get", "configmap", "qorch-link-states", "-n", ns, "-o", "json")
    )
    state = json.loads(cm["data"]["a-b.json"])
    state["spec"]["fidelity"] = 0.7  # declared 0.95, its floor
    patch = {"data": {"a-b.json": json.dumps(state)}}
    began = time.monotonic()
    real_cluster.kubectl(
        "patch", "configmap", "qorch-link-states", "-n", ns, "-p", json.dumps(patch)
    )
    link = real_cluster.wait_for(
        "qlink", "a-b", ns, lambda o: o.get("status", {}).get("phase") == "Degraded", timeout=120
    )
    probe = link["status"]["probe"]
    assert probe["source"] == "linkState" and probe["fidelityUpper"] < 0.95, probe
    print(f"drifted link Degraded {time.monotonic() - began:.1f}s after the ConfigMap edit")
    restarts = [
        c["restartCount"]
        for pod in agent_pods(real_cluster, ns).values()
        for c in pod["status"]["containerStatuses"]
    ]
    assert restarts == [0] * len(restarts), restarts


SLOW_NODES = (("first", "site-a", 0.01), ("spare", "site-b", 0.02))


def apply_slow_nodes(cluster: Cluster, namespace: str) -> None:
    """`first` (less noisy, so plans pick it) at site-a and `spare` at site-b."""
    for name, site, error in SLOW_NODES:
        node = {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": name, "labels": {"qorch.dev/site": site}},
            "spec": {
                "qubits": 10,
                "noise": {"twoQubitError": error, "readoutError": 0.01},
                "safety": {"maxErrorRate": 0.05},
            },
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))


def wait_slow_nodes(cluster: Cluster, namespace: str) -> None:
    """Until `first` and `spare` are Ready and calibrated."""
    for name, _, _ in SLOW_NODES:
        cluster.wait_for(
            "qn",
            name,
            namespace,
            lambda o: (
                o.get("status", {}).get("phase") == "Ready" and bool(o["status"].get("calibration"))
            ),
            timeout=180,
        )


def agent_host_pid(cluster: Cluster, pod: dict[str, Any]) -> int:
    """The host pid of the pod's qpu-agent process, from its node's containerd."""
    import realnode

    (status,) = [c for c in pod["status"]["containerStatuses"] if c["name"] == "qpu-agent"]
    container_id = status["containerID"].removeprefix("containerd://")
    site = pod["spec"]["nodeName"].removeprefix("node-")
    sock = cluster.cp.state_dir / "nodes" / site / "containerd.sock"
    out = realnode._run("ctr", "-a", str(sock), "-n", "k8s.io", "tasks", "ls")
    for line in out.splitlines()[1:]:
        task, pid, _status = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task {container_id} in {out}")


def agent_runs(cluster: Cluster, namespace: str) -> dict[str, tuple[float, float]]:
    """(start time, programs run to completion) of each running agent, by node, as its
    telemetry sidecar exports them over the pod network."""
    from prometheus_client.parser import text_string_to_metric_families

    from qorch.telemetry import METRICS_PORT

    out = {}
    for node, pod in agent_pods(cluster, namespace).items():
        text = get_json(f"http://{pod['status']['podIP']}:{METRICS_PORT}/metrics")
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.labels.get("node") == node
        }
        out[node] = (
            samples.get("qorch_agent_start_time_seconds", 0.0),
            samples.get("qorch_agent_programs_total", 0.0),
        )
    return out


def programs_completed(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Programs each node's agent ran to completion between the two readings; an agent
    started since (a restarted container, a new pod) counts from zero."""
    ran = {}
    for node, (started, programs) in after.items():
        was_started, was_programs = before.get(node, (None, 0.0))
        ran[node] = programs - (was_programs if started == was_started else 0.0)
    return ran


@pytest.mark.parametrize("how", ["kill -9 the agent process", "kubectl delete pod"])
def test_an_agent_killed_mid_job_moves_the_job_and_no_program_runs_twice(
    real_cluster: Cluster, operator_release: Release, how: str
) -> None:
    from tests.e2e.test_operator import SLOW_CIRCUIT

    ns = operator_release.faults
    began = time.monotonic()
    wait_slow_nodes(real_cluster, ns)
    ready = time.monotonic()
    name = f"slow-{uuid.uuid4().hex[:4]}"
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        # Seconds of simulation (4 s on an idle machine here, 20 s beside a build), and the
        # kill follows Running within one: it lands mid-program.
        "spec": {"shots": 150, "strategy": "single", "circuit": {"qasm": SLOW_CIRCUIT}},
    }
    before = agent_runs(real_cluster, ns)
    real_cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(job))
    running = real_cluster.wait_for(
        "djob", name, ns, lambda o: o.get("status", {}).get("phase") == "Running", timeout=120
    )
    first = running["status"]["plan"]["nodes"]
    assert first == "first"
    pod = agent_pods(real_cluster, ns)[first]
    if how.startswith("kill"):
        os.kill(agent_host_pid(real_cluster, pod), 9)
    else:
        # One second to stop: the program dies with the pod rather than finishing.
        name_ = pod["metadata"]["name"]
        real_cluster.kubectl("delete", "pod", "-n", ns, name_, "--grace-period=1", "--wait=false")
    killed = time.monotonic()
    done = real_cluster.wait_for("djob", name, ns, succeeded, timeout=300)
    finished = time.monotonic()
    status = done["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    # Killed while running: one re-plan, so the program ran once more, on the second
    # attempt (the killed process's run died with it); the result is whole.
    assert status["attempt"] == 2, status
    [reroute] = status["reroutes"]
    assert reroute["resource"] == "QuantumNode/first"
    assert status["plan"]["nodes"] in ("first", "spare")  # moved, or resumed once back
    assert sum(status["result"]["counts"].values()) == 150
    # No program ran twice: the killed attempt's never finished, the second attempt's ran
    # once. (The sidecars publish a run a moment after it ends.)
    deadline = time.monotonic() + 30
    while sum((ran := programs_completed(before, agent_runs(real_cluster, ns))).values()) < 1:
        assert time.monotonic() < deadline, ran
        time.sleep(1)
    assert sum(ran.values()) == 1, ran
    print(
        f"{how}: {first} -> {status['plan']['nodes']} ({reroute['reason']}); programs run {ran};"
        f" nodes ready after {ready - began:.1f}s, killed {killed - ready:.1f}s later,"
        f" done {finished - killed:.1f}s after the kill"
    )


def test_a_job_too_wide_for_its_agent_pods_memory_fails_saying_why_and_the_pod_runs_on(
    real_cluster: Cluster, operator_release: Release
) -> None:
    """An agent pod's memory limit (2Gi) holds a 26-qubit state. Sized to the machine, Aer
    would start a 27-qubit one (2 GiB) and the kernel would end the pod; bounded to the
    pod's limit it refuses at once, the job fails with what it needs, the pod runs on."""
    ns = operator_release.watched
    name = f"wide-{uuid.uuid4().hex[:4]}"
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": 27},
    }
    qasm = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[27];
creg c[27];
rx(0.3) q;
measure q -> c;
"""
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"shots": 10, "strategy": "single", "circuit": {"qasm": qasm}},
    }
    real_cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(node))
    try:
        real_cluster.wait_for(
            "qn", name, ns, lambda o: o.get("status", {}).get("phase") == "Ready", timeout=240
        )
        real_cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(job))
        status = real_cluster.wait_for("djob", name, ns, succeeded, timeout=240)["status"]
        assert status["phase"] == "Failed", status
        assert "Insufficient memory" in status["message"], status["message"]
        assert "max memory: 1024M" in status["message"], status["message"]
        pod = agent_pods(real_cluster, ns)[name]
        agent = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "qpu-agent")
        assert agent["restartCount"] == 0 and agent["ready"], agent
    finally:
        real_cluster.kubectl("delete", "djob,qn", name, "-n", ns, "--wait=false", check=False)


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with the dashboard variables filled in) of every panel."""
    queries = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in (
                    ("__rate_interval", "1m"),
                    ("__range", "1h"),
                    ("namespace", ".*"),
                    ("node", ".*"),
                    ("link", ".*"),
                ):
                    expr = expr.replace("${" + var + "}", value).replace("$" + var, value)
                queries.append((path.stem, panel.get("title", ""), expr))
    return queries


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = json.loads(get_json(url))
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


@pytest.fixture(scope="module")
def prometheus(
    real_cluster: Cluster, operator_release: Release, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Debian's Prometheus discovering the operator and the telemetry sidecars through
    kubernetes_sd_configs against this API server; its base URL."""
    import socket

    # Built by hack/node-tools.sh: Debian's prometheus leaves Kubernetes discovery out.
    binary = str(REPO / ".tools" / "bin" / "prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    pki = real_cluster.cp.pki
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(CHART / "rules" / "qorch-alerts.yaml")],
        "scrape_configs": [
            {
                "job_name": "qorch",
                # The pods' own labels (namespace, node, link) are the dashboards' labels.
                "honor_labels": True,
                "kubernetes_sd_configs": [
                    {
                        "role": "pod",
                        "api_server": real_cluster.cp.url,
                        "namespaces": {
                            "names": [
                                operator_release.system,
                                operator_release.watched,
                                operator_release.faults,
                            ]
                        },
                        "tls_config": {
                            "ca_file": str(pki / "ca.crt"),
                            "cert_file": str(pki / "admin.crt"),
                            "key_file": str(pki / "admin.key"),
                        },
                    }
                ],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "metrics",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_name"],
                        "target_label": "pod",
                    },
                ],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_prometheus_scrapes_the_pods_and_every_dashboard_panel_has_data(
    operator_release: Release, prometheus: str
) -> None:
    """Prometheus discovers the operator and the telemetry sidecars, scrapes them over the
    pod network, loads the chart's alert rules, and every panel query of the three
    dashboards evaluates and has a series: the counters of events this scenario does not
    cause (no job fails or is rejected, no teleport, no impostor on the channel) are
    exported at 0 from the start."""
    base = prometheus
    wait_http(f"{base}/-/ready", timeout=60)
    deadline = time.monotonic() + 90
    while True:
        targets = json.loads(get_json(f"{base}/api/v1/targets"))["data"]["activeTargets"]
        up = {t["labels"].get("pod", "") for t in targets if t["health"] == "up"}
        operator_up = any(p.startswith(operator_release.system) for p in up)
        agents_up = sum(1 for p in up if p.startswith("qpu-"))
        if operator_up and agents_up >= 2:
            break
        assert time.monotonic() < deadline, json.dumps(targets)[:3000]
        time.sleep(1)
    # Every rule evaluated once (the slowest group runs every 30 s), and without error.
    while True:
        groups = json.loads(get_json(f"{base}/api/v1/rules"))["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r["health"] != "unknown" for r in rules):
            break
        assert time.monotonic() < deadline + 60, rules
        time.sleep(1)
    assert [r for r in rules if r["health"] != "ok"] == []
    assert any(r["type"] == "alerting" for r in rules)
    queries = panel_queries()
    assert len(queries) > 40
    # Rates need two samples a few seconds apart in their window: Prometheus started with
    # the operator's test, minutes ago, and scrapes every 2 s.
    empty = [f"{d}/{title}: {expr}" for d, title, expr in queries if not prom_query(base, expr)]
    assert empty == [], "\n".join(empty)
