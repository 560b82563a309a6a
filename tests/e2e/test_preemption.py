"""Preemption in the built-in book, against a real API server and a real agent: a job of a
preempting priority class stops a running job of lower priority, runs, and the preempted
job runs again afterwards; both succeed, and only the preempted attempt's program is run
again (its first run was cancelled, so the agent counts each program once).

Run with `pytest -s` to see the figures.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import yaml

from tests.e2e.conftest import OperatorProcess
from tests.e2e.test_faults import (
    NOISE,
    circuit,
    job_doc,
    kubectl,
    live,
    phase,
    programs_run,
    start_nodes,
    wait_all_terminal,
)

pytestmark = pytest.mark.e2e

LOW_SHOTS = 1000
CLASSES = {
    "urgent": {"value": 1000, "preemptionPolicy": "PreemptLowerPriority"},
    "batch": {"value": 10},
}


@pytest.fixture
def preempting_operator(cluster, namespace, tmp_path, operator_key):
    op = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        operator_key.key_file,
        extra_env={"QORCH_PRIORITY_CLASSES": json.dumps(CLASSES), "QORCH_MAX_PREEMPTIONS": "1"},
    )
    op.start()
    yield op
    op.stop()


def condition(job: dict, kind: str) -> dict:
    return next((c for c in job["status"].get("conditions", []) if c["type"] == kind), {})


async def test_an_urgent_job_preempts_a_running_batch_job_and_both_finish(
    cluster, namespace, preempting_operator, start_agent
):
    op = preempting_operator
    await live(op)
    # One node of 10 qubits, at least 8 per job: the two jobs cannot run side by side.
    agents = await start_nodes(cluster, namespace, start_agent, {"solo": 10}, NOISE)
    qasm = circuit(8)
    # Fewer shots than 2^10 under gate noise are simulated one by one: seconds of Aer, so
    # high comes while low runs. (With more shots than 2^n, Aer evolves one density matrix
    # for all of them: a tenth of a second for 8 qubits, and low could end before high.)
    long_qasm = circuit(10, layers=100)
    low = job_doc("low", LOW_SHOTS, "preempt", qasm=long_qasm, priorityClassName="batch")
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(low))
    await asyncio.to_thread(
        cluster.wait_for, "djob", "low", namespace, lambda o: phase(o) == "Running", 60
    )
    high = job_doc("high", 500, "preempt", qasm=qasm, priorityClassName="urgent")
    began = time.monotonic()
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(high))
    try:
        preempted = await asyncio.to_thread(
            cluster.wait_for,
            "djob",
            "low",
            namespace,
            lambda o: o.get("status", {}).get("preemptions") == 1,
            60,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log ends:\n{op.output()[-6000:]}") from None
    stopped = time.monotonic() - began
    if preempted["status"]["attempt"] == 1:
        # Seen before high finished and low was placed again (the event below says which
        # attempt was cancelled either way).
        cancelled = [p["state"] for p in preempted["status"]["progress"]]
        assert cancelled == ["Cancelled"], preempted["status"]["progress"]
    done = await wait_all_terminal(cluster, namespace, "preempt", 2, timeout=300)
    log = op.output()
    for name, shots in (("low", LOW_SHOTS), ("high", 500)):
        status = done[name]["status"]
        assert status["phase"] == "Succeeded", (name, status.get("message"), log[-3000:])
        assert sum(status["result"]["counts"].values()) == shots
    low_s, high_s = done["low"]["status"], done["high"]["status"]
    assert (high_s["attempt"], high_s["preemptions"]) == (1, 0)
    # Preempted once, so its second attempt ran; its first attempt's program was cancelled.
    assert (low_s["attempt"], low_s["preemptions"]) == (2, 1)
    assert high_s["timings"]["finishedAt"] <= low_s["timings"]["finishedAt"]
    ran = await programs_run(agents)
    # high's program and low's second attempt ran to the end; low's first did not.
    assert ran == {"solo": 2}, ran
    events = await kubectl(
        cluster, "get", "events", "-n", namespace, "--field-selector", "reason=Preempted"
    )
    assert "preempted by high (higher priority): attempt 1 cancelled" in events, events
    print(
        f"\npreemption: low preempted {stopped:.1f}s after high was applied; programsRun={ran}"
        f" (high 1, low's restart 1; the preempted attempt was cancelled on the agent)"
    )


async def test_a_job_of_an_unknown_priority_class_is_rejected_naming_the_classes(
    cluster, namespace, preempting_operator
):
    doc = job_doc("typo", 100, "bad", qasm=circuit(2), priorityClassName="urgnet")
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc))
    job = await asyncio.to_thread(
        cluster.wait_for, "djob", "typo", namespace, lambda o: phase(o) == "Rejected", 60
    )
    assert condition(job, "Succeeded")["reason"] == "InvalidPriorityClass"
    assert "'urgnet' is not a priority class (known: batch, urgent)" in job["status"]["message"]
