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
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="module")
def operator_release(real_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """The chart installed with the locally built image; the operator watches `quantum`."""
    suffix = uuid.uuid4().hex[:6]
    system, watched = f"qorch-{suffix}", f"quantum-{suffix}"
    for ns in (system, watched):
        real_cluster.kubectl("create", "namespace", ns)
        real_cluster.kubectl(
            "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted"
        )
    repo_name, tag = image(real_cluster).rsplit(":", 1)
    helm(
        "install",
        system,
        str(CHART),
        "--namespace",
        system,
        "--wait",
        "--timeout=240s",
        f"--set=image.repository={repo_name}",
        f"--set=image.tag={tag}",
        "--set=image.pullPolicy=Never",
        f"--set=watch.namespaces={{{watched}}}",
        "--set=operator.nodeCheckSeconds=2",
        "--set=operator.linkCheckSeconds=2",
        env=real_cluster.env,
        timeout=300,
    )
    yield system, watched
    helm("uninstall", system, "--namespace", system, "--wait", env=real_cluster.env, check=False)


def test_operator_pod_is_ready_and_serves_metrics_and_liveness(
    real_cluster: Cluster, operator_release: tuple[str, str]
) -> None:
    system, _ = operator_release
    pods = json.loads(
        real_cluster.kubectl(
            "get", "pods", "-n", system, "-l", "app.kubernetes.io/component=operator", "-o", "json"
        )
    )["items"]
    assert len(pods) >= 1
    pod = pods[0]
    assert pod["spec"]["nodeName"].startswith("node-")
    ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    ctx = pod["spec"]["containers"][0]["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    ip = pod["status"]["podIP"]
    metrics = wait_http(f"http://{ip}:9090/metrics")
    assert "qorch_" in metrics
    assert wait_http(f"http://{ip}:8081/healthz")
