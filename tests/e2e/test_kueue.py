"""DistributedJobs admitted through Kueue: its real controller (hack/kueue_local.py) beside
the real API server, the operator, and real agents. Quota, flavor assignment and preemption
are Kueue's; the tests check that the operator follows them."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.e2e.kueue_fixture import (
    apply,
    cluster_queue,
    kueue_controller,  # noqa: F401  (the `kueue` fixture)
    local_queue,
    node_flavor,
    priority_class,
)
from tests.e2e.test_operator import slow_circuit, succeeded
from tests.e2e.test_reroute import programs_run, two_nodes, warning_reasons
from tests.e2e.test_suspend import GHZ10, condition

pytestmark = pytest.mark.e2e

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def submit(cluster, namespace: str, name: str, queue: str | None, qasm: str = GHZ10, **more):
    labels = {QUEUE_LABEL: queue} if queue else {}
    labels |= more.pop("labels", {})
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {"shots": 500, "strategy": "single", "circuit": {"qasm": qasm}, **more},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))


def workload_of(cluster, namespace: str, job: str) -> dict:
    items = json.loads(
        cluster.kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "json")
    )
    owned = [
        w
        for w in items["items"]
        if any(r["name"] == job for r in w["metadata"].get("ownerReferences", []))
    ]
    assert len(owned) == 1, [w["metadata"]["name"] for w in items["items"]]
    return owned[0]


def has_condition(obj: dict, type_: str, reason: str | None = None) -> bool:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_ and (reason is None or c["reason"] == reason):
            return True
    return False


@pytest.fixture
def queue_names(namespace):
    """Cluster-scoped Kueue objects named after the test's namespace (no clash between tests)."""
    return f"cq-{namespace}", f"lq-{uuid.uuid4().hex[:6]}"


async def test_a_labelled_job_runs_once_kueue_admits_it_on_the_assigned_flavor(
    cluster, namespace, kueue, operator, start_agent, queue_names
):
    agents = await two_nodes(cluster, namespace, start_agent)
    cq, lq = queue_names
    # Only `spare` has quota: the plan (which prefers the less noisy `first`) must follow.
    apply(cluster, node_flavor(namespace, "first"), node_flavor(namespace, "spare"))
    apply(cluster, cluster_queue(cq, {f"qn.{namespace}.spare": 10}))
    apply(cluster, local_queue(namespace, lq, cq))
    submit(cluster, namespace, "queued", lq)
    done = cluster.wait_for("djob", "queued", namespace, succeeded, timeout=180)
    status = done["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["plan"]["nodes"] == "spare"
    admitted = condition(done, "QuotaReserved")
    assert (admitted["status"], admitted["reason"]) == ("True", "AdmittedByQueue")
    assert f"ClusterQueue {cq}" in admitted["message"]
    assert await programs_run(agents["spare"]) == 1
    assert await programs_run(agents["first"]) == 0

    wl = workload_of(cluster, namespace, "queued")
    pod_sets = wl["spec"]["podSets"]
    assert [p["template"]["spec"]["containers"][0]["resources"]["requests"] for p in pod_sets] == [
        {"qorch.dev/qubits": "10"}
    ]
    assignment = wl["status"]["admission"]["podSetAssignments"][0]
    assert assignment["flavors"] == {"qorch.dev/qubits": f"qn.{namespace}.spare"}
    finished = cluster.wait_for(
        "workloads.kueue.x-k8s.io",
        wl["metadata"]["name"],
        namespace,
        lambda w: has_condition(w, "Finished", "Succeeded"),
    )
    assert finished["spec"]["queueName"] == lq

    # Deleted with its job: the job owns it, so garbage collection takes it.
    cluster.kubectl("delete", "djob", "queued", "-n", namespace, "--wait=true", "--timeout=60s")
    deadline = time.monotonic() + 120
    while "NotFound" not in cluster.kubectl(
        "get", "workloads.kueue.x-k8s.io", wl["metadata"]["name"], "-n", namespace, check=False
    ):
        assert time.monotonic() < deadline, "the Workload outlived its job"
        time.sleep(0.5)


async def test_kueue_preemption_pauses_the_running_job_and_it_finishes_after_readmission(
    cluster, namespace, kueue, operator, start_agent, queue_names
):
    agents = await two_nodes(cluster, namespace, start_agent)
    cq, lq = queue_names
    low, high = f"low-{namespace}", f"high-{namespace}"
    apply(cluster, priority_class(low, 10), priority_class(high, 100))
    apply(cluster, node_flavor(namespace, "first"))
    preemption = {"withinClusterQueue": "LowerPriority"}
    apply(cluster, cluster_queue(cq, {f"qn.{namespace}.first": 10}, preemption=preemption))
    apply(cluster, local_queue(namespace, lq, cq))

    priority = "kueue.x-k8s.io/priority-class"
    long_circuit = slow_circuit(layers=400)  # 1000 shots, fewer than 2^10: one by one
    submit(cluster, namespace, "low", lq, long_circuit, shots=1000, labels={priority: low})
    cluster.wait_for(
        "djob", "low", namespace, lambda o: o.get("status", {}).get("phase") == "Running"
    )
    submit(cluster, namespace, "high", lq, labels={priority: high})

    # Kueue evicts `low` for `high`; the operator pauses it (cancelled, quota given back)
    # and `high` runs at once on the node `low` left.
    first_high = cluster.wait_for("djob", "high", namespace, succeeded, timeout=180)
    assert first_high["status"]["phase"] == "Succeeded", first_high["status"]["message"]
    assert first_high["status"]["plan"]["nodes"] == "first"

    done = cluster.wait_for("djob", "low", namespace, succeeded, timeout=400)
    status = done["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["attempt"] == 2  # re-planned and re-run from scratch once re-admitted
    assert sum(status["result"]["counts"].values()) == 1000
    assert ("DistributedJob", "Evicted") in warning_reasons(cluster, namespace)
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))
    evicted = [e["message"] for e in events["items"] if e["reason"] == "Evicted"]
    assert any("Preempted" in m for m in evicted), evicted
    wl = workload_of(cluster, namespace, "low")
    assert has_condition(wl, "Requeued") and has_condition(wl, "Finished", "Succeeded")
    # high once, low's second attempt once; the first was cancelled.
    assert await programs_run(agents["first"]) in (2, 3)
    assert await programs_run(agents["spare"]) == 0


async def test_a_job_naming_a_missing_local_queue_waits_with_a_condition_naming_it(
    cluster, namespace, kueue, operator, start_agent, queue_names
):
    await two_nodes(cluster, namespace, start_agent)
    cq, lq = queue_names
    submit(cluster, namespace, "lost", lq)
    waiting = cluster.wait_for(
        "djob",
        "lost",
        namespace,
        lambda o: has_condition(o, "QuotaReserved", "LocalQueueNotFound"),
    )
    message = condition(waiting, "QuotaReserved")["message"]
    assert f"LocalQueue {lq} does not exist in namespace {namespace}" in message
    assert waiting["status"]["phase"] == "Pending"
    # Created, the queue admits it.
    apply(cluster, node_flavor(namespace, "first"))
    apply(cluster, cluster_queue(cq, {f"qn.{namespace}.first": 10}))
    apply(cluster, local_queue(namespace, lq, cq))
    done = cluster.wait_for("djob", "lost", namespace, succeeded, timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]["message"]


async def test_a_job_wanting_more_qubits_than_any_flavor_is_rejected_naming_the_largest(
    cluster, namespace, kueue, operator, start_agent, queue_names
):
    await two_nodes(cluster, namespace, start_agent)
    cq, lq = queue_names
    apply(cluster, node_flavor(namespace, "first"), node_flavor(namespace, "spare"))
    quotas = {f"qn.{namespace}.first": 4, f"qn.{namespace}.spare": 6}
    apply(cluster, cluster_queue(cq, quotas), local_queue(namespace, lq, cq))
    submit(cluster, namespace, "wide", lq)
    done = cluster.wait_for("djob", "wide", namespace, succeeded)
    assert done["status"]["phase"] == "Rejected"
    rejected = condition(done, "QuotaReserved")
    assert rejected["reason"] == "ExceedsLargestFlavor"
    assert (
        f"needs 10 qubits on QuantumNode first; the largest ResourceFlavor of ClusterQueue {cq}"
        f" is qn.{namespace}.spare with 6 qubits" in rejected["message"]
    )


async def test_kueue_uninstalled_while_a_job_waits_it_waits_with_a_condition_until_unlabelled(
    cluster, namespace, kueue, operator, start_agent, queue_names
):
    """Last in this module: it removes Kueue, then installs it again."""
    await two_nodes(cluster, namespace, start_agent)
    cq, lq = queue_names
    apply(cluster, node_flavor(namespace, "first"))
    # A ClusterQueue on hold: the job waits in the queue.
    held = cluster_queue(cq, {f"qn.{namespace}.first": 10})
    held["spec"]["stopPolicy"] = "Hold"
    apply(cluster, held, local_queue(namespace, lq, cq))
    submit(cluster, namespace, "stranded", lq)
    cluster.wait_for(
        "djob",
        "stranded",
        namespace,
        lambda o: has_condition(o, "QuotaReserved", "WaitingForAdmission"),
    )
    try:
        kueue.uninstall()
        waiting = cluster.wait_for(
            "djob",
            "stranded",
            namespace,
            lambda o: has_condition(o, "QuotaReserved", "KueueUnavailable"),
            timeout=180,
        )
        assert waiting["status"]["phase"] == "Pending"
        assert f"remove the label {QUEUE_LABEL}" in condition(waiting, "QuotaReserved")["message"]
        # The documented way out: without the label, qorch's own book runs it.
        cluster.kubectl("label", "djob", "stranded", "-n", namespace, f"{QUEUE_LABEL}-")
        done = cluster.wait_for("djob", "stranded", namespace, succeeded, timeout=180)
        assert done["status"]["phase"] == "Succeeded", done["status"]["message"]
    finally:
        kueue.start()
