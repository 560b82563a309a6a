"""spec.suspend through the operator on a real API server, with real agents: a suspended job
is planned and held, runs nothing and holds no qubits; unsuspended, it runs its plan, or is
planned again when the node it was planned on changed meanwhile."""

from __future__ import annotations

import json

from tests.e2e.test_operator import succeeded
from tests.e2e.test_reroute import programs_run, two_nodes

#: Ten qubits: the whole of either node, so a job holding one leaves no room on it.
GHZ10 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[10];\ncreg c[10];\nh q[0];\n'
    + "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(9))
    + "measure q -> c;\n"
)


def apply_job(cluster, namespace: str, name: str, **spec) -> None:
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name},
        "spec": {"shots": 500, "circuit": {"qasm": GHZ10}, **spec},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))


def held(obj: dict) -> bool:
    status = obj.get("status", {})
    suspended = [c for c in status.get("conditions", []) if c["type"] == "Suspended"]
    return status.get("phase") == "Planned" and bool(suspended) and suspended[0]["status"] == "True"


def condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def unsuspend(cluster, namespace: str, name: str) -> None:
    cluster.kubectl(
        "patch", "djob", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )


async def test_a_suspended_job_is_planned_holds_nothing_and_runs_when_unsuspended(
    cluster, namespace, operator, start_agent
):
    agents = await two_nodes(cluster, namespace, start_agent)
    apply_job(cluster, namespace, "held", suspend=True)
    job = cluster.wait_for("djob", "held", namespace, held)
    plan = job["status"]["plan"]
    assert plan["nodes"] == "first" and plan["strategy"] == "single"
    assert plan.get("reservation", {}) == {}
    candidates = {c["strategy"]: c for c in plan["candidates"]}
    assert set(candidates) == {"single", "teleport", "cut", "locc-cut"}
    assert candidates["single"]["placement"] == [{"node": "first", "qubits": list(range(10))}]
    assert not candidates["cut"]["feasible"] and candidates["cut"]["reason"]
    assert condition(job, "Suspended")["reason"] == "Suspended"
    assert await programs_run(agents["first"]) == 0  # planned, nothing sent

    # It holds nothing: a job wanting all of `first` gets it and runs meanwhile.
    apply_job(cluster, namespace, "other")
    other = cluster.wait_for("djob", "other", namespace, succeeded)
    assert other["status"]["phase"] == "Succeeded", other["status"]["message"]
    assert other["status"]["plan"]["nodes"] == "first"
    assert held(cluster.get("djob", "held", namespace))
    assert await programs_run(agents["first"]) == 1  # the other job's program alone
    assert await programs_run(agents["spare"]) == 0

    unsuspend(cluster, namespace, "held")
    job = cluster.wait_for("djob", "held", namespace, succeeded)
    status = job["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["plan"]["nodes"] == "first"
    assert sum(status["result"]["counts"].values()) == 500
    resumed = condition(job, "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "Resumed")
    assert await programs_run(agents["first"]) == 2


async def test_unsuspended_after_its_node_was_cordoned_it_is_planned_again(
    cluster, namespace, operator, start_agent
):
    agents = await two_nodes(cluster, namespace, start_agent)
    apply_job(cluster, namespace, "held", suspend=True)
    job = cluster.wait_for("djob", "held", namespace, held)
    assert job["status"]["plan"]["nodes"] == "first"

    cluster.kubectl("annotate", "qn", "first", "-n", namespace, "qorch.dev/cordon=true")
    cluster.wait_for(
        "qn", "first", namespace, lambda o: o.get("status", {}).get("phase") == "Cordoned"
    )
    unsuspend(cluster, namespace, "held")
    job = cluster.wait_for("djob", "held", namespace, succeeded)
    status = job["status"]
    assert status["phase"] == "Succeeded", (status["message"], operator.output()[-3000:])
    assert status["plan"]["nodes"] == "spare"
    replanned = condition(job, "Suspended")
    assert (replanned["status"], replanned["reason"]) == ("False", "Replanned")
    assert "held single on first, now single on spare" in replanned["message"]
    assert await programs_run(agents["first"]) == 0
    assert await programs_run(agents["spare"]) == 1
