"""Every transition of the DistributedJob state machine, one per test, against a fake World.

Agents answer from a script (canned counts, or the transport's AgentError), so nothing runs
a program: each test arranges the world and the job's status, steps once, and checks the
phase, the condition that explains it and what the reservation book holds.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from qorch.agent_protocol import AgentError, ErrorCode
from qorch.api import DistributedJob, get_condition
from qorch.api import reasons as R
from qorch.api.distributed_job import source_sha256, stored_spec
from qorch.channel.identity import Identity
from qorch.channel.signing import UNKNOWN_SIGNER, TrustedKey, now_utc, sign_job
from qorch.pipeline.authorization import AuthorizationPolicy, StaticKeys
from qorch.pipeline.job import JobPipeline, PipelineSettings, StepResult
from qorch.pipeline.reservations import QueueEntry, Reservations
from qorch.sanitizer import SanitizerPolicy, SanitizerPolicyFile

from .fake_world import NAMESPACE, WATCH_SECONDS, make_job, result

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n"
)
GHZ3 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
    "h q[0];\ncx q[0], q[1];\ncx q[1], q[2];\nmeasure q -> c;\n"
)
UNMEASURED = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\ncx q[0], q[1];\n'
BELL_COUNTS = {"00": 510, "11": 490}
SHOTS = sum(BELL_COUNTS.values())
#: Long before any test runs: a budget counted from then is spent.
LONG_AGO = "2000-01-01T00:00:00Z"
NOISY = {"twoQubitError": 0.05, "readoutError": 0.05}


def key(job: DistributedJob, attempt: int | None = None) -> str:
    """The job's reservation key; with an attempt, the prefix of its program ids."""
    base = f"{NAMESPACE}/{job.metadata.name}/{job.metadata.uid}"
    return base if attempt is None else f"{base}/{attempt}"


def qubits(node: str) -> str:
    return f"qn/{NAMESPACE}/{node}"


def condition(job: DistributedJob, type_: str) -> tuple[str, str] | None:
    """(status, reason) of one of the job's conditions."""
    found = get_condition(job.status.conditions, type_)
    return (found.status, found.reason) if found else None


def queued(book: Reservations, *nodes: str) -> list[str]:
    """Jobs waiting in the queue for any of these nodes (everyone ranks before this probe)."""
    probe = QueueEntry.of("probe", -(10**9), "~", frozenset(f"{NAMESPACE}/{n}" for n in nodes))
    return [e.job for e in book.ahead_of(probe)]


@pytest.fixture(autouse=True)
def _quiet_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)


async def step(pipeline: JobPipeline, job: DistributedJob) -> StepResult:
    """One step, its status persisted as a driver would."""
    result = await pipeline.step(job)
    job.status = result.status
    return result


async def step_to(pipeline: JobPipeline, job: DistributedJob, phase: str) -> None:
    """Step an arranged job until it reaches `phase` (the transitions before the one a test
    is about)."""
    for _ in range(6):
        if job.status.phase == phase:
            return
        await step(pipeline, job)
    raise AssertionError(f"never reached {phase}: {job.status.phase}: {job.status.message}")


async def admitted(
    pipeline: JobPipeline, name: str, qasm: str = BELL, **spec: Any
) -> DistributedJob:
    job = make_job(name, qasm, shots=SHOTS, **spec)
    await step_to(pipeline, job, "Admitted")
    return job


async def running(
    pipeline: JobPipeline, name: str = "j", qasm: str = BELL, **spec: Any
) -> DistributedJob:
    job = await admitted(pipeline, name, qasm, **spec)
    await step_to(pipeline, job, "Running")
    return job


# -- admit ---------------------------------------------------------------------------------


async def test_a_clean_circuit_is_admitted(pipeline, world, book):
    world.add_node("a", 4)
    job = make_job("j", BELL, shots=SHOTS)
    result = await step(pipeline, job)
    assert job.status.phase == "Admitted", job.status.message
    assert condition(job, R.SANITIZED) == ("True", R.POLICY_PASSED)
    assert condition(job, R.AUTHORIZED) == ("True", R.SIGNATURE_NOT_REQUIRED)
    assert condition(job, R.SUCCEEDED) == ("Unknown", R.IN_PROGRESS)
    assert job.status.sanitizer and job.status.sanitizer.accepted
    assert job.status.timings.admitted_at
    assert result.requeue_after is None
    assert world.reasons() == ["Admitted"]
    assert book.total() == 0 and world.calls == []


async def test_a_sanitizer_violation_rejects_the_job(world, book):
    world.add_node("a", 4)
    strict = SanitizerPolicyFile(default=SanitizerPolicy(max_qubits=2))
    pipeline = JobPipeline(world, book, PipelineSettings(policy=strict))
    job = make_job("j", GHZ3, shots=SHOTS)
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    # QS006: a register wider than maxQubits, refused before the circuit is parsed.
    assert condition(job, R.SANITIZED) == ("False", "QS006")
    assert condition(job, R.SUCCEEDED) == ("False", "QS006")
    assert job.status.sanitizer and not job.status.sanitizer.accepted
    assert job.status.message.startswith("QS006: ")
    assert book.total() == 0 and queued(book, "a") == [] and world.calls == []


async def test_a_circuit_that_measures_nothing_is_rejected(pipeline, world, book):
    world.add_node("a", 4)
    job = make_job("j", UNMEASURED, shots=SHOTS)
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.SANITIZED) == ("False", R.NOTHING_MEASURED)
    assert condition(job, R.SUCCEEDED) == ("False", R.NOTHING_MEASURED)
    assert "measures nothing" in job.status.message
    assert book.total() == 0


async def test_a_circuit_whose_configmap_key_is_missing_is_rejected(pipeline, world):
    world.add_node("a", 4)
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    job = DistributedJob.model_validate(
        {
            "metadata": {"name": "j", "namespace": NAMESPACE, "uid": "uid-j"},
            "spec": {"circuit": {"configMapRef": {"name": "circuits", "key": "ghz.qasm"}}},
        }
    )
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.SANITIZED) == ("False", R.CIRCUIT_UNAVAILABLE)
    assert job.status.message == "ConfigMap 'circuits' has no key 'ghz.qasm'"


def from_config_map(sha256: str | None = None, name: str = "j", **spec: Any) -> DistributedJob:
    ref = {"name": "circuits", "key": "bell.qasm", **({"sha256": sha256} if sha256 else {})}
    return DistributedJob.model_validate(
        {
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
            "spec": {"circuit": {"configMapRef": ref}, "shots": SHOTS, **spec},
        }
    )


async def test_a_configmap_that_does_not_hold_the_pinned_source_is_rejected(pipeline, world):
    world.add_node("a", 4)
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": GHZ3}
    job = from_config_map(sha256=source_sha256(BELL))
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.SANITIZED) == ("False", R.CIRCUIT_CHANGED)
    assert source_sha256(GHZ3) in job.status.message and source_sha256(BELL) in job.status.message
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    job = from_config_map(sha256=source_sha256(BELL))
    await step(pipeline, job)
    assert job.status.phase == "Admitted", job.status.message
    assert job.status.sanitizer and job.status.sanitizer.source_sha256 == source_sha256(BELL)


async def test_a_configmap_changed_after_admission_fails_the_job_and_runs_nothing(
    world, book, settings
):
    """The source is read again when the parsed circuit is not held (a restart): one other
    than the sanitizer passed never runs, pinned or not."""
    world.add_node("a", 4)
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    job = from_config_map()
    await step_to(JobPipeline(world, book, settings), job, "Admitted")
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": GHZ3}
    restarted = JobPipeline(world, book, settings)
    await step(restarted, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.CIRCUIT_CHANGED)
    assert "other than the one admitted" in job.status.message
    assert world.sent("run") == []


async def test_a_job_admitted_before_its_nodes_keeps_its_source_pinned_when_checked_again(
    world, book, settings
):
    """The rules that read the nodes' timing run once the nodes are seen, on the source
    admission passed: a ConfigMap rewritten meanwhile, or after, runs nothing."""
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    job = from_config_map()
    pipeline = JobPipeline(world, book, settings)
    await step_to(pipeline, job, "Admitted")  # no node yet
    world.add_node(
        "a",
        4,
        t2Microseconds=100.0,
        singleQubitGateNanoseconds=50.0,
        twoQubitGateNanoseconds=300.0,
        measureNanoseconds=1000.0,
    )
    await step(pipeline, job)  # the timing rules, then the plan
    assert job.status.sanitizer and job.status.sanitizer.source_sha256 == source_sha256(BELL)
    assert "estimatedDurationSeconds" in job.status.sanitizer.stats
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": GHZ3}
    restarted = JobPipeline(world, book, settings)
    await step(restarted, job)  # Running: the attempt recorded before anything is sent
    await step(restarted, job)  # its programs, built from the circuit read again
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.CIRCUIT_CHANGED)
    assert world.sent("run") == []


async def test_a_signed_job_must_pin_the_source_its_configmap_holds(world, book):
    """A signature covers the spec: a ConfigMap named there could hold any circuit."""
    world.add_node("a", 4)
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    alice = Identity.generate()
    keys = StaticKeys((TrustedKey(alice.public_key),))
    policy = AuthorizationPolicy(require_signature=True, keys=keys)
    pipeline = JobPipeline(world, book, PipelineSettings(authorization=policy))
    expires = now_utc() + timedelta(hours=1)
    for pin, phase, reason in [
        (None, "Rejected", R.CIRCUIT_NOT_PINNED),
        (source_sha256(BELL), "Admitted", R.SIGNATURE_VALID),
    ]:
        spec = from_config_map(sha256=pin).spec.wire()
        job = from_config_map(sha256=pin, signature=sign_job(spec, NAMESPACE, "j", alice, expires))
        await step(pipeline, job)
        assert job.status.phase == phase, job.status.message
        assert condition(job, R.AUTHORIZED) == ("True" if pin else "False", reason)


async def test_a_signature_by_an_untrusted_submitter_is_refused(world, book):
    world.add_node("a", 4)
    alice, bob = Identity.generate(), Identity.generate()
    keys = StaticKeys((TrustedKey(bob.public_key),))
    policy = AuthorizationPolicy(require_signature=True, keys=keys)
    pipeline = JobPipeline(world, book, PipelineSettings(authorization=policy))
    spec = stored_spec({"circuit": {"qasm": BELL}, "shots": SHOTS})
    signature = sign_job(spec, NAMESPACE, "j", alice, now_utc() + timedelta(hours=1))
    job = make_job("j", BELL, shots=SHOTS, signature=signature)
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.SANITIZED) == ("True", R.POLICY_PASSED)
    assert condition(job, R.AUTHORIZED) == ("False", UNKNOWN_SIGNER)
    assert condition(job, R.SUCCEEDED) == ("False", UNKNOWN_SIGNER)
    assert alice.fingerprint in job.status.message
    assert book.total() == 0 and world.calls == []


async def test_a_signature_by_a_trusted_submitter_is_admitted(world, book):
    world.add_node("a", 4)
    alice = Identity.generate()
    keys = StaticKeys((TrustedKey(alice.public_key),))
    policy = AuthorizationPolicy(require_signature=True, keys=keys)
    pipeline = JobPipeline(world, book, PipelineSettings(authorization=policy))
    spec = stored_spec({"circuit": {"qasm": BELL}, "shots": SHOTS})
    signature = sign_job(spec, NAMESPACE, "j", alice, now_utc() + timedelta(hours=1))
    job = make_job("j", BELL, shots=SHOTS, signature=signature)
    await step(pipeline, job)
    assert job.status.phase == "Admitted", job.status.message
    assert condition(job, R.AUTHORIZED) == ("True", R.SIGNATURE_VALID)


# -- plan: reject --------------------------------------------------------------------------


async def test_a_circuit_wider_than_every_node_is_unschedulable(pipeline, world, book):
    world.add_node("a", 2)
    world.add_node("b", 2)
    job = await admitted(pipeline, "j", GHZ3)
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.PLANNED) == ("False", R.UNSCHEDULABLE)
    assert condition(job, R.SUCCEEDED) == ("False", R.UNSCHEDULABLE)
    assert "no node has 3 free qubits" in job.status.message
    assert book.total() == 0 and queued(book, "a", "b") == []


async def test_a_fidelity_budget_no_plan_meets_rejects_the_job(pipeline, world, book):
    world.add_node("a", 4, **NOISY)
    job = await admitted(pipeline, "j", fidelityBudget=0.999)
    await step(pipeline, job)
    assert job.status.phase == "Rejected"
    assert condition(job, R.PLANNED) == ("False", R.FIDELITY_BUDGET_NOT_MET)
    assert condition(job, R.SUCCEEDED) == ("False", R.FIDELITY_BUDGET_NOT_MET)
    assert job.status.message.startswith("no plan meets fidelityBudget 0.999")
    assert book.total() == 0 and queued(book, "a") == []


# -- plan: wait ----------------------------------------------------------------------------


async def test_a_job_that_fits_but_not_the_free_qubits_waits_for_capacity(
    pipeline, world, book, settings
):
    world.add_node("a", 3)
    job = await admitted(pipeline, "j", GHZ3)
    assert book.try_reserve("other", {qubits("a"): 2}, {qubits("a"): 3})
    result = await step(pipeline, job)
    assert job.status.phase == "Pending"
    assert condition(job, R.PLANNED) == ("False", R.WAITING_FOR_CAPACITY)
    assert job.status.message.startswith("waiting for capacity: ")
    assert result.requeue_after == settings.capacity_retry_seconds
    assert queued(book, "a") == [key(job)]
    assert book.allocated(qubits("a")) == 2  # the other job's hold, nothing of this one
    assert world.reasons()[-1] == R.WAITING_FOR_CAPACITY


async def test_a_waiting_job_is_placed_once_capacity_is_released(pipeline, world, book):
    world.add_node("a", 3)
    job = await admitted(pipeline, "j", GHZ3)
    assert book.try_reserve("other", {qubits("a"): 2}, {qubits("a"): 3})
    await step(pipeline, job)
    assert condition(job, R.PLANNED) == ("False", R.WAITING_FOR_CAPACITY)
    book.release("other")
    await step(pipeline, job)
    assert job.status.phase == "Planned", job.status.message
    assert condition(job, R.PLANNED) == ("True", R.PLACED)
    assert book.allocated(qubits("a")) == 3
    assert queued(book, "a") == []


async def test_a_job_that_fits_waits_behind_a_higher_priority_one(pipeline, world, book):
    world.add_node("a", 4)
    assert book.try_reserve("other", {qubits("a"): 2}, {qubits("a"): 4})
    high = await admitted(pipeline, "high", GHZ3, priority=10)
    await step(pipeline, high)
    assert condition(high, R.PLANNED) == ("False", R.WAITING_FOR_CAPACITY)
    low = await admitted(pipeline, "low", BELL, priority=0)
    await step(pipeline, low)  # 2 qubits are free, but no backfilling past `high`
    assert low.status.phase == "Pending"
    assert condition(low, R.PLANNED) == ("False", R.QUEUED)
    assert low.status.message.startswith("queued: ")
    assert queued(book, "a") == [key(high), key(low)]
    assert book.allocated(qubits("a")) == 2


async def test_a_job_whose_nodes_are_not_ready_waits_for_them(pipeline, world, book):
    world.add_node("a", 4, phase="Unreachable", reason=R.AGENT_UNREACHABLE, message="no answer")
    job = await admitted(pipeline, "j")
    result = await step(pipeline, job)
    assert job.status.phase == "Pending"
    assert condition(job, R.PLANNED) == ("False", R.NODE_NOT_READY)
    assert job.status.message.startswith("waiting for nodes: ")
    assert "a is Unreachable (AgentUnreachable: no answer)" in job.status.message
    assert result.requeue_after is not None
    assert queued(book, "a") == []  # waiting for nodes holds nobody back
    assert book.total() == 0


async def test_a_job_applied_before_its_nodes_waits_for_them(pipeline, world, book):
    world.add_node("elsewhere", 4, labels={"site": "b"})
    job = await admitted(pipeline, "j", nodeSelector={"matchLabels": {"site": "a"}})
    await step(pipeline, job)
    assert job.status.phase == "Pending"
    assert condition(job, R.PLANNED) == ("False", R.NODE_NOT_READY)
    assert job.status.message == "no QuantumNode matches the nodeSelector yet"
    assert book.total() == 0 and queued(book, "elsewhere") == []


async def test_a_job_seen_before_its_nodes_is_checked_against_their_coherence(pipeline, world):
    """A job applied together with its nodes is often seen first, and admitted while no
    node's T2 is known: QS305 applies to it once its nodes are seen, as to any other."""
    # 200 gates of 50 ns: 10 us, ten times the node's T2.
    job = await admitted(pipeline, "j", BELL.replace("h q[0];", "h q[0];\n" * 200))
    assert "estimatedDurationSeconds" not in job.status.sanitizer.stats
    world.add_node(
        "a",
        4,
        t2Microseconds=1.0,
        singleQubitGateNanoseconds=50.0,
        twoQubitGateNanoseconds=300.0,
        measureNanoseconds=1000.0,
    )
    await step(pipeline, job)
    assert job.status.phase == "Rejected", job.status.message
    assert job.status.message.startswith("QS305"), job.status.message
    assert condition(job, R.SANITIZED) == ("False", "QS305")


async def test_a_job_that_waited_past_its_timeout_fails(pipeline, world, book):
    world.add_node("a", 3)
    job = await admitted(pipeline, "j", GHZ3)
    assert book.try_reserve("other", {qubits("a"): 2}, {qubits("a"): 3})
    await step(pipeline, job)
    assert queued(book, "a") == [key(job)]
    job.status.timings.admitted_at = LONG_AGO
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.TIMED_OUT)
    assert job.status.message.startswith("not placed within timeoutSeconds=600")
    assert queued(book, "a") == []
    assert book.allocated(qubits("a")) == 2  # only the other job's


# -- plan: place ---------------------------------------------------------------------------


async def test_an_admitted_job_is_placed_on_the_best_node_and_holds_its_qubits(
    pipeline, world, book
):
    world.add_node("noisy", 4, **NOISY)
    world.add_node("clean", 4)
    job = await admitted(pipeline, "j")
    result = await step(pipeline, job)
    assert job.status.phase == "Planned", job.status.message
    assert condition(job, R.PLANNED) == ("True", R.PLACED)
    plan = job.status.plan
    assert plan is not None
    assert (plan.strategy, plan.nodes) == ("single", "clean")
    assert [(p.id, p.node, p.shots) for p in plan.programs] == [("p0", "clean", SHOTS)]
    assert plan.reservation == {qubits("clean"): 2.0}
    assert book.allocated(qubits("clean")) == 2 and book.allocated(qubits("noisy")) == 0
    assert result.requeue_after is None
    assert world.reasons()[-1] == R.PLACED
    assert world.calls == []  # placing sends nothing


# -- start attempt -------------------------------------------------------------------------


async def test_a_planned_job_records_its_attempt_before_sending_anything(pipeline, world, book):
    world.add_node("a", 4)
    job = await admitted(pipeline, "j")
    await step_to(pipeline, job, "Planned")
    await step(pipeline, job)
    assert job.status.phase == "Running"
    assert job.status.attempt == 1
    assert condition(job, R.DISPATCHED) == ("True", R.PROGRAMS_SENT)
    assert [(p.id, p.node, p.state, p.attempt) for p in job.status.progress] == [
        ("p0", "a", "Running", 1)
    ]
    assert job.status.timings.started_at
    assert world.calls == []  # the attempt is persisted first; the next step sends
    assert book.allocated(qubits("a")) == 2


# -- collect: succeed ----------------------------------------------------------------------


async def test_a_running_job_succeeds_with_its_agents_counts(pipeline, world, book):
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    assert condition(job, R.SUCCEEDED) == ("True", R.COMPLETED)
    assert condition(job, R.DISPATCHED) == ("True", R.PROGRAMS_DONE)
    assert condition(job, R.VERIFIED) == ("True", R.WITHIN_TOLERANCE)
    assert job.status.result and job.status.result.counts == BELL_COUNTS
    assert job.status.message == f"{SHOTS} shots collected"
    assert [(p.state, p.seconds) for p in job.status.progress] == [("Done", 0.001)]
    [run] = world.sent("run")
    assert run.node == "a"
    assert run.payload["programId"] == f"{key(job, 1)}/p0"
    assert run.payload["shots"] == SHOTS and "circuit" in run.payload
    assert book.total() == 0
    assert world.reasons()[-1] == R.COMPLETED


async def test_readout_mitigation_uses_the_nodes_calibration(pipeline, world):
    world.add_node("a", 4)
    world.calibrate("a", p01=0.02, p10=0.04, at="2026-01-01T00:00:00Z")
    world.answer("a", {"00": 480, "01": 15, "10": 15, "11": 490})
    job = await running(pipeline, mitigation="readout")
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    mitigated = job.status.result.mitigated if job.status.result else None
    assert mitigated is not None
    assert mitigated.calibrations == ["a@2026-01-01T00:00:00Z"]
    assert mitigated.method.startswith("readout: M3")
    assert mitigated.quasi_probabilities is not None


async def test_a_node_cordoned_mid_program_does_not_stop_it(pipeline, world, book):
    world.add_node("a", 4)
    job = await running(pipeline)

    async def run(payload: dict[str, Any]) -> dict[str, Any]:
        world.set_phase("a", "Cordoned", R.CORDONED)
        await asyncio.sleep(5 * WATCH_SECONDS)  # the job looks at its nodes meanwhile
        return result(payload, "a", BELL_COUNTS)

    world.runs["a"] = run
    await step(pipeline, job)
    assert job.status.phase == "Succeeded", job.status.message
    assert job.status.reroutes == [] and world.sent("cancel") == []
    assert book.total() == 0


# -- collect: fail -------------------------------------------------------------------------


async def test_an_agent_error_fails_the_job(pipeline, world, book):
    world.add_node("a", 4)
    world.fail("a", AgentError("SimulationFailed", "the noise model does not fit"))
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.NODE_FAILED)
    assert job.status.message == "a: SimulationFailed: the noise model does not fit"
    [progress] = job.status.progress
    assert (progress.state, progress.message) == (
        "Failed",
        "SimulationFailed: the noise model does not fit",
    )
    assert job.status.reroutes == []
    assert book.total() == 0


async def test_a_program_that_outlives_its_budget_times_the_job_out(pipeline, world, book):
    world.add_node("a", 4)
    world.fail(
        "a",
        AgentError(ErrorCode.TIMEOUT, "program was not finished when the call's budget ran out"),
    )
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.TIMED_OUT)
    assert [p.state for p in job.status.progress] == ["Failed"]
    assert book.total() == 0


async def test_a_job_whose_budget_is_spent_fails_before_sending(pipeline, world, book):
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)
    job.status.timings.admitted_at = LONG_AGO
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.SUCCEEDED) == ("False", R.TIMED_OUT)
    assert job.status.message == "no result within timeoutSeconds=600"
    assert world.sent("run") == []
    assert book.total() == 0


async def test_an_unverified_result_fails_the_job_when_policy_says_so(world, book):
    world.add_node("a", 4)
    world.answer("a", {"01": 500, "10": 500})  # never a Bell state's outcome
    pipeline = JobPipeline(world, book, PipelineSettings(fail_unverified=True))
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.VERIFIED) == ("False", R.ABOVE_TOLERANCE)
    assert condition(job, R.SUCCEEDED) == ("False", R.VERIFICATION_FAILED)
    assert book.total() == 0


# A job that times out while its program may still run is cancelled on the agent: its
# qubits go back to the book, so the agent must not run on with them.


async def test_a_program_that_outlives_its_budget_is_cancelled_on_its_agent(pipeline, world, book):
    world.add_node("a", 4)
    world.fail(
        "a",
        AgentError(ErrorCode.TIMEOUT, "program was not finished when the call's budget ran out"),
    )
    job = await running(pipeline)
    await step(pipeline, job)
    assert condition(job, R.SUCCEEDED) == ("False", R.TIMED_OUT)
    assert book.total() == 0
    await pipeline.cancel(job)  # and even once the job is deleted
    cancels = [(c.node, c.payload) for c in world.sent("cancel")]
    assert cancels == [("a", {"programIds": [f"{key(job, 1)}/p0"]})]


async def test_an_attempt_found_past_its_budget_is_cancelled_on_its_agent(pipeline, world, book):
    # A restarted driver finds the attempt persisted (so maybe sent) and the budget spent.
    world.add_node("a", 4)
    job = await running(pipeline)
    job.status.timings.admitted_at = LONG_AGO
    await step(pipeline, job)
    assert condition(job, R.SUCCEEDED) == ("False", R.TIMED_OUT)
    assert book.total() == 0
    cancels = [(c.node, c.payload) for c in world.sent("cancel")]
    assert cancels == [("a", {"programIds": [f"{key(job, 1)}/p0"]})]


async def test_a_bug_while_programs_run_fails_the_job_and_cancels_them(
    pipeline, world, book, monkeypatch
):
    world.add_node("a", 4)
    world.hang("a")
    job = await running(pipeline)

    def trouble(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(pipeline, "_trouble", trouble)  # a bug while the program runs
    job.status = (await pipeline.step_or_fail(job)).status
    assert condition(job, R.SUCCEEDED) == ("False", R.INTERNAL_ERROR)
    cancels = [(c.node, c.payload) for c in world.sent("cancel")]
    assert cancels == [("a", {"programIds": [f"{key(job, 1)}/p0"]})]
    assert book.total() == 0


# -- collect: re-route ---------------------------------------------------------------------


async def test_a_node_that_turns_degraded_mid_program_reroutes_the_job(pipeline, world, book):
    world.add_node("a", 4)
    world.add_node("spare", 4, **NOISY)
    job = await running(pipeline)
    assert job.status.plan and job.status.plan.nodes == "a"
    world.hang("a", lambda: world.set_phase("a", "Degraded", R.ERROR_RATE_ABOVE_THRESHOLD, "0.2"))
    result = await step(pipeline, job)
    assert job.status.phase == "Pending", job.status.message
    assert condition(job, R.PLANNED) == ("False", R.REROUTING)
    assert condition(job, R.DISPATCHED) == ("False", R.REROUTING)
    [reroute] = job.status.reroutes
    assert (reroute.attempt, reroute.resource, reroute.reason) == (1, "QuantumNode/a", "Degraded")
    assert [p.state for p in job.status.progress] == ["Cancelled"]
    [cancel] = world.sent("cancel")
    assert (cancel.node, cancel.payload) == ("a", {"programIds": [f"{key(job, 1)}/p0"]})
    assert book.total() == 0
    assert result.requeue_after is None  # moving, not waiting: step again now
    assert world.events[-1].type == "Warning" and world.reasons()[-1] == R.REROUTING


async def test_an_agent_that_fails_mid_program_reroutes_the_job(pipeline, world, book):
    world.add_node("a", 4)
    world.add_node("spare", 4, **NOISY)
    world.fail("a", AgentError(ErrorCode.UNREACHABLE, "a stopped answering"))
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Pending", job.status.message
    assert condition(job, R.PLANNED) == ("False", R.REROUTING)
    [reroute] = job.status.reroutes
    assert (reroute.resource, reroute.reason, reroute.message) == (
        "QuantumNode/a",
        R.AGENT_FAILED,
        "a stopped answering",
    )
    assert [c.node for c in world.sent("cancel")] == ["a"]
    assert book.total() == 0


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.PEER_MESSAGE_MISSING,
        ErrorCode.PEER_BAD_SIGNATURE,
        ErrorCode.PEER_OUT_OF_ORDER,
        ErrorCode.PEER_UNREACHABLE,
    ],
)
async def test_a_failed_exchange_between_agents_reroutes_the_job(pipeline, world, book, code):
    """An LOCC program's classical messages went wrong: named, re-routed, never assembled."""
    world.add_node("a", 4)
    world.add_node("spare", 4, **NOISY)
    world.fail("a", AgentError(code, "exchange x: message 3 of the peer"))
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Pending", job.status.message
    assert job.status.result is None
    [reroute] = job.status.reroutes
    # A plan without a link names its node; an LOCC plan names the link (its classical path).
    assert (reroute.resource, reroute.reason) == ("QuantumNode/a", code)
    assert book.total() == 0


async def test_a_node_deleted_mid_program_reroutes_the_job(pipeline, world, book):
    world.add_node("a", 4)
    world.add_node("spare", 4, **NOISY)
    job = await running(pipeline)
    world.hang("a", lambda: world.remove_node("a"))
    await step(pipeline, job)
    assert job.status.phase == "Pending", job.status.message
    [reroute] = job.status.reroutes
    assert (reroute.resource, reroute.reason) == ("QuantumNode/a", R.NODE_MISSING)
    assert world.sent("cancel") == []  # nobody left to tell
    assert book.total() == 0


async def test_a_rerouted_job_is_placed_away_from_the_node_it_left(pipeline, world, book):
    world.add_node("a", 4)
    world.add_node("spare", 4, **NOISY)
    world.fail("a", AgentError(ErrorCode.UNREACHABLE, "a stopped answering"))
    job = await running(pipeline)
    await step(pipeline, job)
    assert condition(job, R.PLANNED) == ("False", R.REROUTING)
    world.set_phase("a", "Ready")  # healthy again, and still the better node
    await step(pipeline, job)
    assert job.status.phase == "Planned", job.status.message
    assert condition(job, R.PLANNED) == ("True", R.PLACED)
    assert job.status.plan and job.status.plan.nodes == "spare"
    assert book.allocated(qubits("spare")) == 2 and book.allocated(qubits("a")) == 0
    await step(pipeline, job)
    assert job.status.attempt == 2


async def test_a_rerouted_job_with_nowhere_left_fails(pipeline, world, book):
    world.add_node("only", 4)
    world.fail("only", AgentError(ErrorCode.UNREACHABLE, "only stopped answering"))
    job = await running(pipeline)
    await step(pipeline, job)
    assert condition(job, R.PLANNED) == ("False", R.REROUTING)
    await step(pipeline, job)
    assert job.status.phase == "Failed"
    assert condition(job, R.PLANNED) == ("False", R.NO_HEALTHY_RESOURCES)
    assert condition(job, R.SUCCEEDED) == ("False", R.NO_HEALTHY_RESOURCES)
    assert "QuantumNode/only (AgentFailed)" in job.status.message
    assert book.total() == 0 and queued(book, "only") == []


# -- cancel --------------------------------------------------------------------------------


async def test_deleting_a_running_job_cancels_its_programs_and_frees_its_qubits(
    pipeline, world, book
):
    world.add_node("a", 4)
    job = await running(pipeline)
    assert book.allocated(qubits("a")) == 2
    await pipeline.cancel(job)
    [cancel] = world.sent("cancel")
    assert (cancel.node, cancel.payload) == ("a", {"programIds": [f"{key(job, 1)}/p0"]})
    assert book.total() == 0


async def test_deleting_a_waiting_job_lets_the_jobs_behind_it_be_placed(pipeline, world, book):
    world.add_node("a", 4)
    assert book.try_reserve("other", {qubits("a"): 2}, {qubits("a"): 4})
    high = await admitted(pipeline, "high", GHZ3, priority=10)
    await step(pipeline, high)
    low = await admitted(pipeline, "low", BELL)
    await step(pipeline, low)
    assert condition(low, R.PLANNED) == ("False", R.QUEUED)
    await pipeline.cancel(high)
    assert queued(book, "a") == [key(low)]
    assert world.sent("cancel") == []  # it never ran
    await step(pipeline, low)
    assert low.status.phase == "Planned", low.status.message
    assert book.allocated(qubits("a")) == 4


# -- terminal ------------------------------------------------------------------------------


async def test_stepping_a_finished_job_releases_a_hold_restored_for_it(pipeline, world, book):
    world.add_node("a", 4)
    world.answer("a", BELL_COUNTS)
    job = await running(pipeline)
    await step(pipeline, job)
    assert job.status.phase == "Succeeded"
    book.restore(key(job), {qubits("a"): 2})  # as a restarted driver reads statuses back
    before = job.status.model_copy(deep=True)
    await step(pipeline, job)
    assert job.status == before
    assert book.total() == 0
