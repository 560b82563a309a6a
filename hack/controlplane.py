#!/usr/bin/env python3
"""A local Kubernetes control plane for tests and development.

etcd and kube-apiserver (plus, unless ``pods=False``, kube-controller-manager,
kube-scheduler and kwok with two fake edge-site Nodes) run on 127.0.0.1 from
the binaries that ``make tools`` (hack/build-tools.sh) links into .tools/bin.
Everything lives in one state dir: pki/, etcd/, logs/<name>.log, pids.json
and an admin kubeconfig (client certificate in group system:masters).

    from controlplane import ControlPlane
    with ControlPlane(tmp_path / "cluster") as cp:
        subprocess.run(["kubectl", "get", "nodes"], env=cp.env(), check=True)

With ``real_sites`` (CLI: ``up --real-nodes``), those sites get real nodes
instead of kwok ones: containerd + kubelet + kube-proxy each, see realnode.py.

CLI: python hack/controlplane.py up [--no-pods] [--real-nodes] | down | status
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from realnode import API_SERVICE_IP, NodeUnavailable, RealNodes, build_image  # noqa: E402

# Fake edge sites: one kwok Node per zone.
SITES = ("site-a", "site-b")
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    pass


# --- PKI ---------------------------------------------------------------------
# EC P-256 everywhere: generating keys is instant, unlike RSA.


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    org: str | None = None,
    server: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    subject = x509.Name(attrs)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate clock skew
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if issuer is None:  # self-signed CA
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names + (sans or [])), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _free_ports(n: int) -> list[int]:
    # Hold all sockets open together so the kernel hands out n distinct ports.
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- processes ---------------------------------------------------------------


def _cmdline0(pid: int) -> str | None:
    """argv[0] of a live, non-zombie process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, IndexError):
        return None


def _signal(pid: int, sig: int) -> None:
    # Each process leads its own session (start_new_session), so its group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ControlPlane:
    """etcd + kube-apiserver (+ controller-manager, scheduler, kwok) on loopback."""

    def __init__(
        self,
        state_dir: Path | None = None,
        tools_dir: Path | None = None,
        real_sites: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = Path(state_dir or REPO / ".cluster").resolve()
        self.tools_dir = Path(tools_dir or REPO / ".tools" / "bin").resolve()
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.pids_file = self.state_dir / "pids.json"
        self.url = ""  # https://127.0.0.1:<port>, set by start()
        # Kill the children if this process dies (PR_SET_PDEATHSIG), so a crashed
        # test run leaves nothing behind. The kernel ties that to the thread that
        # forked, hence main thread only; the CLI's detached `up` turns it off.
        self.die_with_parent = (
            _prctl is not None and threading.current_thread() is threading.main_thread()
        )
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # Sites served by real nodes (hack/realnode.py) instead of kwok, and the
        # OCI archives (path, image name) imported into their containerd.
        self.real_sites = real_sites
        self.images: list[tuple[str, str]] = []
        self.nodes: RealNodes | None = RealNodes(self, real_sites) if real_sites else None
        self.api_port = 0

    # -- public API --

    def start(self, pods: bool = True) -> ControlPlane:
        """Start a fresh cluster; pods=False runs only etcd + kube-apiserver."""
        names = ["etcd", "kube-apiserver"]
        if pods:
            names += ["kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"]
        for name in names:
            if not (self.tools_dir / name).exists():
                raise ControlPlaneError(
                    f"{self.tools_dir / name} not found: run `make tools` "
                    "(bash hack/build-tools.sh) first"
                )
        if self.nodes:
            self.nodes.check()
        self.stop()  # leftovers of an earlier run in the same state dir
        for sub in ("etcd", "pki", "logs", "kwok"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        self.logs.mkdir(parents=True)
        try:
            self._start(pods)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every recorded process, SIGKILL what is left after timeout."""
        # Real nodes first, while the API server can still delete their pods.
        if (self.state_dir / "nodes.json").exists():
            if not self.url and self.kubeconfig.exists():
                config = yaml.safe_load(self.kubeconfig.read_text())
                self.url = config["clusters"][0]["cluster"]["server"]
            RealNodes.teardown(self.state_dir, self._api if self.url else None)
        pids = {name: p.pid for name, p in self._procs.items()} or self._recorded()
        adopted = [] if self._procs else list(pids.values())
        # etcd goes last: kube-apiserver's shutdown hangs while etcd is gone.
        later = {n: pids.pop(n) for n in ["etcd"] if n in pids}
        for group in (pids, later):
            for pid in group.values():
                _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for name, pid in group.items():
                if not self._wait_exit(name, pid, deadline):
                    _signal(pid, signal.SIGKILL)
                    if not self._wait_exit(name, pid, time.monotonic() + 5):
                        raise ControlPlaneError(f"{name} (pid {pid}) survived SIGKILL")
        # Processes of a detached `up` stay zombies until init reaps them a moment
        # later; wait for that, so that a `pgrep` right after `down` finds nothing.
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() for pid in adopted) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._procs = {}
        self.pids_file.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG set and the tools (kubectl, helm) first on PATH."""
        path = os.pathsep.join([str(self.tools_dir), os.environ.get("PATH", "")])
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def running(self) -> dict[str, int]:
        """Recorded processes that are still alive: name -> pid."""
        return self._recorded()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- startup --

    def _start(self, pods: bool) -> None:
        if self.nodes:
            self.nodes.setup_network()
        self._write_pki()
        etcd_port, peer_port, api_port, kcm_port, sched_port = _free_ports(5)
        self.api_port = api_port
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.url = f"https://127.0.0.1:{api_port}"

        self._spawn(
            "etcd",
            "--name=qorch",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=qorch={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: skip fsync, much faster on CI disks
            "--log-level=warn",
        )
        self._wait(
            "etcd /health",
            lambda: b'"true"' in self._get(f"{etcd_url}/health", tls=False),
            30,
            "etcd",
        )

        pki = self.pki
        # Flags of controller-runtime's envtest, with real TLS/RBAC material;
        # ServiceAccount admission only when a controller-manager creates the
        # default ServiceAccounts (envtest disables it for the same reason).
        self._spawn(
            "kube-apiserver",
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--etcd-servers={etcd_url}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--authorization-mode={'Node,RBAC' if self.nodes else 'RBAC'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            # logs/exec of kwok pods must go to loopback (the fake nodes' IP), never elsewhere.
            "--kubelet-preferred-address-types=InternalIP",
            *self._api_network_flags(),
            *([] if pods else ["--disable-admission-plugins=ServiceAccount"]),
        )
        self._write_kubeconfig(self.kubeconfig, "admin")
        self._wait(
            "/readyz", lambda: self._get(f"{self.url}/readyz") == b"ok", 90, "kube-apiserver"
        )
        if not pods:
            return

        def component_flags(name: str, port: int) -> list[str]:
            kubeconfig = pki / f"{name}.kubeconfig"
            self._write_kubeconfig(kubeconfig, name)
            return [
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
            ]

        self._spawn(
            "kube-controller-manager",
            *component_flags("kube-controller-manager", kcm_port),
            "--leader-elect=false",  # single instance: don't wait for a lease
            # Per-controller identities, as in real clusters.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            # Published as kube-root-ca.crt, for ServiceAccount token mounts.
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",  # CSRs get signed too
            f"--cluster-signing-key-file={pki / 'ca.key'}",
        )
        self._spawn(
            "kube-scheduler", *component_flags("kube-scheduler", sched_port), "--leader-elect=false"
        )
        kwok_home = self.state_dir / "kwok"
        kwok_home.mkdir()
        self._spawn(
            "kwok",
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.tools_dir / 'kwok-stages.yaml'}",  # from build-tools.sh
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--node-ip=127.0.0.1",
            "--cidr=10.244.0.1/16",  # fake pod IPs: recorded in status, never routed
            "--node-lease-duration-seconds=40",
            env={"HOME": str(kwok_home)},  # else kwok also loads ~/.kwok/kwok.yaml
        )
        for site in SITES:
            if site not in self.real_sites:
                self._api("POST", "/api/v1/nodes", self._node(site))
        self._wait("the fake nodes to be Ready", self._nodes_ready, 60, "kwok")
        if self.nodes:
            self.nodes.start()
        # Pods can't be created in a namespace before its default ServiceAccount.
        sa = "/api/v1/namespaces/default/serviceaccounts/default"
        self._wait(
            "the default ServiceAccount",
            lambda: bool(self._api("GET", sa)),
            60,
            "kube-controller-manager",
        )

    @staticmethod
    def _node(site: str) -> dict[str, Any]:
        name = f"kwok-{site}"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION: "fake"},
                "labels": {
                    "topology.kubernetes.io/zone": site,
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
        }

    def _nodes_ready(self) -> bool:
        nodes = self._api("GET", "/api/v1/nodes")["items"]
        ready = [
            n["metadata"]["name"]
            for n in nodes
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        ]
        return len(ready) >= len(SITES) - len(self.real_sites)

    def _write_pki(self) -> None:
        self.pki.mkdir(parents=True)
        files: dict[str, bytes] = {}
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("qorch-test-ca", ca_key)
        files |= {"ca.crt": _cert_pem(ca), "ca.key": _key_pem(ca_key)}
        # One serving cert (127.0.0.1, localhost) for all components; clients
        # are told apart by CN (user) and O (group), as RBAC sees them.
        self._ca = (ca, ca_key)
        certs = {
            "serving": ("kube-apiserver", None, True),
            "admin": ("admin", "system:masters", False),
            "kube-controller-manager": ("system:kube-controller-manager", None, False),
            "kube-scheduler": ("system:kube-scheduler", None, False),
        }
        for name, (cn, org, server) in certs.items():
            key = ec.generate_private_key(ec.SECP256R1())
            sans = self._api_sans() if name == "serving" else None
            cert = _cert(cn, key, issuer=(ca, ca_key), org=org, server=server, sans=sans)
            files |= {f"{name}.crt": _cert_pem(cert), f"{name}.key": _key_pem(key)}
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files["sa.key"] = _key_pem(sa_key)
        files["sa.pub"] = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for name, data in files.items():
            path = self.pki / name
            path.write_bytes(data)
            path.chmod(0o600)
        if self.nodes:
            self._issue("kubelet-client", "kube-apiserver-kubelet-client", "system:masters")

    def _api_sans(self) -> list[x509.GeneralName]:
        """The names pods and real nodes reach the API server by, besides loopback."""
        if not self.nodes:
            return []
        ips = [self.nodes.api_ip, API_SERVICE_IP]
        dns = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        dns.append("kubernetes.default.svc.cluster.local")
        return [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [
            x509.DNSName(d) for d in dns
        ]

    def _api_network_flags(self) -> list[str]:
        if not self.nodes:
            # The `kubernetes` Service can't have a loopback endpoint (validation
            # rejects it every 10s); nothing in-cluster could reach it anyway.
            return ["--endpoint-reconciler-type=none"]
        # Real nodes live in their own network namespaces, behind veths: the API
        # server listens on all addresses and advertises the host end of the first
        # node's veth as the `kubernetes` Service's endpoint. Kubelets are authorized
        # as nodes, and the API server authenticates to them for logs and exec.
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.nodes.api_ip}",
            f"--kubelet-client-certificate={self.pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={self.pki / 'kubelet-client.key'}",
        ]

    def _issue(
        self,
        name: str,
        cn: str,
        org: str | None,
        server: bool = False,
        ips: list[str] | None = None,
    ) -> None:
        """A certificate from the cluster CA, as pki/<name>.crt and .key."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        cert = _cert(cn, key, issuer=self._ca, org=org, server=server, sans=sans)
        for suffix, data in ((".crt", _cert_pem(cert)), (".key", _key_pem(key))):
            path = self.pki / f"{name}{suffix}"
            path.write_bytes(data)
            path.chmod(0o600)

    def _write_kubeconfig(self, path: Path, user: str, server: str | None = None) -> None:
        def b64(name: str) -> str:
            return base64.b64encode((self.pki / name).read_bytes()).decode()

        cluster = {"server": server or self.url, "certificate-authority-data": b64("ca.crt")}
        creds = {
            "client-certificate-data": b64(f"{user}.crt"),
            "client-key-data": b64(f"{user}.key"),
        }
        context = {"cluster": "qorch", "user": user, "namespace": "default"}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "qorch", "cluster": cluster}],
            "users": [{"name": user, "user": creds}],
            "contexts": [{"name": "qorch", "context": context}],
            "current-context": "qorch",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    # -- process handling --

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        binary = str(self.tools_dir / name)
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own copy of the fd
            self._procs[name] = subprocess.Popen(
                [binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # survives the CLI's exit and terminal signals
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        record = {
            n: {"pid": p.pid, "argv0": str(self.tools_dir / n)} for n, p in self._procs.items()
        }
        self.pids_file.write_text(json.dumps(record, indent=2) + "\n")

    def _recorded(self) -> dict[str, int]:
        try:
            record = json.loads(self.pids_file.read_text())
        except (OSError, ValueError):
            return {}
        # Trust a pid only while it still runs the binary we started (pids get reused).
        return {n: r["pid"] for n, r in record.items() if _cmdline0(r["pid"]) == r["argv0"]}

    def _wait_exit(self, name: str, pid: int, deadline: float) -> bool:
        proc = self._procs.get(name)
        while time.monotonic() < deadline:
            if (proc.poll() is not None) if proc else _cmdline0(pid) is None:
                return True
            time.sleep(0.05)
        return False

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                log = self.logs / f"{name}.log"
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}; last lines of {log}:\n{_tail(log)}"
                )

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float, log: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if ready():
                    return
            except (OSError, ValueError, KeyError):
                pass  # not up yet
            if time.monotonic() > deadline:
                path = self.logs / f"{log}.log"
                raise ControlPlaneError(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"last lines of {path}:\n{_tail(path)}"
                )
            time.sleep(0.2)

    # -- HTTP, as admin, never through an HTTP(S)_PROXY from the environment --

    def _open(self, req: str | urllib.request.Request, tls: bool = True) -> bytes:
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if tls:
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        with urllib.request.build_opener(*handlers).open(req, timeout=10) as resp:
            return bytes(resp.read())

    def _get(self, url: str, tls: bool = True) -> bytes:
        return self._open(url, tls)

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/merge-patch+json"
                if method == "PATCH"
                else "application/json",
                "Accept": "application/json",
            },
        )
        return json.loads(self._open(req))


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG. SIGKILL, as a gracefully stopping kube-apiserver
    # hangs once etcd (signalled at the same moment) is gone.
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)


# Resolved before any fork: the child should only make the call. Linux only.
_prctl = getattr(ctypes.CDLL(None), "prctl", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, help="default: <repo>/.cluster")
    parser.add_argument("--tools-dir", type=Path, help="default: <repo>/.tools/bin")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a fresh cluster in the background, print its kubeconfig")
    up.add_argument("--no-pods", action="store_true", help="only etcd + kube-apiserver")
    up.add_argument(
        "--real-nodes",
        action="store_true",
        help="real nodes (containerd + kubelet) for the edge sites instead of kwok",
    )
    sub.add_parser("down", help="stop the cluster recorded in the state dir")
    sub.add_parser("status", help="show the recorded processes and /readyz")
    args = parser.parse_args(argv)

    real = SITES if args.command == "up" and args.real_nodes else ()
    cp = ControlPlane(args.state_dir, args.tools_dir, real_sites=real)
    if args.command == "up":
        if cp.running():
            print(f"already running in {cp.state_dir}; run `down` first", file=sys.stderr)
            return 1
        cp.die_with_parent = False
        started = time.monotonic()
        if cp.nodes:
            cp.images.append(build_image("qorch"))
        try:
            cp.start(pods=not args.no_pods)
        except (ControlPlaneError, NodeUnavailable, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        took = time.monotonic() - started
        if cp.nodes:
            print(f"qorch image: {cp.images[-1][1]}", file=sys.stderr)
        print(f"control plane up at {cp.url} in {took:.1f}s; logs in {cp.logs}", file=sys.stderr)
        print(cp.kubeconfig)
    elif args.command == "down":
        cp.stop()
        print("control plane stopped", file=sys.stderr)
    else:
        running = cp.running()
        for name, pid in running.items():
            print(f"{name:<24} pid {pid}")
        if not running:
            print(f"not running (state dir {cp.state_dir})")
            return 1
        config = yaml.safe_load(cp.kubeconfig.read_text())
        cp.url = config["clusters"][0]["cluster"]["server"]
        try:
            readyz = cp._get(cp.url + "/readyz").decode()
        except OSError as e:
            readyz = f"unreachable ({e})"
        print(f"{cp.url} /readyz: {readyz}\nKUBECONFIG={cp.kubeconfig}")
        return 0 if readyz == "ok" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
