"""The operator against a real API server: CRDs, kubectl apply, status, restart."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import yaml

from tests.support import REPO, make_node

pytestmark = pytest.mark.e2e

QUICKSTART = REPO / "examples" / "quickstart"


def external(docs: list[dict], agents: dict) -> str:
    """The quickstart with its nodes pointed at agents on loopback (no kubelet runs pods)."""
    for doc in docs:
        if doc["kind"] == "QuantumNode":
            agent = agents[doc["metadata"]["name"]]
            doc["spec"]["backend"] = {"type": "external", "endpoint": agent.endpoint}
            doc["spec"]["identity"] = {"publicKey": agent.public_key}
    return yaml.safe_dump_all(docs)


def quickstart_docs() -> list[dict]:
    docs: list[dict] = []
    for path in sorted(QUICKSTART.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def succeeded(obj: dict) -> bool:
    return obj.get("status", {}).get("phase") in ("Succeeded", "Failed", "Rejected")


async def test_quickstart_job_succeeds_through_kubectl_apply(
    cluster, namespace, operator, start_agent
):
    docs = quickstart_docs()
    nodes = [d for d in docs if d["kind"] == "QuantumNode"]
    agents = {
        d["metadata"]["name"]: await start_agent(
            make_node(d["metadata"]["name"], d["spec"]["qubits"], noise=d["spec"]["noise"])
        )
        for d in nodes
    }
    manifest = external(docs, agents)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest)

    for node in agents:
        cluster.wait_for(
            "qn", node, namespace, lambda o: o.get("status", {}).get("phase") == "Ready"
        )
    cluster.wait_for("qlink", "a-b", namespace, lambda o: o.get("status", {}).get("phase") == "Up")
    job = cluster.wait_for("djob", "ghz", namespace, succeeded)
    status = job["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert sum(status["result"]["counts"].values()) == job["spec"]["shots"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Verified"]["status"] == "True"
    assert all(c["observedGeneration"] == 1 for c in conditions.values())

    table = cluster.kubectl("get", "djob", "-n", namespace)
    assert "Succeeded" in table and "single" in table
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=ghz",
        "-o",
        "json",
    )
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Admitted", "Placed", "ProgramsSent", "Completed"} <= reasons


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"spec": {"qubits": 0}}, "spec.qubits"),
        ({"spec": {"qubits": 2, "flavour": "strange"}}, 'unknown field "spec.flavour"'),
        ({"spec": {"qubits": 2, "backend": {"type": "external"}}}, "backend.endpoint is required"),
    ],
)
def test_api_server_refuses_invalid_nodes(cluster, namespace, patch, message):
    doc = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "bad"},
        **patch,
    }
    out = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc), check=False)
    assert message in out, out
    assert "created" not in out


def test_job_spec_is_immutable(cluster, namespace):
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "j"},
        "spec": {"shots": 10, "circuit": {"qasm": "OPENQASM 2.0;"}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))
    job["spec"]["shots"] = 20
    out = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job), check=False)
    assert "spec is immutable" in out, out


def test_aer_node_gets_an_owned_agent_deployment_and_service(cluster, namespace, operator):
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "sim"},
        "spec": {"qubits": 5},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
    dep = cluster.wait_for("deployment", "qpu-sim", namespace, lambda o: True, timeout=60)
    svc = cluster.get("service", "qpu-sim", namespace)
    uid = cluster.get("qn", "sim", namespace)["metadata"]["uid"]
    for obj in (dep, svc):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["kind"] == "QuantumNode" and owner["uid"] == uid
    pod_spec = dep["spec"]["template"]["spec"]
    container = next(c for c in pod_spec["containers"] if c["name"] == "qpu-agent")
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["QORCH_NODE_MANIFEST"])["spec"]["qubits"] == 5
    # The node's identity lives in a Secret it owns, mounted read-only into the agent only,
    # named after its key; the Deployment records the public key the operator pins.
    (volume,) = [v for v in pod_spec["volumes"] if "secret" in v]
    secret = cluster.get("secret", volume["secret"]["secretName"], namespace)
    assert set(secret["data"]) == {"identity.key", "identity.pub", "operator.pub"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid
    public_key = base64.b64decode(secret["data"]["identity.pub"]).decode()
    assert dep["metadata"]["annotations"]["qorch.dev/identity-public-key"] == public_key
    digest = hashlib.sha256(base64.b64decode(public_key)).hexdigest()
    assert secret["metadata"]["name"] == f"qpu-sim-identity-{digest[:12]}"
    qn = cluster.wait_for(
        "qn", "sim", namespace, lambda o: o.get("status", {}).get("identityFingerprint")
    )
    assert qn["status"]["identityFingerprint"] == f"sha256:{digest}"
    # kwok plays the kubelet: the scheduled pod reports Running.
    pods = cluster.wait_for(
        "pods",
        "",
        namespace,
        lambda o: any(p["status"].get("phase") == "Running" for p in o.get("items", [])),
        timeout=90,
        selector="qorch.dev/node=sim",
    )
    assert pods["items"][0]["spec"]["nodeName"]

    # A restarted operator finds the key on the Deployment (it cannot read the Secret) and
    # makes no new identity.
    operator.kill()
    operator.start()
    deadline = time.monotonic() + 60
    while operator.output().count("Handler 'workload' succeeded") < 2:
        assert time.monotonic() < deadline, operator.output()[-3000:]
        time.sleep(0.5)
    secrets = cluster.kubectl("get", "secrets", "-n", namespace, "-l", "qorch.dev/node=sim")
    assert secrets.count("qpu-sim-identity-") == 1, secrets
    after = cluster.get("deployment", "qpu-sim", namespace)
    assert after["metadata"]["annotations"]["qorch.dev/identity-public-key"] == public_key
    assert after["metadata"]["generation"] == dep["metadata"]["generation"]


async def test_restart_mid_job_resumes_without_running_a_program_twice(
    cluster, namespace, operator, start_agent
):
    # Noise makes Aer simulate shot by shot: the program runs for seconds, not milliseconds.
    noise = {"twoQubitError": 0.01}
    agent = await start_agent(make_node("solo", 12, noise=noise))
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "solo"},
        "spec": {
            "qubits": 12,
            "noise": noise,
            "backend": {"type": "external", "endpoint": agent.endpoint},
            "identity": {"publicKey": agent.public_key},
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
    cluster.wait_for("qn", "solo", namespace, lambda o: o.get("status", {}).get("phase") == "Ready")
    qasm = SLOW_CIRCUIT
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "slow"},
        "spec": {"shots": 600, "circuit": {"qasm": qasm}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))
    cluster.wait_for(
        "djob", "slow", namespace, lambda o: o.get("status", {}).get("phase") == "Running"
    )
    operator.kill()
    operator.start()
    done = cluster.wait_for("djob", "slow", namespace, succeeded, timeout=180)
    assert done["status"]["phase"] == "Succeeded", (
        done["status"]["message"],
        operator.output()[-3000:],
    )
    assert done["status"]["attempt"] == 1
    client = agent.client()
    try:
        health = await client.call("health", {})
    finally:
        await client.close()
    assert health["programsRun"] == 1


def slow_circuit(n: int = 10, layers: int = 20) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(n)]
        shift = 1 + layer % (n - 1)  # never 0 mod n: control and target differ
        lines += [f"cx q[{i}], q[{(i + shift) % n}];" for i in range(0, n - 1, 2)]
        lines += [f"t q[{i}];" for i in range(n)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


# Run with at most 2^10 shots: for more, one density matrix serves them all in a moment.
SLOW_CIRCUIT = slow_circuit(layers=200)


async def test_a_node_whose_key_differs_from_its_pin_gets_no_circuit(
    cluster, namespace, operator, start_agent
):
    from qorch.channel.identity import Identity, encode_public_key

    agent = await start_agent(make_node("imposter", 4))
    wrong = encode_public_key(Identity.generate().public_key)
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "imposter"},
        "spec": {
            "qubits": 4,
            "backend": {"type": "external", "endpoint": agent.endpoint},
            "identity": {"publicKey": wrong},
        },
    }
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "secret-circuit"},
        "spec": {"shots": 10, "timeoutSeconds": 8, "circuit": {"qasm": BELL}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all([node, job]))
    qn = cluster.wait_for(
        "qn", "imposter", namespace, lambda o: o.get("status", {}).get("phase") == "Unreachable"
    )
    ready = next(c for c in qn["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PeerKeyMismatch", ready
    done = cluster.wait_for("djob", "secret-circuit", namespace, succeeded, timeout=60)
    assert done["status"]["phase"] == "Failed"
    assert "imposter is Unreachable" in done["status"]["message"], done["status"]["message"]
    client = agent.client()
    try:
        health = await client.call("health", {})
    finally:
        await client.close()
    assert health["programsRun"] == 0


BELL = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""


def test_liveness_endpoint_answers(operator):
    import time
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(operator.liveness, timeout=5) as resp:
                body = json.loads(resp.read())
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert "jobs-reserved" in body


async def test_a_node_measured_above_its_safety_threshold_turns_degraded(
    cluster, namespace, operator, start_agent
):
    noise = {"readoutError": 0.1}
    agent = await start_agent(make_node("shaky", 4, noise=noise))
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "shaky"},
        "spec": {
            "qubits": 4,
            "noise": noise,
            "safety": {"maxErrorRate": 0.05},
            "backend": {"type": "external", "endpoint": agent.endpoint},
            "identity": {"publicKey": agent.public_key},
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
    qn = cluster.wait_for(
        "qn", "shaky", namespace, lambda o: o.get("status", {}).get("phase") == "Degraded"
    )
    calibrated = next(c for c in qn["status"]["conditions"] if c["type"] == "Calibrated")
    assert calibrated["reason"] == "ErrorRateAboveThreshold"
    assert 0.07 < qn["status"]["calibration"]["readoutError"] < 0.13
    table = cluster.kubectl("get", "qn", "shaky", "-n", namespace)
    assert "Degraded" in table
    assert str(qn["status"]["calibration"]["fidelity"]) in table  # the Fidelity column


def scrape(operator) -> dict[str, list]:
    """The operator's /metrics, as samples by metric name (the port is in its log)."""
    import re
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 60
    while not (found := re.search(r"metrics on port (\d+)", operator.output())):
        assert time.monotonic() < deadline, operator.output()[-3000:]
        time.sleep(0.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def series_of(operator, namespace: str, label: str, value: str) -> set[str]:
    samples = (s for family in scrape(operator).values() for s in family)
    return {
        s.name
        for s in samples
        if s.labels.get("namespace") == namespace and s.labels.get(label) == value
    }


async def test_a_deleted_node_and_link_leave_no_series_on_the_operators_metrics(
    cluster, namespace, operator, start_agent
):
    docs = [d for d in quickstart_docs() if d["kind"] != "DistributedJob"]
    agents = {
        d["metadata"]["name"]: await start_agent(
            make_node(d["metadata"]["name"], d["spec"]["qubits"], noise=d["spec"]["noise"])
        )
        for d in docs
        if d["kind"] == "QuantumNode"
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=external(docs, agents))
    cluster.wait_for("qlink", "a-b", namespace, lambda o: o.get("status", {}).get("phase") == "Up")
    deadline = time.monotonic() + 60
    while "qorch_feedforward_latency_seconds_count" not in series_of(
        operator, namespace, "link", "a-b"
    ):
        assert time.monotonic() < deadline, "the link's probe was never recorded"
        time.sleep(0.5)
    assert {"qorch_node_up", "qorch_channel_calls_total"} <= series_of(
        operator, namespace, "node", "qpu-a"
    )

    cluster.kubectl("delete", "qlink", "a-b", "-n", namespace)
    cluster.kubectl("delete", "qn", "qpu-a", "-n", namespace)
    deadline = time.monotonic() + 30
    while series_of(operator, namespace, "node", "qpu-a") or series_of(
        operator, namespace, "link", "a-b"
    ):
        assert time.monotonic() < deadline, (
            series_of(operator, namespace, "node", "qpu-a"),
            series_of(operator, namespace, "link", "a-b"),
        )
        time.sleep(0.5)
    assert "qorch_node_up" in series_of(operator, namespace, "node", "qpu-b")


async def test_a_node_is_calibrated_once_its_agent_answers_not_a_period_later(
    cluster, namespace, tmp_path, operator_key, start_agent
):
    """A node's first calibration finds no agent yet (its pod still starts, here: a wrong
    endpoint); once the agent answers, the node is calibrated at its next health check,
    not a calibration period (here 600 s) later. Until then no job could use it."""
    import socket

    from tests.e2e.conftest import OperatorProcess

    op = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        operator_key.key_file,
        extra_env={"QORCH_CALIBRATION_SECONDS": "600"},
    )
    op.start()
    try:
        agent = await start_agent(make_node("late", 4))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
        node = {
            "apiVersion": "qorch.dev/v1alpha1",
            "kind": "QuantumNode",
            "metadata": {"name": "late"},
            "spec": {
                "qubits": 4,
                "backend": {"type": "external", "endpoint": nobody},
                "identity": {"publicKey": agent.public_key},
            },
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
        deadline = time.monotonic() + 60
        while "Timer 'calibrate' succeeded" not in op.output():
            assert time.monotonic() < deadline, op.output()[-3000:]
            time.sleep(0.2)
        assert "calibration" not in cluster.get("qn", "late", namespace).get("status", {})
        node["spec"]["backend"]["endpoint"] = agent.endpoint
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(node))
        answered = time.monotonic()
        cluster.wait_for(
            "qn",
            "late",
            namespace,
            lambda o: bool(o.get("status", {}).get("calibration")),
            timeout=60,
        )
        print(f"\ncalibrated {time.monotonic() - answered:.1f}s after the agent could answer")
    finally:
        op.stop()


def link_state(cluster, namespace: str, name: str) -> dict | None:
    """The link's physical state in the namespace's ConfigMap, as the agent pods read it."""
    out = cluster.kubectl(
        "get", "configmap", "qorch-link-states", "-n", namespace, "-o", "json", check=False
    )
    data = json.loads(out).get("data", {}) if out.strip().startswith("{") else {}
    text = data.get(f"{name}.json")
    return json.loads(text) if text else None


def wait_link_state(cluster, namespace: str, name: str, check, timeout: float = 60) -> dict | None:
    deadline = time.monotonic() + timeout
    while not check(state := link_state(cluster, namespace, name)):
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    return state


def test_a_links_physical_state_starts_as_declared_and_is_left_to_drift(
    cluster, namespace, operator
):
    """The operator writes each new link's declared spec into the ConfigMap the agent pods
    mount; an edit there (the link drifting) survives the operator's restart; a deleted
    link's key goes, and a link created again under that name starts as declared."""
    link = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "EntanglementLink",
        "metadata": {"name": "a-b"},
        "spec": {
            "nodes": ["a", "b"],
            "fidelity": 0.97,
            "generationRateHz": 10000,
            "successProbability": 0.3,
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(link))
    state = wait_link_state(cluster, namespace, "a-b", bool)
    assert state is not None and state["spec"]["fidelity"] == 0.97
    assert state["metadata"]["name"] == "a-b" and "status" not in state
    state["spec"]["fidelity"] = 0.7
    patch = {"data": {"a-b.json": json.dumps(state)}}
    cluster.kubectl(
        "patch", "configmap", "qorch-link-states", "-n", namespace, "-p", json.dumps(patch)
    )
    operator.kill()
    operator.start()
    # Resumed: the handler ran again, in the restarted operator (its log goes on).
    deadline = time.monotonic() + 60
    while operator.output().count("Handler 'link-state' succeeded") < 2:
        assert time.monotonic() < deadline, operator.output()[-3000:]
        time.sleep(0.3)
    kept = link_state(cluster, namespace, "a-b")
    assert kept is not None and kept["spec"]["fidelity"] == 0.7
    cluster.kubectl("delete", "qlink", "a-b", "-n", namespace)
    wait_link_state(cluster, namespace, "a-b", lambda s: s is None)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(link))
    again = wait_link_state(cluster, namespace, "a-b", bool)
    assert again is not None and again["spec"]["fidelity"] == 0.97


def test_objects_only_the_operator_can_refuse_are_told_which_field(cluster, namespace, operator):
    """The API server's schema passes them; the operator's models do not. The node hears it
    as a Warning event, the job in its status, each naming the field and the rule."""
    node = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": "odd"},
        "spec": {"qubits": 2, "noise": {"t1Microseconds": 100, "t2Microseconds": 300}},
    }
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "odd"},
        "spec": {
            "shots": 10,
            "circuit": {"qasm": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nh q[0];\n'},
            "observables": ["ABC"],
        },
    }
    for doc in (node, job):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc))
    rejected = cluster.wait_for(
        "djob", "odd", namespace, lambda o: o.get("status", {}).get("phase") == "Rejected"
    )
    assert rejected["status"]["message"] == (
        "does not validate: spec: observable 'ABC' must be a non-empty string of I, X, Y, Z"
    )
    deadline = time.monotonic() + 60
    while True:
        events = cluster.kubectl(
            "get", "events", "-n", namespace,
            "--field-selector", "involvedObject.name=odd",
            "-o", "json",
        )  # fmt: skip
        messages = [
            (e["involvedObject"]["kind"], e["type"], e["reason"], e["message"])
            for e in json.loads(events)["items"]
        ]
        if any(
            event[:3] == ("QuantumNode", "Warning", "InvalidSpec")
            and event[3].startswith("does not validate: spec.noise: t2Microseconds (300.0)")
            for event in messages
        ):
            break
        assert time.monotonic() < deadline, messages
        time.sleep(0.5)
