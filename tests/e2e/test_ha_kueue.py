"""Leader election with Kueue admitting the jobs: two operator replicas, Kueue's real
controller, the leader SIGKILLed mid-job. The standby takes over from the Workloads that
exist (the index the job daemons read is filled before they run), creates none twice, and
every job finishes once with its Workload Finished.

Run with `pytest -s` to see the takeover time.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import yaml

from tests.e2e.kueue_fixture import (
    apply,
    cluster_queue,
    kueue_controller,  # noqa: F401  (the `kueue` fixture)
    local_queue,
    node_flavor,
)
from tests.e2e.test_faults import (
    NOISE,
    circuit,
    job_doc,
    jobs,
    kubectl,
    phase,
    programs_run,
    start_nodes,
    wait_all_terminal,
)
from tests.e2e.test_ha import (
    TAKEOVER_LIMIT_SECONDS,
    holder,
    replicas,  # noqa: F401  (the `replicas` fixture)
    wait_holder,
    wait_operating,
    wait_standby,
)
from tests.e2e.test_kueue import (
    QUEUE_LABEL,
    has_condition,
    queue_names,  # noqa: F401  (the `queue_names` fixture)
)

pytestmark = pytest.mark.e2e


def workloads(cluster, namespace: str) -> dict[str, list[dict]]:
    """The namespace's Workloads by the DistributedJob that owns them."""
    items = json.loads(
        cluster.kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "json")
    )["items"]
    owned: dict[str, list[dict]] = {}
    for wl in items:
        for ref in wl["metadata"].get("ownerReferences", []):
            if ref["kind"] == "DistributedJob":
                owned.setdefault(ref["name"], []).append(wl)
    return owned


async def test_with_kueue_the_standby_takes_over_within_30s_and_no_workload_is_made_twice(
    cluster,
    namespace,
    kueue,
    replicas,  # noqa: F811
    start_agent,
    queue_names,  # noqa: F811
):
    first, second = replicas
    first.start()
    await wait_holder(cluster, namespace, "a", 60)
    second.start()
    await wait_standby(second)
    agents = await start_nodes(cluster, namespace, start_agent, {"n1": 10, "n2": 10}, NOISE)
    cq, lq = queue_names
    # 10 qubits of quota per node, 8 per job: Kueue admits one job per node at a time.
    apply(cluster, node_flavor(namespace, "n1"), node_flavor(namespace, "n2"))
    quotas = {f"qn.{namespace}.n1": 10, f"qn.{namespace}.n2": 10}
    apply(cluster, cluster_queue(cq, quotas), local_queue(namespace, lq, cq))
    assert holder(cluster, namespace) == "a"
    # Fewer shots than 2^8, so simulated shot by shot: seconds each.
    qasm = circuit(8, layers=200)
    shots = {f"hak-{i}": 150 + 25 * i for i in range(5)}
    docs = [job_doc(name, n, "hak", qasm=qasm) for name, n in shots.items()]
    for doc in docs:
        doc["metadata"]["labels"][QUEUE_LABEL] = lq
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def running(obj: dict) -> bool:
        return any(phase(j) == "Running" for j in obj.get("items", []))

    await asyncio.to_thread(cluster.wait_for, "djob", "", namespace, running, 180, "faults=hak")
    first.kill()
    killed = time.monotonic()
    at_kill = {j["metadata"]["name"]: phase(j) for j in await jobs(cluster, namespace, "hak")}
    at_kill_wls = workloads(cluster, namespace)
    before = {job: [w["metadata"]["uid"] for w in wls] for job, wls in at_kill_wls.items()}
    admitted_before = sorted(
        job for job, wls in at_kill_wls.items() if any(has_condition(w, "Admitted") for w in wls)
    )
    takeover = await wait_holder(cluster, namespace, "b", 60)
    operating = takeover + await wait_operating(second, 60)
    done = await wait_all_terminal(cluster, namespace, "hak", len(shots), timeout=360)
    finished = time.monotonic() - killed
    log_b = second.output()
    for name, job in done.items():
        status = job["status"]
        assert status["phase"] == "Succeeded", (name, status.get("message"), log_b[-3000:])
        assert sum(status["result"]["counts"].values()) == shots[name], name
        assert status["attempt"] == 1, (name, status["attempt"])
    ran = await programs_run(agents)
    programs = sum(len(j["status"]["plan"]["programs"]) for j in done.values())
    assert sum(ran.values()) == programs, (ran, programs)

    # One Workload per job, the very object that existed at the kill where there was one.
    owned = workloads(cluster, namespace)
    assert sorted(owned) == sorted(shots), sorted(owned)
    for name, wls in owned.items():
        assert len(wls) == 1, (name, [w["metadata"]["name"] for w in wls])
        if name in before:
            assert [w["metadata"]["uid"] for w in wls] == before[name], name
    # The new leader created only the Workloads that did not exist yet.
    created = {line.rsplit("/", 1)[1] for line in log_b.splitlines() if "created Workload" in line}
    new_since_kill = {owned[job][0]["metadata"]["name"] for job in shots if job not in before}
    assert created <= new_since_kill, (created, sorted(before))

    # Each Workload admitted once: never evicted nor requeued, and Finished.
    for name in shots:
        wl_name = owned[name][0]["metadata"]["name"]
        wl = await asyncio.to_thread(
            cluster.wait_for,
            "workloads.kueue.x-k8s.io",
            wl_name,
            namespace,
            lambda w: has_condition(w, "Finished", "Succeeded"),
            60,
        )
        types = {c["type"]: (c["status"], c["reason"]) for c in wl["status"]["conditions"]}
        assert "Evicted" not in types, (name, types)
        assert not wl["status"].get("requeueState"), (name, wl["status"])
    print(
        f"\nha+kueue: takeover (kill -> standby holds the Lease) {takeover:.1f}s, operating"
        f" (kopf live) {operating:.1f}s (limit {TAKEOVER_LIMIT_SECONDS}s); all {len(shots)}"
        f" jobs done {finished:.1f}s after the kill; jobs at the kill {at_kill}; Workloads"
        f" admitted at the kill {admitted_before}; new leader created {sorted(created)};"
        f" programsRun={ran} (programs={programs})"
    )
    assert operating < TAKEOVER_LIMIT_SECONDS, (takeover, operating)
