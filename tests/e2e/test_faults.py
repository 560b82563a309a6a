"""Faults against a real API server and real agents: operator kills, a crowd, hostile jobs.

- The operator SIGKILLed 20 times at random points: every job ends Succeeded, no program
  runs twice, and no restarted reservation book hands out a node its resumed jobs still use.
- A hundred jobs in one `kubectl apply` over four nodes: the reservation log never loads a
  node beyond its qubits, and jobs that queued together are placed in priority order.
- Hostile and huge jobs beside ordinary ones: each is rejected naming what to fix, can be
  deleted, and the ordinary jobs neither fail nor slow down much.

Run with `pytest -s` to see each test's figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import selectors
import subprocess
import time
import urllib.request
from collections import Counter

import pytest
import yaml

from tests.support import REPO, make_node

pytestmark = pytest.mark.e2e

TERMINAL = ("Succeeded", "Failed", "Rejected")
# Noise makes Aer simulate shot by shot, so a program's run time scales with its shots, up
# to 2^n shots on n qubits: for more, Aer (and the agent) evolves one density matrix.
NOISE = {"twoQubitError": 0.01}


def circuit(width: int, layers: int = 20) -> str:
    """Layers of H, a shifting ladder of CX and T on `width` qubits, all measured."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{width}];", f"creg c[{width}];"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(width)]
        if width > 1:
            shift = 1 + layer % (width - 1)
            lines += [f"cx q[{i}], q[{(i + shift) % width}];" for i in range(0, width - 1, 2)]
        lines += [f"t q[{i}];" for i in range(width)]
    lines.append("measure q -> c;")
    return "\n".join(lines)


def node_doc(name: str, qubits: int, agent, noise: dict | None = None) -> dict:
    spec: dict = {
        "qubits": qubits,
        "backend": {"type": "external", "endpoint": agent.endpoint},
        "identity": {"publicKey": agent.public_key},
    }
    if noise:
        spec["noise"] = noise
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": spec,
    }


def job_doc(name: str, shots: int, label: str, **spec: object) -> dict:
    if "circuit" not in spec:
        spec["circuit"] = {"qasm": spec.pop("qasm")}
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": name, "labels": {"faults": label}},
        "spec": {"shots": shots, "strategy": "single", **spec},
    }


def phase(obj: dict) -> str:
    return obj.get("status", {}).get("phase") or "New"


async def start_nodes(cluster, namespace, start_agent, spec: dict[str, int], noise=None) -> dict:
    """One agent per node, the nodes applied and Ready; the agents by node name."""
    extra = {"noise": noise} if noise else {}
    started = await asyncio.gather(
        *(start_agent(make_node(name, qubits, **extra)) for name, qubits in spec.items())
    )
    agents = dict(zip(spec, started, strict=True))
    docs = [node_doc(name, spec[name], agent, noise) for name, agent in agents.items()]
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    for name in agents:
        await asyncio.to_thread(
            cluster.wait_for, "qn", name, namespace, lambda o: phase(o) == "Ready", 60
        )
    return agents


async def kubectl(cluster, *args: str, stdin: str | None = None) -> str:
    # In a thread: the loop keeps draining the agents' output meanwhile.
    return await asyncio.to_thread(cluster.kubectl, *args, stdin=stdin)


async def jobs(cluster, namespace: str, label: str | None = None) -> list[dict]:
    selector = ["-l", f"faults={label}"] if label else []
    out = await kubectl(cluster, "get", "djob", "-n", namespace, *selector, "-o", "json")
    return json.loads(out)["items"]


async def wait_all_terminal(cluster, namespace: str, label: str, count: int, timeout: float):
    """Every job labelled `label` (there must be `count`) in a terminal phase."""

    def done(obj: dict) -> bool:
        items = obj.get("items", [])
        return len(items) == count and all(phase(j) in TERMINAL for j in items)

    got = await asyncio.to_thread(
        cluster.wait_for, "djob", "", namespace, done, timeout, f"faults={label}"
    )
    return {j["metadata"]["name"]: j for j in got["items"]}


async def programs_run(agents: dict) -> dict[str, int]:
    counts = {}
    for name, agent in agents.items():
        client = agent.client()
        try:
            counts[name] = (await client.call("health", {}))["programsRun"]
        finally:
            await client.close()
    return counts


async def live(operator, timeout: float = 60) -> None:
    """Until the operator's liveness endpoint answers: kopf is up and watching."""

    def probe() -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(operator.liveness, timeout=2) as resp:
                    resp.read()
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"operator not live after {timeout}s:\n{operator.output()[-3000:]}"
                    ) from None
                time.sleep(0.1)

    await asyncio.to_thread(probe)


# -- reservation log -------------------------------------------------------------------------

RESERVED = re.compile(r"qorch\.pipeline\.reservations: reserved (\S+): (.*)$")
RELEASED = re.compile(r"qorch\.pipeline\.reservations: released (\S+)$")
RESTORED = re.compile(r"qorch\.pipeline\.reservations: restored (\S+): (.*)$")
RESTORED_HOLD = re.compile(r"(\S+) ([0-9.]+)")
HOLD = re.compile(r"(\S+) ([0-9.]+) \(([0-9.]+)/([0-9.]+)\)")


def reservation_log(text: str) -> list[tuple[str, str, dict[str, tuple[float, float, float]]]]:
    """("reserved"|"released"|"restored", job name, {resource: (n, load, capacity)}) in log
    order; a restored line carries no load or capacity (0)."""
    out = []
    for line in text.splitlines():
        if m := RESERVED.search(line):
            holds = {
                h[0]: (float(h[1]), float(h[2]), float(h[3])) for h in HOLD.findall(m.group(2))
            }
            out.append(("reserved", m.group(1).split("/")[1], holds))
        elif m := RELEASED.search(line):
            out.append(("released", m.group(1).split("/")[1], {}))
        elif m := RESTORED.search(line):
            holds = {r: (float(n), 0.0, 0.0) for r, n in RESTORED_HOLD.findall(m.group(2))}
            out.append(("restored", m.group(1).split("/")[1], holds))
    return out


def replay(entries, inherited: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """Replay reserve/release lines, asserting that the logged loads add up and that no
    resource is ever loaded beyond its capacity. `inherited`: what jobs placed before an
    operator restart occupy until they reserve it again in the new book (the old book died
    with the old process, their programs did not). Returns the highest load per resource."""
    held: dict[str, dict[str, float]] = {}
    unbooked = {job: dict(h) for job, h in (inherited or {}).items()}
    peak: dict[str, float] = {}
    for kind, job, holds in entries:
        if kind == "released":
            held.pop(job, None)
            unbooked.pop(job, None)
            continue
        unbooked.pop(job, None)
        if kind == "restored":  # read back from the job's status after a restart
            held[job] = {r: n for r, (n, _, _) in holds.items()}
            continue
        held[job] = {r: n for r, (n, _, _) in holds.items()}
        for resource, (_, load, cap) in holds.items():
            booked = sum(h.get(resource, 0) for h in held.values())
            if abs(booked - load) > 1e-6:
                raise AssertionError(f"{job}: logged load {load} of {resource}, replayed {booked}")
            if load > cap + 1e-9:
                raise AssertionError(f"{job} loaded {resource} to {load}, beyond capacity {cap}")
            others = {j: h[resource] for j, h in unbooked.items() if h.get(resource)}
            if booked + sum(others.values()) > cap + 1e-9:
                raise AssertionError(
                    f"{job} reserved {resource} up to {load}/{cap} in a book restarted empty,"
                    f" while {others} still occupy it, placed before the restart and not"
                    f" reserved again: {booked + sum(others.values())} > {cap}"
                )
            peak[resource] = max(peak.get(resource, 0), load)
    return peak


def placed(job: dict) -> dict[str, float]:
    """What a job placed and not finished occupies, from its status."""
    status = job.get("status", {})
    if status.get("phase") not in ("Planned", "Running") or not status.get("plan"):
        return {}
    ns = job["metadata"]["namespace"]
    return {f"qn/{ns}/{p['node']}": float(len(p["qubits"])) for p in status["plan"]["placement"]}


# -- 1. kills --------------------------------------------------------------------------------

KILL_RUNS = 20
SHORT = {"New": "n", "Pending": "w", "Admitted": "a", "Planned": "p", "Running": "r"}


class PhaseWatch:
    """`kubectl get -w` over the jobs of one label: tells the moment one reaches a phase."""

    def __init__(self, cluster, namespace: str, label: str) -> None:
        kubectl = str(REPO / ".tools" / "bin" / "kubectl")
        fmt = 'jsonpath={.metadata.name} {.status.phase}{"\\n"}'
        self.proc = subprocess.Popen(
            [kubectl, "get", "djob", "-n", namespace, "-l", f"faults={label}", "-w", "-o", fmt],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=cluster.env,
        )

    def until(self, names: set[str], target: str, timeout: float) -> bool:
        """Whether one of `names` reached `target` within `timeout` seconds."""
        assert self.proc.stdout is not None
        fd, pending = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                if not (chunk := os.read(fd, 65536)):
                    return False  # the watch ended
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    name, _, seen = line.decode().strip().partition(" ")
                    if name in names and seen == target:
                        return True
        return False

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def test_operator_killed_at_random_points_every_job_finishes_exactly_once(
    cluster, namespace, operator, start_agent
):
    rng = random.Random(20240611)
    began = time.monotonic()
    # 10 qubits per node, 8 per job: each node runs one job at a time, the rest queue.
    agents = await start_nodes(cluster, namespace, start_agent, {"a": 10, "b": 10}, NOISE)
    qasm = circuit(8, layers=200)  # at most 2^8 shots: simulated shot by shot
    expected: dict[str, int] = {}
    hit: Counter[str] = Counter()
    kills = contested = targeted = 0
    per_kill: list[str] = []  # the unfinished jobs' phases at each kill, as SHORT letters
    # Per kill: where the log of the killed incarnation ends, and the jobs as it left them.
    incarnations: list[tuple[int, list[dict]]] = []
    for run in range(KILL_RUNS):
        await live(operator)
        # Names count down: a restarted operator lists jobs by name, so the newest jobs, the
        # ones most likely still waiting, get their handlers first. Nothing may depend on it.
        batch = [
            job_doc(f"r{KILL_RUNS - run:02d}-{i}", rng.randrange(60, 240), "kill", qasm=qasm)
            for i in range(rng.randint(2, 3))
        ]
        expected.update({d["metadata"]["name"]: d["spec"]["shots"] for d in batch})
        # Mostly after a random delay; now and then the moment a new job reaches a phase,
        # since Admitted and Planned last only milliseconds.
        target = rng.choice(["Admitted", "Planned", "Running"]) if rng.random() < 0.4 else None
        watch = PhaseWatch(cluster, namespace, "kill") if target else None
        try:
            if watch:
                await asyncio.sleep(0.3)  # the watch established before the jobs appear
            await kubectl(
                cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(batch)
            )
            if watch and target:
                names = {d["metadata"]["name"] for d in batch}
                targeted += await asyncio.to_thread(watch.until, names, target, 5.0)
            else:
                await asyncio.sleep(rng.choice([rng.uniform(0, 0.6), rng.uniform(0.6, 3.0)]))
            operator.kill()
        finally:
            if watch:
                watch.close()
        kills += 1
        # The state the next incarnation resumes from: nothing moves while none runs (the
        # pause lets a status patch the killed process had in flight land first).
        await asyncio.sleep(0.3)
        frozen = await jobs(cluster, namespace, "kill")
        unfinished = [phase(j) for j in frozen if phase(j) not in TERMINAL]
        hit.update(unfinished)
        per_kill.append("".join(sorted(SHORT[p] for p in unfinished)) or "-")
        # Contested: a job waits while every node holds a placed one; a restarted book must
        # not hand the waiting job a node that is still busy.
        waiting = "Pending" in unfinished or "Admitted" in unfinished or "New" in unfinished
        contested += waiting and sum(bool(placed(j)) for j in frozen) >= len(agents)
        incarnations.append((len(operator.output()), frozen))
        operator.start()

    done = await wait_all_terminal(cluster, namespace, "kill", len(expected), timeout=180)
    log = operator.output()
    for name, job in done.items():
        status = job["status"]
        assert status["phase"] == "Succeeded", (name, status.get("message"), log[-3000:])
        assert sum(status["result"]["counts"].values()) == expected[name], name
        assert status.get("reroutes", []) == [], (name, status["reroutes"])
        assert status["attempt"] == 1, (name, status["attempt"])
    ran = await programs_run(agents)
    programs = sum(len(j["status"]["plan"]["programs"]) for j in done.values())
    assert sum(ran.values()) == programs, (ran, programs)
    wall = time.monotonic() - began
    print(
        f"\nkills: runs={KILL_RUNS} jobs={len(expected)} kills={kills} (on-phase={targeted})"
        f" unfinished-jobs-by-phase-at-kills={dict(sorted(hit.items()))} contested={contested}"
        f" per-kill(n=new,w=pending,a=admitted,p=planned,r=running)={','.join(per_kill)}"
        f" programsRun={ran} (programs={programs}) wall={wall:.1f}s"
    )
    # Each incarnation's book on its own: it starts by reading back what the jobs placed
    # before the kill hold (their programs did not die with the operator).
    starts = [(0, []), *incarnations]
    ends = [offset for offset, _ in incarnations] + [len(log)]
    for k, ((start, before), end) in enumerate(zip(starts, ends, strict=True)):
        inherited = {j["metadata"]["name"]: placed(j) for j in before if placed(j)}
        entries = reservation_log(log[start:end])
        try:
            replay(entries, inherited)
        except AssertionError as exc:
            resumed = {j["metadata"]["name"]: phase(j) for j in before if phase(j) not in TERMINAL}
            lines = [f"{kind} {job} {holds}" for kind, job, holds in entries][:12]
            raise AssertionError(
                f"incarnation {k} (started after kill {k}) resumed {resumed}: {exc};"
                f" its reservation log: {lines}"
            ) from None
        restored = {job for kind, job, _ in entries if kind == "restored"}
        # An incarnation killed while it was still starting touched no reservation: there is
        # nothing it could have restored wrongly. Any that did restored every hold first.
        assert not entries or set(inherited) <= restored, (
            k,
            sorted(inherited),
            sorted(restored),
            entries[:5],
        )


# -- 2. a crowd ------------------------------------------------------------------------------

CROWD = 100
CROWD_NODES = {"n0": 6, "n1": 6, "n2": 5, "n3": 5}
# Event reasons of a job that starts waiting for capacity.
WAITS = ("Queued", "WaitingForCapacity")


def blocking_circuit(width: int) -> str:
    """A circuit no simulation mode makes short: 100,000 shots of it take minutes to hours.

    Its 2500 layers keep the depth under the default policy's 10,000. A measurement after
    each of the first 24 layers splits every shot from the others, so neither measure
    sampling nor shot branching shares work between shots, and the reset keeps measurements
    from being deferred. Per shot it takes about 5 ms of an idle core at width 5 here
    (blockers of 100 layers and one mid-circuit measurement finished within seconds, before
    the crowd had queued).
    """
    head, layer_lines = 4, 2 * width + (width // 2 if width > 1 else 0)
    lines = circuit(width, layers=2500).splitlines()[:-1]  # without the final measure
    out = lines[:head]
    for layer in range(2500):
        first = head + layer * layer_lines
        out += lines[first : first + layer_lines]
        if layer < 24:
            out.append(f"measure q[{layer % width}] -> c[{layer % width}];")
    return "\n".join([*out, "reset q[0];", "measure q -> c;"])


async def waiting_jobs(cluster, namespace: str) -> list[str]:
    """Crowd jobs that wait in the queue: their Planned condition says why."""

    def waits(job: dict) -> bool:
        conditions = job.get("status", {}).get("conditions", [])
        return any(c["type"] == "Planned" and c["reason"] in WAITS for c in conditions)

    return [j["metadata"]["name"] for j in await jobs(cluster, namespace, "crowd") if waits(j)]


def rank(job: dict) -> tuple:
    """The queue's order (reservations.QueueEntry): priority, then admission, then the key."""
    meta = job["metadata"]
    key = f"{meta['namespace']}/{meta['name']}/{meta['uid']}"
    return (-job["spec"].get("priority", 0), job["status"]["timings"]["admittedAt"], key)


async def test_hundred_jobs_over_four_nodes_never_exceed_capacity(
    cluster, namespace, operator, start_agent
):
    rng = random.Random(100)
    await start_nodes(cluster, namespace, start_agent, CROWD_NODES)
    for name in CROWD_NODES:
        await kubectl(cluster, "label", "qn", name, "-n", namespace, f"faults-node={name}")
    # Blockers fill every node and would run for hours: the crowd queues up behind them, and
    # the test frees the nodes (deleting the blockers cancels them) only once every member of
    # the crowd is waiting. So the whole crowd is in the queue together, however slowly a
    # loaded machine admits it.
    blockers = [
        job_doc(
            f"blocker-{name}",
            100_000,
            "blocker",
            qasm=blocking_circuit(qubits),
            nodeSelector={"matchLabels": {"faults-node": name}},
            timeoutSeconds=7200,
        )
        for name, qubits in CROWD_NODES.items()
    ]
    # create, not apply: apply's last-applied annotation cannot hold a circuit this long.
    await kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(blockers))

    def all_running(obj: dict) -> bool:
        items = obj.get("items", [])
        return len(items) == len(blockers) and all(phase(j) == "Running" for j in items)

    await asyncio.to_thread(
        cluster.wait_for, "djob", "", namespace, all_running, 60, "faults=blocker"
    )
    crowd = []
    for i in range(CROWD):
        width = rng.randint(2, 6)
        crowd.append(
            job_doc(
                f"c{i:03d}",
                rng.randrange(50, 300),
                "crowd",
                qasm=circuit(width, layers=3),
                priority=rng.choice([0, 0, 1, 5, 10]),
            )
        )
    began = time.monotonic()
    await kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(crowd))
    deadline = time.monotonic() + 240
    while len(waiting := await waiting_jobs(cluster, namespace)) < CROWD:
        if time.monotonic() > deadline:
            phases = Counter(phase(j) for j in await jobs(cluster, namespace, "crowd"))
            alive = operator.proc is not None and operator.proc.poll() is None
            held = [
                (phase(b), b["status"].get("message"))
                for b in await jobs(cluster, namespace, "blocker")
            ]
            raise AssertionError(
                f"only {len(waiting)} of {CROWD} crowd jobs queued; phases {dict(phases)};"
                f" blockers {held};"
                f" operator alive: {alive}; its log ends:\n{operator.output()[-6000:]}"
            )
        await asyncio.sleep(1.0)
    queued = time.monotonic() - began
    blocked = await jobs(cluster, namespace, "blocker")
    assert all(phase(b) == "Running" for b in blocked), [b["status"]["message"] for b in blocked]
    await kubectl(cluster, "delete", "djob", "-n", namespace, "-l", "faults=blocker")
    done = await wait_all_terminal(cluster, namespace, "crowd", CROWD, timeout=240)
    wall = time.monotonic() - began
    log = operator.output()
    for name, job in done.items():
        status = job["status"]
        assert status["phase"] == "Succeeded", (name, status.get("message"))
        assert sum(status["result"]["counts"].values()) == job["spec"]["shots"], name
        assert status["attempt"] == 1 and not status.get("reroutes"), (name, status)

    entries = reservation_log(log)
    peak = replay(entries)
    assert set(peak) == {f"qn/{namespace}/{n}" for n in CROWD_NODES}, peak
    reserved = [job for kind, job, _ in entries if kind == "reserved" and job in done]
    # No restart here: a job reserves once; its collect step finds the hold already there.
    assert len(reserved) == CROWD and set(reserved) == set(done), Counter(reserved).most_common(3)

    # Priority: the whole crowd was in the queue together when the nodes were freed, so the
    # jobs were placed in the queue's order.
    order = sorted(reserved, key=lambda n: rank(done[n]))
    assert reserved == order, [
        (n, -rank(done[n])[0], rank(done[n])[1])
        for n in reserved
        if reserved.index(n) != order.index(n)
    ][:10]
    by_priority = Counter(done[n]["spec"].get("priority", 0) for n in done)
    # A queued job's status says the same while the queue moves: written once, not per move.
    queue_writes = log.count("phase Pending: queued")
    loads = {r: f"{v:g}/{CROWD_NODES[r.rsplit('/', 1)[1]]}" for r, v in sorted(peak.items())}
    print(
        f"\ncrowd: jobs={CROWD} queued-in={queued:.1f}s wall={wall:.1f}s"
        f" priorities={dict(sorted(by_priority.items()))}"
        f" queued-status-writes={queue_writes}"
        f" max-load={loads}"
    )


# -- 3. hostile and huge jobs ----------------------------------------------------------------


def qasm2(*body: str, qubits: int = 2) -> str:
    return "\n".join(
        [
            "OPENQASM 2.0;",
            'include "qelib1.inc";',
            f"qreg q[{qubits}];",
            f"creg c[{qubits}];",
            *body,
        ]
    )


def laughs(levels: int = 40) -> str:
    """Each custom gate calls the one before twice: 2^levels operations in a kilobyte."""
    gates = ["gate g0 a { h a; h a; }"]
    gates += [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, levels)]
    return qasm2(*gates, f"g{levels - 1} q[0];", "measure q -> c;")


# name -> (spec, the reason it must end with, what its message must name)
HOSTILE: dict[str, tuple[dict, str, str]] = {
    "billion-qubits": (
        {"qasm": qasm2("h q[0];", "measure q[0] -> c[0];", qubits=1_000_000_000)},
        "QS006",
        "maxQubits",
    ),
    "wider-than-all-nodes": (
        {"qasm": circuit(70, layers=2)},
        "Unschedulable",
        "no node has 70 free qubits",
    ),
    "nested-brackets": (
        {"qasm": qasm2("rz(" + "(" * 500 + "1" + ")" * 500 + ") q[0];", "measure q -> c;")},
        "QS004",
        "maxNestingDepth",
    ),
    "billion-laughs": ({"qasm": laughs()}, "QS007", "maxGates"),
    "endless-loop": (
        {
            "qasm": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
            "for int i in [0:100000000] { h q[0]; }\nc = measure q;\n"
        },
        "QS104",
        "maxDepth",
    ),
    "huge-gate-count": (
        {"qasm": qasm2(*["cx q[0], q[1];"] * 60_000, "measure q -> c;")},
        "QS104",
        "maxDepth",
    ),
    "oversized-source": (
        {"qasm": qasm2(*["h q[0];"] * 150_000, "measure q -> c;")},
        "QS002",
        "maxSourceBytes",
    ),
    "million-shots": ({"qasm": circuit(2, layers=1), "shots": 1_000_000}, "QS103", "maxShots"),
    "missing-configmap": (
        {"configMapRef": {"name": "nowhere", "key": "circuit.qasm"}},
        "CircuitUnavailable",
        "ConfigMap 'nowhere' has no key 'circuit.qasm'",
    ),
}


def hostile_doc(name: str, spec: dict) -> dict:
    spec = dict(spec)
    shots = spec.pop("shots", 100)
    source = {"circuit": spec} if "configMapRef" in spec else {"qasm": spec["qasm"]}
    return job_doc(name, shots, "hostile", **source)


async def run_batch(cluster, namespace: str, docs: list[dict], label: str, count: int) -> float:
    """Create the documents at once; seconds until the `count` jobs labelled `label` end."""
    began = time.monotonic()
    # create, not apply: apply would copy each spec into an annotation, whose limit the
    # huge circuits exceed before the operator ever sees them.
    await kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    await wait_all_terminal(cluster, namespace, label, count, timeout=180)
    return time.monotonic() - began


async def test_hostile_and_huge_jobs_do_not_break_or_slow_the_others(
    cluster, namespace, operator, start_agent
):
    rng = random.Random(3)
    agents = await start_nodes(cluster, namespace, start_agent, {"a": 8, "b": 8}, NOISE)
    ordinary = 10

    def batch(tag: str) -> list[dict]:
        return [
            job_doc(f"{tag}-{i}", rng.randrange(300, 900), tag, qasm=circuit(rng.randint(6, 8)))
            for i in range(ordinary)
        ]

    alone = await run_batch(cluster, namespace, batch("alone"), "alone", ordinary)
    mixed_docs = [hostile_doc(name, spec) for name, (spec, _, _) in HOSTILE.items()]
    mixed_docs += batch("mixed")
    mixed = await run_batch(cluster, namespace, mixed_docs, "mixed", ordinary)
    hostile = await wait_all_terminal(cluster, namespace, "hostile", len(HOSTILE), timeout=60)

    for tag in ("alone", "mixed"):
        for job in await jobs(cluster, namespace, tag):
            status = job["status"]
            assert status["phase"] == "Succeeded", (job["metadata"]["name"], status["message"])
            assert sum(status["result"]["counts"].values()) == job["spec"]["shots"]
    for name, (_, reason, names) in HOSTILE.items():
        status = hostile[name]["status"]
        succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
        assert (status["phase"], succeeded["reason"]) == ("Rejected", reason), (name, status)
        assert names in status["message"], (name, status["message"])
    assert sum((await programs_run(agents)).values()) == 2 * ordinary
    print(
        f"\nhostile: ordinary={ordinary} alone={alone:.1f}s"
        f" with {len(HOSTILE)} hostile={mixed:.1f}s ({mixed / alone:.2f}x)"
        f" rejected={ {name: reason for name, (_, reason, _) in HOSTILE.items()} }"
    )
    assert mixed < 2.5 * alone + 5, (alone, mixed)

    # Hostile jobs leave as any other: deleted, each is gone once the operator's finalizer
    # has run, so its namespace can go too.
    await kubectl(
        cluster, "delete", "djob", "-n", namespace, "-l", "faults=hostile", "--wait=false"
    )

    def gone(obj: dict) -> bool:
        return not obj.get("items")

    try:
        await asyncio.to_thread(cluster.wait_for, "djob", "", namespace, gone, 30, "faults=hostile")
    except AssertionError:
        stuck = {
            j["metadata"]["name"]: len(j["spec"]["circuit"].get("qasm") or "")
            for j in await jobs(cluster, namespace, "hostile")
        }
        refused = [line for line in operator.output().splitlines() if "Too long" in line]
        raise AssertionError(
            f"deleted jobs stuck with the finalizer (name: source bytes): {stuck};"
            f" {len(refused)} refused kopf patch(es), last: {refused[-1][:600] if refused else ''}"
        ) from None
