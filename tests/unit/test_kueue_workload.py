"""The Workload the operator makes for a Kueue-queued job, and what it writes back."""

from __future__ import annotations

from qorch.api import DistributedJob
from qorch.operator import kueue
from qorch.pipeline.ports import QueueRequest


def job(**labels: str) -> DistributedJob:
    return DistributedJob.model_validate(
        {
            "metadata": {
                "name": "j",
                "namespace": "lab",
                "uid": "abcdef-123",
                "labels": {kueue.QUEUE_LABEL: "team-a", **labels},
            },
            "spec": {"circuit": {"qasm": "OPENQASM 2.0;"}, "suspend": True},
        }
    )


def requests(pod_set: dict) -> dict:
    return pod_set["template"]["spec"]["containers"][0]["resources"]["requests"]


def allowed(pod_set: dict) -> list[str]:
    affinity = pod_set["template"]["spec"]["affinity"]["nodeAffinity"]
    term = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    return term["matchExpressions"][0]["values"]


def test_a_one_node_plan_may_go_to_any_candidate_node():
    wl = kueue.workload_manifest(
        job(**{kueue.PRIORITY_LABEL: "high"}), QueueRequest({"qn/lab/a": 3.0}, ("a", "b")), 100
    )
    assert wl["metadata"]["name"] == "djob-j-abcde"
    assert wl["metadata"]["ownerReferences"][0]["controller"] is True
    spec = wl["spec"]
    assert spec["queueName"] == "team-a" and spec["active"] is False  # suspended
    assert spec["priorityClassRef"]["name"] == "high" and spec["priority"] == 100
    [pod_set] = spec["podSets"]
    assert requests(pod_set) == {"qorch.dev/qubits": "3"}
    assert allowed(pod_set) == ["lab.a", "lab.b"]


def test_a_plan_over_two_nodes_stays_on_them_and_asks_for_its_link_rate():
    want = {"qn/lab/a": 4.0, "qn/lab/b": 3.0, "qlink/lab/ab": 2.5001}
    spec = kueue.workload_manifest(job(), QueueRequest(want, ("a", "b", "c")))["spec"]
    by_name = {p["name"]: p for p in spec["podSets"]}
    assert requests(by_name["node-0"]) == {"qorch.dev/qubits": "4"}
    assert allowed(by_name["node-0"]) == ["lab.a"] and allowed(by_name["node-1"]) == ["lab.b"]
    assert requests(by_name["link-0"]) == {"qorch.dev/millipairs-per-second": "2501"}
    assert allowed(by_name["link-0"]) == ["lab.ab"]


def test_quantities():
    assert kueue.quantity("10") == 10 and kueue.quantity(4) == 4
    assert kueue.quantity("2500m") == 2.5 and kueue.quantity("1k") == 1000


def test_requeue_clears_the_admission_and_says_why():
    body = {
        "metadata": {"generation": 1},
        "status": {
            "admission": {"clusterQueue": "cq"},
            "conditions": [
                {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
                 "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Evicted", "status": "True", "reason": "Preempted",
                 "message": "for a higher priority Workload",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        },
    }  # fmt: skip
    assert kueue._requeued(body)
    status = body["status"]
    assert status["admission"] is None
    conds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conds["QuotaReserved"] == ("False", "Pending")
    assert conds["Admitted"] == ("False", "NoReservation")
    assert conds["Requeued"] == ("True", "Preempted")
    assert not kueue._requeued(body)  # nothing left to give back
