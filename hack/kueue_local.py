#!/usr/bin/env python3
"""Kueue's controller as a local process against a local control plane (hack/controlplane.py).

Installed as Kueue's own manifests install it, with loopback in place of its Service:
- its CRDs (as `make tools` copies them from the module into .tools/bin/kueue-crds.yaml),
  with the conversion webhook its kustomize patches add, pointing at the local process;
- the namespace kueue-system and the Secret its internal certificate management reads
  (kueue-webhook-server-cert): a CA and a serving certificate made here, like the API
  server's, valid for the Service's DNS name and for 127.0.0.1, so the API server can call
  the process on loopback and Kueue's cert rotator finds the Secret valid and keeps it;
- the webhook configurations of its own API (kueue.x-k8s.io; the job integrations' webhooks
  for pods, Jobs, ... are left out), with `url` clientConfigs;
- a Configuration file (v1beta2) with DistributedJob as an external framework.

    from controlplane import ControlPlane
    from kueue_local import LocalKueue
    kueue = LocalKueue(cp).start()
    ...
    kueue.stop()
"""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAMESPACE = "kueue-system"
SERVICE = "kueue-webhook-service"
SECRET = "kueue-webhook-server-cert"
#: The CA name Kueue's cert rotator checks its CA against (pkg/util/cert).
CA_NAME = "kueue-ca"
#: The custom workload kind, as Configuration.integrations.externalFrameworks spells it.
EXTERNAL_FRAMEWORK = "DistributedJob.v1alpha1.qorch.dev"
#: CRDs that serve two versions and convert through the webhook (config/components/crd).
CONVERTED = ("clusterqueues", "cohorts", "localqueues", "multikueueclusters", "workloads")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def webhook_pki() -> dict[str, bytes]:
    """The Secret's four entries. The CA key is RSA in PKCS#1, the only form Kueue's cert
    rotator reads back; the CA names itself kueue-ca, as the rotator checks."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kueue"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CA_NAME)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(f"{SERVICE}.{NAMESPACE}.svc"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVICE)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return {
        "ca.crt": _pem(ca),
        "ca.key": ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        "tls.crt": _pem(cert),
        "tls.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }


class LocalKueue:
    """Kueue's manager as a child process; `start` installs what it needs first."""

    def __init__(self, cp: Any, state_dir: Path | None = None) -> None:
        self.cp = cp
        self.tools_dir = Path(cp.tools_dir)
        self.dir = Path(state_dir or cp.state_dir / "kueue")
        self.log = self.dir / "kueue.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.webhook_port = 0
        self.health_port = 0

    # -- kubectl --------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [str(self.tools_dir / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.cp.env(),
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        text = "\n---\n".join(json.dumps(d) for d in docs)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=text)

    # -- install ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.webhook_port}{path}"

    def crds(self, ca: bytes) -> list[dict[str, Any]]:
        docs = [
            d for d in yaml.safe_load_all((self.tools_dir / "kueue-crds.yaml").read_text()) if d
        ]
        bundle = base64.b64encode(ca).decode()
        for doc in docs:
            if doc["spec"]["names"]["plural"] in CONVERTED:
                doc["spec"]["conversion"] = {
                    "strategy": "Webhook",
                    "webhook": {
                        "clientConfig": {"url": self._url("/convert"), "caBundle": bundle},
                        "conversionReviewVersions": ["v1"],
                    },
                }
        return docs

    def webhooks(self, ca: bytes) -> list[dict[str, Any]]:
        """Kueue's own webhook configurations, for its API group only."""
        source = (self.tools_dir / "kueue-webhooks.yaml").read_text()
        bundle = base64.b64encode(ca).decode()
        docs = []
        for doc in yaml.safe_load_all(source):
            if not doc:
                continue
            doc = copy.deepcopy(doc)
            kind = "mutating" if doc["kind"].startswith("Mutating") else "validating"
            doc["metadata"] = {"name": f"kueue-{kind}-webhook-configuration"}
            kept = []
            for hook in doc["webhooks"]:
                groups = {g for rule in hook["rules"] for g in rule["apiGroups"]}
                if groups != {"kueue.x-k8s.io"}:
                    continue
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": self._url(path), "caBundle": bundle}
                hook["timeoutSeconds"] = 10
                kept.append(hook)
            doc["webhooks"] = kept
            docs.append(doc)
        return docs

    def configuration(self, cert_dir: Path) -> dict[str, Any]:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {
                "port": self.webhook_port,
                "host": "127.0.0.1",
                "certDir": str(cert_dir),
            },
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {
                "enable": True,
                "webhookServiceName": SERVICE,
                "webhookSecretName": SECRET,
            },
            "clientConnection": {"qps": 100, "burst": 200},
            "integrations": {
                "frameworks": ["batch/job"],
                "externalFrameworks": [EXTERNAL_FRAMEWORK],
            },
            # Fair sharing between the ClusterQueues of a cohort (preemption by share).
            "fairSharing": {
                "preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]
            },
            # The on-demand visibility API server needs an APIService: not used here.
            "featureGates": {"VisibilityOnDemand": False},
        }

    def install(self) -> None:
        """CRDs, namespace, Secret, webhook configurations; idempotent."""
        self.dir.mkdir(parents=True, exist_ok=True)
        cert_dir = self.dir / "certs"
        cert_dir.mkdir(exist_ok=True)
        pki = webhook_pki()
        for name in ("tls.crt", "tls.key"):
            path = cert_dir / name
            path.write_bytes(pki[name])
            path.chmod(0o600)
        crds = self.crds(pki["ca.crt"])
        self.apply(crds)
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *[f"crd/{d['metadata']['name']}" for d in crds],
        )  # fmt: skip
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in pki.items()},
        }
        self.apply([secret, *self.webhooks(pki["ca.crt"])])
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(self.configuration(cert_dir), sort_keys=False))

    # -- process --------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> LocalKueue:
        for name in ("kueue", "kueue-crds.yaml", "kueue-webhooks.yaml"):
            if not (self.tools_dir / name).exists():
                raise RuntimeError(f"{self.tools_dir / name} not found: run `make tools`")
        self.webhook_port, self.health_port = _free_ports(2)
        self.install()
        self.spawn(timeout)
        return self

    def spawn(self, timeout: float = 180) -> None:
        """Start the process with the installed configuration; wait until it is ready."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.tools_dir / "kueue"),
                    f"--config={self.dir / 'config.yaml'}",
                    "--zap-log-level=2",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.cp.env(), "KUBECONFIG": str(self.cp.kubeconfig)},
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """readyz answers once its certificates are in place and the CA injected; then a
        dry-run ResourceFlavor proves the API server reaches its webhooks."""
        deadline = time.monotonic() + timeout
        probe = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "readiness-probe"},
        }
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kueue exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                self.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
                if self._ready():
                    return
            except (RuntimeError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"kueue not ready after {timeout:.0f}s:\n{self.tail()}")

    def _ready(self) -> bool:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        with opener.open(url, timeout=5) as resp:
            return bool(resp.status == 200)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def uninstall(self) -> None:
        """Stop the process and remove its CRDs (their objects go with them) and webhooks."""
        self.stop()
        self.kubectl(
            "delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "kueue-mutating-webhook-configuration", "kueue-validating-webhook-configuration",
            "--ignore-not-found", "--wait=true",
        )  # fmt: skip
        crds = [
            d for d in yaml.safe_load_all((self.tools_dir / "kueue-crds.yaml").read_text()) if d
        ]
        # Kueue's finalizers (resource-in-use) would hold its objects, and so its CRDs, with
        # no controller left to remove them.
        for crd in crds:
            kind = crd["metadata"]["name"]
            out = self.kubectl("get", kind, "-A", "-o", "json", check=False)
            for item in json.loads(out or '{"items": []}').get("items", []):
                meta = item["metadata"]
                if meta.get("finalizers"):
                    where = ["-n", meta["namespace"]] if meta.get("namespace") else []
                    self.kubectl(
                        "patch", kind, meta["name"], *where, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False,
                    )  # fmt: skip
        names = [f"crd/{d['metadata']['name']}" for d in crds]
        self.kubectl("delete", *names, "--ignore-not-found", "--wait=true", "--timeout=120s")
