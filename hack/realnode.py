"""Real Kubernetes nodes for the local control plane: containerd + kubelet + kube-proxy.

Each node (one per edge site) runs in its own network namespace, joined to the
host by a veth pair, with its own containerd (Debian's, runc, CNI bridge +
host-local + loopback + portmap), kubelet and kube-proxy; the first node also
runs CoreDNS for Service names. Pods on any node reach the API server through
the `kubernetes` Service, whose endpoint is the host end of the first node's veth.

Everything a node creates lives in the cluster's state dir, its own cgroup
subtree, its network namespace and the host routes to its pod subnet, all
recorded in nodes.json, so teardown() removes it even after a crash:
processes, mounts, network namespaces (with their veths, bridges and iptables
rules), cgroups. The kernel settings the kubelet changes are restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from controlplane import ControlPlane

CNI_BIN = Path("/usr/lib/cni")
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_CIDR = "10.128.0.0/9"  # each node's pod subnet is one /24 of it
CGROUP = Path("/sys/fs/cgroup")
# The kubelet sets these host-wide (protectKernelDefaults: false); teardown puts them back.
KERNEL_TUNABLES = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
HOST_COMMANDS = (
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "nsenter",
    "ip",
    "iptables",
)
NODE_TOOLS = ("kubelet", "kube-proxy", "coredns", "prometheus")


class NodeUnavailable(RuntimeError):
    """This machine cannot run a real node; the message names what is missing."""


def _run(*args: str, timeout: float = 30, check: bool = True) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def missing_capabilities(tools_dir: Path) -> list[str]:
    """What this machine lacks for a real node; empty when it has everything."""
    missing: list[str] = []
    if os.geteuid() != 0:
        return ["root (the kubelet, containerd and network namespaces need it)"]
    missing += [f"command {c}" for c in HOST_COMMANDS if shutil.which(c) is None]
    missing += [
        f"CNI plugin {CNI_BIN / p}"
        for p in ("bridge", "host-local", "loopback", "portmap")
        if not (CNI_BIN / p).exists()
    ]
    missing += [
        f"{tools_dir / t} (REAL_NODE=1 bash hack/build-tools.sh)"
        for t in NODE_TOOLS
        if not (tools_dir / t).exists()
    ]
    probe = f"qorch-probe-{uuid.uuid4().hex[:8]}"
    try:
        (CGROUP / "memory" / probe).mkdir()
        (CGROUP / "memory" / probe).rmdir()
    except OSError as e:
        missing.append(f"a writable cgroup v1 memory hierarchy ({e.strerror})")
    if shutil.which("ip"):
        try:
            _run("ip", "netns", "add", probe, timeout=10)
            _run("ip", "netns", "delete", probe, timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            missing.append(f"network namespaces ({e})")
    return missing


def build_image(kind: str = "qorch") -> tuple[str, str]:
    """(OCI archive, image name) from hack/build-image.sh, cached by its inputs."""
    script = Path(__file__).resolve().parent / "build-image.sh"
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    proc = subprocess.run(
        ["bash", str(script), kind], capture_output=True, text=True, timeout=1800, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {kind} failed:\n{proc.stderr[-3000:]}")
    archive, name = proc.stdout.split()[-2:]
    return archive, name


class RealNodes:
    """The real nodes of one control plane, one per site."""

    def __init__(self, cp: ControlPlane, sites: tuple[str, ...]) -> None:
        self.cp = cp
        self.sites = sites
        self.root = cp.state_dir / "nodes"
        self.record_file = cp.state_dir / "nodes.json"
        # Names and subnets derive from the state dir, so clusters in other state dirs
        # on the same machine get their own.
        digest = hashlib.sha256(str(cp.state_dir).encode()).hexdigest()
        self.id = digest[:6]
        self.octet = int(digest[6:10], 16) % 250 + 1
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- addressing --

    def netns(self, i: int) -> str:
        return f"qorch-{self.id}-{i}"

    def host_veth(self, i: int) -> str:
        return f"q{self.id}h{i}"

    def host_ip(self, i: int) -> str:
        return f"172.31.{self.octet}.{4 * i + 1}"

    def node_ip(self, i: int) -> str:
        return f"172.31.{self.octet}.{4 * i + 2}"

    def pod_subnet(self, i: int) -> str:
        return f"10.{128 + i}.{self.octet}.0/24"

    def node_name(self, site: str) -> str:
        return f"node-{site}"

    @property
    def api_ip(self) -> str:
        """The address pods and kubelets reach the API server at."""
        return self.host_ip(0)

    def cgroup_root(self, i: int) -> str:
        return f"qorch-{self.id}-{i}"

    # -- lifecycle --

    def check(self) -> None:
        missing = missing_capabilities(self.cp.tools_dir)
        if missing:
            raise NodeUnavailable("real node unavailable here: missing " + "; ".join(missing))

    def setup_network(self) -> None:
        """Network namespaces, veths and host routes; before the API server starts."""
        record: dict[str, Any] = {
            "netns": [],
            "host_veths": [],
            "cgroups": [],
            "sockets": [],
            "pids": {},
            "kernel": {k: Path("/proc/sys", k).read_text().strip() for k in KERNEL_TUNABLES},
            "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        }
        self.record_file.write_text(json.dumps(record, indent=2))
        for i, _ in enumerate(self.sites):
            ns, veth = self.netns(i), self.host_veth(i)
            if Path("/run/netns", ns).exists():
                raise NodeUnavailable(f"network namespace {ns} exists: run `make cluster-down`")
            _run("ip", "netns", "add", ns)
            self._record("netns", ns)
            _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._record("host_veths", veth)
            _run("ip", "addr", "add", f"{self.host_ip(i)}/30", "dev", veth)
            _run("ip", "link", "set", veth, "up")
            inside = ("ip", "netns", "exec", ns)
            _run(*inside, "ip", "addr", "add", f"{self.node_ip(i)}/30", "dev", "eth0")
            _run(*inside, "ip", "link", "set", "eth0", "up")
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "route", "add", "default", "via", self.host_ip(i))
            _run(*inside, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _run("ip", "route", "add", self.pod_subnet(i), "via", self.node_ip(i), "dev", veth)
        # Pod to pod across nodes, and to CoreDNS on the first node, goes through the host.
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def start(self) -> None:
        if not any(name.startswith("qorch.local/pause:") for _, name in self.cp.images):
            self.cp.images.insert(0, build_image("pause"))
        self._write_rbac()
        # Processes start from this thread (PR_SET_PDEATHSIG is per thread); the
        # image imports, the slow part, run side by side.
        for i, site in enumerate(self.sites):
            self._start_containerd(i, site)
        with ThreadPoolExecutor(len(self.sites)) as pool:
            list(pool.map(self._import_images, self.sites))
        for i, site in enumerate(self.sites):
            self._start_kubelet(i, site)
        self._start_dns()
        self._wait_proc("the real nodes to be Ready", self._ready, 120, f"kubelet-{self.sites[0]}")

    # -- teardown --

    @classmethod
    def teardown(cls, state_dir: Path, api: Any = None) -> None:
        """Remove everything recorded in state_dir/nodes.json; safe to repeat."""
        record_file = state_dir / "nodes.json"
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            return
        started = time.monotonic()
        if api is not None:
            with contextlib.suppress(Exception):
                cls._drain(api, record)
        drained = time.monotonic()
        _stop_pids({e["pid"]: e["argv0"] for e in record.get("pids", {}).values()})
        stopped = time.monotonic()
        sockets = record.get("sockets", [])
        for pid in _pids_matching(lambda cmd: any(s in cmd for s in sockets) if sockets else False):
            _kill(pid)
        for cg in record.get("cgroups", []):
            for pid in _cgroup_pids(cg):
                _kill(pid)
        _unmount_under(state_dir)
        for ns in record.get("netns", []):
            _run("ip", "netns", "delete", ns, check=False)
        for veth in record.get("host_veths", []):
            if Path("/sys/class/net", veth).exists():
                _run("ip", "link", "delete", veth, check=False)
        swept = time.monotonic()
        for cg in record.get("cgroups", []):
            _remove_cgroup(cg)
        uncgrouped = time.monotonic()
        for key, value in record.get("kernel", {}).items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)
        with contextlib.suppress(OSError):
            Path("/proc/sys/net/ipv4/ip_forward").write_text(record.get("ip_forward", "0"))
        shutil.rmtree(state_dir / "nodes", ignore_errors=True)
        removed = time.monotonic()
        record_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError), open(state_dir / "logs" / "teardown.log", "a") as log:
            took = time.monotonic() - started
            log.write(
                f"pods drained in {drained - started:.1f}s, processes stopped in "
                f"{stopped - drained:.1f}s, mounts and netns gone in {swept - stopped:.1f}s, "
                f"cgroups in {uncgrouped - swept:.1f}s, files in {removed - uncgrouped:.1f}s, "
                f"all removed in {took:.1f}s\n"
            )

    @staticmethod
    def _drain(api: Any, record: dict[str, Any]) -> None:
        """Delete the nodes' pods through the API and wait until their sandboxes are gone,
        so the kubelets tear pod networking down the normal way (CNI DEL)."""
        nodes = record.get("nodes", [])
        for node in nodes:
            api("PATCH", f"/api/v1/nodes/{node}", {"spec": {"unschedulable": True}})
        pods = api("GET", "/api/v1/pods")["items"]
        for pod in pods:
            if pod["spec"].get("nodeName") in nodes:
                meta = pod["metadata"]
                path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                with contextlib.suppress(Exception):
                    api("DELETE", path, {"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 45
        for sock in record.get("sockets", []):
            while time.monotonic() < deadline:
                out = _run(
                    "ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls", "-q", timeout=10, check=False
                )
                if not out.strip():
                    break
                time.sleep(0.5)

    # -- internals --

    def _record(self, key: str, value: Any, name: str | None = None) -> None:
        record = json.loads(self.record_file.read_text())
        if name is None:
            record[key].append(value)
        else:
            record[key][name] = value
        self.record_file.write_text(json.dumps(record, indent=2))

    def _spawn(
        self, name: str, netns: str, argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        from controlplane import _die_with_parent as die_with_parent

        binary = shutil.which(argv[0]) or argv[0]
        log = self.cp.logs / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{netns}", "--", binary, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=die_with_parent if self.cp.die_with_parent else None,
            )
        self.procs[name] = proc
        self._record("pids", {"pid": proc.pid, "argv0": binary}, name)

    def _wait_proc(self, what: str, ready: Any, timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for proc_name, proc in self.procs.items():
                if proc.poll() is not None:
                    log = self.cp.logs / f"{proc_name}.log"
                    raise RuntimeError(
                        f"{proc_name} exited ({proc.returncode}); see {log}:\n{_tail(log)}"
                    )
            log = self.cp.logs / f"{name}.log"
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {log}:\n{_tail(log)}")
            time.sleep(0.2)

    def _kubeconfig(self, name: str, cn: str, org: str | None) -> Path:
        path = self.cp.pki / f"{name}.kubeconfig"
        self.cp._issue(name, cn, org)
        self.cp._write_kubeconfig(path, name, server=f"https://{self.api_ip}:{self.cp.api_port}")
        return path

    def _write_rbac(self) -> None:
        # Kubelets are authorized by the Node authorizer and, for what it leaves
        # to RBAC (their SubjectAccessReviews), by the system:node role.
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "qorch-test:nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
            ],
        }
        self.cp._api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)

    def _start_containerd(self, i: int, site: str) -> None:
        name, ns = self.node_name(site), self.netns(i)
        d = self.root / site
        for sub in ("containerd", "cni", "ipam", "kubelet", "pods", "runc"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        record = json.loads(self.record_file.read_text())
        record.setdefault("nodes", []).append(name)
        self.record_file.write_text(json.dumps(record, indent=2))

        # containerd, its state and sockets in the state dir.
        sock = str(d / "containerd.sock")
        self._record("sockets", sock)
        config = CONTAINERD_CONFIG.format(
            root=d / "containerd" / "root",
            state=d / "containerd" / "state",
            sock=sock,
            runc_root=d / "runc",
            cni_conf=d / "cni",
            cni_bin=CNI_BIN,
        )
        (d / "containerd.toml").write_text(config)
        cni = {
            "cniVersion": "1.0.0",
            "name": f"qorch-{site}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(d / "ipam"),
                        "ranges": [[{"subnet": self.pod_subnet(i)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (d / "cni" / "10-qorch.conflist").write_text(json.dumps(cni, indent=2))
        self._spawn(
            f"containerd-{site}", ns, ["containerd", "--config", str(d / "containerd.toml")]
        )
        self._wait_proc(
            "containerd",
            lambda: _run("ctr", "-a", sock, "version", timeout=10, check=False).find("Server") >= 0,
            60,
            f"containerd-{site}",
        )

    def _import_images(self, site: str) -> None:
        sock = str(self.root / site / "containerd.sock")
        for archive, _name in self.cp.images:
            _run("ctr", "-a", sock, "-n", "k8s.io", "images", "import", archive, timeout=600)

    def _start_kubelet(self, i: int, site: str) -> None:
        name, ns, d = self.node_name(site), self.netns(i), self.root / site
        sock = str(d / "containerd.sock")
        # kubelet: a client certificate for the Node authorizer, a serving certificate
        # for the API server's logs/exec calls.
        kubeconfig = self._kubeconfig(f"kubelet-{site}", f"system:node:{name}", "system:nodes")
        self.cp._issue(f"kubelet-{site}-serving", name, None, server=True, ips=[self.node_ip(i)])
        cgroup_root = self.cgroup_root(i)
        self._record("cgroups", cgroup_root)
        _make_cgroup(cgroup_root)
        resolv = d / "resolv.conf"
        resolv.write_text("options ndots:1\n")
        kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine's cgroups are v1, which Kubernetes 1.35+ refuses unless told
            # otherwise; cgroup v2 is not available here to switch to.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{cgroup_root}",
            "containerRuntimeEndpoint": f"unix://{sock}",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cp.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(self.cp.pki / f"kubelet-{site}-serving.crt"),
            "tlsPrivateKeyFile": str(self.cp.pki / f"kubelet-{site}-serving.key"),
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "podLogsDir": str(d / "pods"),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "failSwapOn": False,
            # Only locally imported images, which could never be pulled back.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "nodeStatusUpdateFrequency": "4s",
            # A mounted ConfigMap's change reaches the pod at its next sync: 10 s here rather
            # than a minute, so that a link state added after its agents started is taken
            # up within a test's patience.
            "syncFrequency": "10s",
            "serializeImagePulls": False,
        }
        (d / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config))
        labels = f"topology.kubernetes.io/zone={site},qorch.dev/site={site},type=real"
        self._spawn(
            f"kubelet-{site}",
            ns,
            [
                str(self.cp.tools_dir / "kubelet"),
                f"--config={d / 'kubelet.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={d / 'kubelet'}",
                f"--hostname-override={name}",
                f"--node-ip={self.node_ip(i)}",
                f"--node-labels={labels}",
                "--v=1",
            ],
        )
        proxy_kubeconfig = self._kubeconfig(f"kube-proxy-{site}", "system:kube-proxy", None)
        proxy_config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(proxy_kubeconfig)},
            "mode": "iptables",
            "hostnameOverride": name,
            "clusterCIDR": CLUSTER_CIDR,
            # Pod -> Service -> pod on the same bridge: the reply must come back through
            # the node for the DNAT to be undone.
            "iptables": {"masqueradeAll": True},
            "metricsBindAddress": "127.0.0.1:10249",
            "healthzBindAddress": "127.0.0.1:10256",
            # conntrack limits are host-wide: leave them alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        (d / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy_config))
        self._spawn(
            f"kube-proxy-{site}",
            ns,
            [str(self.cp.tools_dir / "kube-proxy"), f"--config={d / 'kube-proxy.yaml'}", "--v=1"],
        )

    def _start_dns(self) -> None:
        """CoreDNS on the first node, behind the cluster DNS Service."""
        d = self.root / "coredns"
        d.mkdir(parents=True, exist_ok=True)
        kubeconfig = self._kubeconfig("coredns", "system:coredns", None)
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "qorch-test:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces", "pods"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "qorch-test:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "qorch-test:coredns",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}
            ],
        }
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        self.cp._api("POST", f"{rbac}/clusterroles", role)
        self.cp._api("POST", f"{rbac}/clusterrolebindings", binding)
        corefile = d / "Corefile"
        corefile.write_text(
            f""".:1053 {{
    errors
    health 127.0.0.1:1054
    ready 127.0.0.1:1055
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} qorch
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""
        )
        self._spawn(
            "coredns", self.netns(0), [str(self.cp.tools_dir / "coredns"), "-conf", str(corefile)]
        )
        # A Service without a selector, its endpoint the first node's address.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 1053},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 1053},
                ],
            },
        }
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.node_ip(0)], "conditions": {"ready": True}}],
            "ports": [
                {"name": "dns", "port": 1053, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 1053, "protocol": "TCP"},
            ],
        }
        self.cp._api("POST", "/api/v1/namespaces/kube-system/services", service)
        self.cp._api(
            "POST", "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", slice_
        )

    def _ready(self) -> bool:
        nodes = {n["metadata"]["name"]: n for n in self.cp._api("GET", "/api/v1/nodes")["items"]}
        for site in self.sites:
            node = nodes.get(self.node_name(site))
            conditions = (node or {}).get("status", {}).get("conditions", [])
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return False
        return True


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "qorch.local/pause:3.10"
  # Pod network namespaces under the state dir, not /run/netns.
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE (as here) no process may lower its OOM score below its
  # parent's, which the kubelet asks for (-998 for sandboxes): keep at containerd's.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pids_matching(pred: Any) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and pred(_cmdline(int(p.name)))
    ]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int, argv0: str) -> bool:
    """pid runs argv0 and is no zombie (pids get reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        return False
    return _cmdline(pid).split(" ")[0] == argv0


def _stop_pids(pids: dict[int, str], timeout: float = 15) -> None:
    """SIGTERM all at once, SIGKILL what still runs after timeout."""
    for pid, argv0 in pids.items():
        if _alive(pid, argv0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for grace in (timeout, 5.0):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p, a) for p, a in pids.items()):
            time.sleep(0.1)
        for pid, argv0 in pids.items():
            if _alive(pid, argv0):
                _kill(pid)


def _hierarchies() -> list[Path]:
    return [p for p in CGROUP.iterdir() if p.is_dir() and not p.is_symlink()]


def _cgroup_pids(name: str) -> list[int]:
    pids: set[int] = set()
    for h in _hierarchies():
        for procs in (h / name).rglob("cgroup.procs") if (h / name).exists() else []:
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(x) for x in procs.read_text().split()}
    return sorted(pids)


def _make_cgroup(name: str) -> None:
    """The kubelet's cgroupRoot, which it wants to find in every hierarchy."""
    for h in _hierarchies():
        (h / name).mkdir(exist_ok=True)
        for f in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset admits no task
            if (h / f).exists():
                (h / name / f).write_text((h / f).read_text())


def _remove_cgroup(name: str) -> None:
    for h in _hierarchies():
        top = h / name
        if not top.exists():
            continue
        # Deepest first: a cgroup goes only once its children have.
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        deadline = time.monotonic() + 10
        while top.exists() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                top.rmdir()
            time.sleep(0.1)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return found


def _unmount_under(path: Path) -> None:
    for _ in range(5):
        targets = mounts_under(path)
        if not targets:
            return
        for target in sorted(targets, key=lambda t: -t.count("/")):
            _run("umount", "-l", target, check=False, timeout=10)
