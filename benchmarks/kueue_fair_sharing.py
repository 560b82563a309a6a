"""100 jobs over 4 nodes through Kueue, two teams sharing a cohort, against qorch's own book.

One run, on a local control plane (hack/controlplane.py, no pods), Kueue's controller
(hack/kueue_local.py), `qorch operator` and four real agents (6, 6, 5 and 5 qubits):
1. Kueue: a ResourceFlavor per node; ClusterQueues team-a and team-b in cohort `lab`, each
   with half of every node's qubits as nominal quota (borrowing open, fair sharing on);
   60 jobs for team-a and 40 for team-b applied at once. Measured from watches: admission
   latency (job created -> its Workload first Admitted), and each team's qubit-seconds of
   admitted quota (qubits x admitted time), overall and while both teams had jobs waiting.
2. The same 100 jobs without the queue label: qorch's own reservation book.
Throughput: jobs per second from the first job created to the last one finished.

    PYTHONPATH=src python benchmarks/kueue_fair_sharing.py [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
from controlplane import ControlPlane  # noqa: E402
from kueue_local import LocalKueue  # noqa: E402

from qorch.api import QuantumNode  # noqa: E402
from qorch.channel.identity import Identity, encode_public_key  # noqa: E402
from qorch.local.agents import AgentProcess  # noqa: E402

NODES = {"n0": 6, "n1": 6, "n2": 5, "n3": 5}
TEAMS = {"team-a": 60, "team-b": 40}
NAMESPACE = "bench"
KUEUE = "kueue.x-k8s.io/v1beta2"
RESULT = REPO / "benchmarks" / "results" / "kueue_fair_sharing.md"
NOISE = {"twoQubitError": 0.01}


def circuit(width: int, layers: int = 3) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{width}];", f"creg c[{width}];"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(width)]
        shift = 1 + layer % (width - 1)
        lines += [f"cx q[{i}], q[{(i + shift) % width}];" for i in range(0, width - 1, 2)]
        lines += [f"t q[{i}];" for i in range(width)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


def jobs(prefix: str, queued: bool) -> list[dict[str, Any]]:
    rng = random.Random(100)  # the same 100 jobs in both runs
    docs = []
    for team, count in TEAMS.items():
        for i in range(count):
            labels = {"team": team, "run": prefix}
            if queued:
                labels["kueue.x-k8s.io/queue-name"] = f"lq-{team}"
            docs.append(
                {
                    "apiVersion": "qorch.dev/v1alpha1",
                    "kind": "DistributedJob",
                    "metadata": {"name": f"{prefix}-{team}-{i:02d}", "labels": labels},
                    "spec": {
                        "shots": rng.randrange(200, 1500),
                        "strategy": "single",
                        "circuit": {"qasm": circuit(rng.randint(2, 5))},
                        "timeoutSeconds": 3600,
                    },
                }
            )
    rng.shuffle(docs)
    return docs


def kueue_objects() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for node in NODES:
        docs.append(
            {
                "apiVersion": KUEUE,
                "kind": "ResourceFlavor",
                "metadata": {"name": f"qn.{NAMESPACE}.{node}"},
                "spec": {"nodeLabels": {"qorch.dev/quantum-node": f"{NAMESPACE}.{node}"}},
            }
        )
    for t, team in enumerate(TEAMS):
        flavors = []
        for i, (node, qubits) in enumerate(NODES.items()):
            half = qubits // 2 + (qubits % 2 if (i + t) % 2 == 0 else 0)
            flavors.append(
                {"name": f"qn.{NAMESPACE}.{node}", "resources": [
                    {"name": "qorch.dev/qubits", "nominalQuota": half}
                ]}
            )  # fmt: skip
        docs.append(
            {
                "apiVersion": KUEUE,
                "kind": "ClusterQueue",
                "metadata": {"name": team},
                "spec": {
                    "cohortName": "lab",
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {"coveredResources": ["qorch.dev/qubits"], "flavors": flavors}
                    ],
                    "preemption": {"reclaimWithinCohort": "Any"},
                },
            }
        )
        docs.append(
            {
                "apiVersion": KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": f"lq-{team}", "namespace": NAMESPACE},
                "spec": {"clusterQueue": team},
            }
        )
    return docs


def nominal(team: str) -> int:
    t = list(TEAMS).index(team)
    return sum(q // 2 + (q % 2 if (i + t) % 2 == 0 else 0) for i, q in enumerate(NODES.values()))


class Recorder:
    """Watches DistributedJobs and Workloads, noting when each thing was first seen."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.team: dict[str, str] = {}
        self.admitted: dict[str, float] = {}  # job -> first admission
        # job -> list of (admitted, released, qubits)
        self.intervals: dict[str, list[list[float]]] = {}
        self.evictions = 0
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._jobs, self._workloads):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _stream(self, plural: str, group: str, version: str) -> Any:
        api = client.CustomObjectsApi()
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                yield from w.stream(
                    api.list_namespaced_custom_object, group, version, NAMESPACE, plural,
                    timeout_seconds=30,
                )  # fmt: skip
            except Exception:  # a watch that ends is started again
                time.sleep(0.2)

    def _jobs(self) -> None:
        for event in self._stream("distributedjobs", "qorch.dev", "v1alpha1"):
            now = time.monotonic()
            obj = event["object"]
            name = obj["metadata"]["name"]
            self.created.setdefault(name, now)
            self.team[name] = obj["metadata"].get("labels", {}).get("team", "")
            if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Rejected"):
                self.finished.setdefault(name, now)

    def _workloads(self) -> None:
        for event in self._stream("workloads", "kueue.x-k8s.io", "v1beta2"):
            now = time.monotonic()
            obj = event["object"]
            owners = obj["metadata"].get("ownerReferences") or [{}]
            job = owners[0].get("name", "")
            conds = {
                c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])
            }
            admitted = conds.get("Admitted") == "True" and conds.get("Evicted") != "True"
            qubits = sum(
                int(p["template"]["spec"]["containers"][0]["resources"]["requests"].get(
                    "qorch.dev/qubits", 0))
                for p in obj["spec"]["podSets"]
            )  # fmt: skip
            spans = self.intervals.setdefault(job, [])
            open_span = spans and spans[-1][1] < 0
            if admitted and not open_span:
                self.admitted.setdefault(job, now)
                spans.append([now, -1.0, float(qubits)])
            elif not admitted and open_span:
                spans[-1][1] = now
                if conds.get("Evicted") == "True":
                    self.evictions += 1
            if event["type"] == "DELETED" and open_span:
                spans[-1][1] = now


def kubectl(cp: ControlPlane, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(REPO / ".tools" / "bin" / "kubectl"), *args],
        input=stdin, capture_output=True, text=True, env=cp.env(), timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def wait_done(rec: Recorder, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(n in rec.finished for n in names):
        if time.monotonic() > deadline:
            left = [n for n in names if n not in rec.finished]
            raise RuntimeError(f"{len(left)} jobs not finished: {left[:5]}")
        time.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def shares(rec: Recorder, names: list[str], window: tuple[float, float] | None) -> dict[str, float]:
    used = dict.fromkeys(TEAMS, 0.0)
    end_all = max(rec.finished[n] for n in names)
    for name in names:
        for start, end, qubits in rec.intervals.get(name, []):
            end = end if end > 0 else end_all
            if window:
                start, end = max(start, window[0]), min(end, window[1])
            if end > start:
                used[rec.team[name]] += qubits * (end - start)
    total = sum(used.values()) or 1.0
    return {team: used[team] / total for team in TEAMS}


async def start_agents(trusted: Path, keys: Path) -> dict[str, tuple[AgentProcess, Identity]]:
    started = {}
    for name, qubits in NODES.items():
        identity = Identity.generate()
        key_file, _ = identity.save(keys / name)
        node = QuantumNode.model_validate(
            {"metadata": {"name": name}, "spec": {"qubits": qubits, "noise": NOISE}}
        )
        started[name] = (await AgentProcess.start(node, key_file, [trusted], threads=1), identity)
    return started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"record in {RESULT.name}")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qorch-kueue-bench-"))
    cp = ControlPlane(state_dir=tmp / "cluster").start(pods=False)
    local = None
    operator = None
    loop = asyncio.new_event_loop()
    agents: dict[str, tuple[AgentProcess, Identity]] = {}
    try:
        kubectl(cp, "apply", "--server-side", "-f", str(REPO / "crds"))
        kubectl(cp, "wait", "--for=condition=Established", "-f", str(REPO / "crds"))
        local = LocalKueue(cp).start()
        kubectl(cp, "create", "namespace", NAMESPACE)
        operator_identity = Identity.generate()
        key_file, pub_file = operator_identity.save(tmp / "operator")
        agents = loop.run_until_complete(start_agents(pub_file, tmp))
        nodes = [
            {
                "apiVersion": "qorch.dev/v1alpha1",
                "kind": "QuantumNode",
                "metadata": {"name": name},
                "spec": {
                    "qubits": NODES[name],
                    "noise": NOISE,
                    "backend": {"type": "external", "endpoint": agent.endpoint},
                    "identity": {"publicKey": encode_public_key(identity.public_key)},
                },
            }
            for name, (agent, identity) in agents.items()
        ]
        kubectl(cp, "apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump_all(nodes))
        env = {
            **cp.env(),
            "QORCH_IDENTITY_KEY_FILE": str(key_file),
            "QORCH_METRICS_PORT": "0",
            "QORCH_CAPACITY_RETRY_SECONDS": "0.5",
            "QORCH_NODE_CHECK_SECONDS": "2",
            "QORCH_LINK_CHECK_SECONDS": "2",
        }
        log = (tmp / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "qorch", "operator", "-n", NAMESPACE],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            out = json.loads(kubectl(cp, "get", "qn", "-n", NAMESPACE, "-o", "json"))
            if all((n.get("status") or {}).get("phase") == "Ready" for n in out["items"]):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nodes not Ready")
            time.sleep(1)
        kubectl(cp, "apply", "-f", "-", stdin=yaml.safe_dump_all(kueue_objects()))

        config.load_kube_config(str(cp.kubeconfig))
        rec = Recorder()
        rec.start()
        time.sleep(2)
        results: dict[str, Any] = {}
        for run, queued in (("kueue", True), ("book", False)):
            docs = jobs(run, queued)
            names = [d["metadata"]["name"] for d in docs]
            kubectl(cp, "apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump_all(docs))
            wait_done(rec, names, timeout=1800)
            out = json.loads(
                kubectl(cp, "get", "djob", "-n", NAMESPACE, "-l", f"run={run}", "-o", "json")
            )
            phases = [j["status"]["phase"] for j in out["items"]]
            wall = max(rec.finished[n] for n in names) - min(rec.created[n] for n in names)
            results[run] = {"wall": wall, "ok": phases.count("Succeeded"), "names": names}
            print(f"{run}: {phases.count('Succeeded')}/{len(names)} succeeded in {wall:.1f}s")

        names = results["kueue"]["names"]
        latency = [rec.admitted[n] - rec.created[n] for n in names if n in rec.admitted]
        # Both teams backlogged: from the start until the first team's last job is admitted.
        last_admitted = {
            team: max(rec.admitted[n] for n in names if rec.team[n] == team) for team in TEAMS
        }
        window = (min(rec.created[n] for n in names), min(last_admitted.values()))
        overall, contended = shares(rec, names, None), shares(rec, names, window)
        total_nominal = sum(nominal(t) for t in TEAMS)
        lines = [
            "# Kueue: 100 jobs over 4 nodes, two teams in a fair-sharing cohort",
            "",
            f"One run. Nodes {', '.join(f'{n} ({q} qubits)' for n, q in NODES.items())};"
            " jobs of 2 to 5 qubits, 200 to 1500 shots (seed 100); team-a 60 jobs, team-b 40,"
            " applied at once. Each team's ClusterQueue has half of every node as nominal"
            " quota in cohort `lab` (borrowing open, fair sharing on). The same 100 jobs then"
            " run without the queue label, on qorch's own book.",
            "",
            "| | Kueue | qorch's book |",
            "|---|---|---|",
            f"| jobs succeeded | {results['kueue']['ok']}/100 | {results['book']['ok']}/100 |",
            f"| first created to last finished (s) | {results['kueue']['wall']:.1f} |"
            f" {results['book']['wall']:.1f} |",
            f"| throughput (jobs/s) | {100 / results['kueue']['wall']:.2f} |"
            f" {100 / results['book']['wall']:.2f} |",
            "",
            f"Admission latency (job created to Workload first Admitted), {len(latency)} jobs:"
            f" p50 **{pct(latency, 0.5):.2f} s**, p99 **{pct(latency, 0.99):.2f} s**"
            f" (max {max(latency):.2f} s). Evictions: {rec.evictions}.",
            "",
            "| team | nominal share | qubit-seconds share, both teams waiting |"
            " qubit-seconds share, whole run |",
            "|---|---|---|---|",
        ]
        for team in TEAMS:
            lines.append(
                f"| {team} | {nominal(team) / total_nominal:.0%} ({nominal(team)} qubits) |"
                f" {contended[team]:.1%} | {overall[team]:.1%} |"
            )
        lines += [
            "",
            f"Both teams had jobs waiting for the first {window[1] - window[0]:.1f} s. Qubit-"
            "seconds are admitted quota (qubits x time between admission and finish or"
            " eviction), as Kueue accounts it.",
            "",
            "Reproduce: `make tools && PYTHONPATH=src python benchmarks/kueue_fair_sharing.py"
            " --write`.",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.write:
            RESULT.write_text(text)
        rec.stop.set()
        return 0
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        for agent, _ in agents.values():
            loop.run_until_complete(agent.stop())
        if local is not None:
            local.stop()
        cp.stop()
        loop.close()
        if os.environ.get("QORCH_KEEP_BENCH_DIR") is None:
            subprocess.run(["rm", "-rf", str(tmp)], check=False, timeout=60)


if __name__ == "__main__":
    sys.exit(main())
